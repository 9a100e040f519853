"""Types at the Chaos Toolkit boundary, spelled so chaoslib's ``discover()`` can name them.

chaoslib reads activity signatures at run time (``inspect.signature``, no string
evaluation) and names only a few shapes: ``typing.Dict[...]`` is a "mapping",
while ``dict[str, Any]``, ``X | None`` and string annotations all become
"object". Hence, in every activity module:

- no ``from __future__ import annotations`` (it turns every annotation into a string);
- activity returns are annotated :data:`JSONObject`;
- ``configuration`` / ``secrets`` use chaoslib's own aliases, re-exported here.
  chaoslib is untyped, so mypy sees them as ``Any`` and accepts their ``None``
  default; the code below the boundary takes ``Mapping[str, Any] | None``.
"""

from typing import Any, Dict, TypeAlias  # noqa: UP035 - see the module docstring

from chaoslib.types import Configuration, Secrets

__all__ = ["Configuration", "JSONObject", "Secrets"]

JSONObject: TypeAlias = Dict[str, Any]  # noqa: UP006 - chaoslib names typing.Dict "mapping"
