"""Scrubbing: no token and no private key from a journal ever reaches a report.

A journal keeps what activities returned and raised, verbatim: a response body, an
error message or a traceback may carry a ServiceAccount token (a JWT) or a PEM
private key. :func:`scrub` replaces both in one text; :func:`scrub_json` applies it
to every string (keys included) of a parsed journal, which is how
:mod:`chaosmesh_sec.report.reading` reads every journal, so nothing downstream sees
the originals. The writers scrub what they print once more, as a second net.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["JWT", "PEM_PRIVATE_KEY", "REDACTED_KEY", "REDACTED_TOKEN", "scrub", "scrub_json"]

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
"""A JSON Web Token: a base64url header starting ``{"``, a payload, a signature (may be empty)."""
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
"""A PEM private key block (any kind: RSA, EC, OPENSSH, ENCRYPTED), or its start to the end
of the text when an excerpt cut it before its END line."""
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")

REDACTED_TOKEN = "[redacted token]"  # noqa: S105 - the replacement, not a secret
REDACTED_KEY = "[redacted key]"


def scrub(text: str) -> str:
    """`text` without JWTs and PEM private keys (each replaced by a marker)."""
    if "eyJ" in text:
        text = JWT.sub(REDACTED_TOKEN, text)
    if "PRIVATE KEY-----" in text:
        text = PEM_PRIVATE_KEY.sub(REDACTED_KEY, text)
        text = _PEM_END.sub(REDACTED_KEY, text)  # an END line whose BEGIN was cut off
    return text


def scrub_json(value: Any) -> Any:
    """A copy of parsed JSON with :func:`scrub` applied to every string, keys included."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    return value
