"""The pack's exceptions, all in one place.

Every exception the pack raises on purpose is a :class:`ChaosMeshSecError`, which
subclasses chaoslib's ``ActivityFailed`` so the Chaos Toolkit runtime records it
as a failed activity (with our message) rather than an unexpected crash::

    chaoslib.exceptions.ActivityFailed
    └── ChaosMeshSecError          anything this pack raises on purpose
        ├── InvalidInput           an argument or configuration value is wrong;
        │                          raised before any side effect; names the input
        ├── ClusterUnreachable     no usable Kubernetes API (kubeconfig, context,
        │                          in-cluster config, connection, authentication)
        ├── ApiError               the API server refused a request: ``status`` and
        │                          ``reason`` only (never the body or headers)
        ├── FaultNotApplied        a fault could not be put in place (nothing is left
        │                          behind: partial effects were undone first)
        ├── RollbackFailed         undoing a fault did not verify; says what is left
        ├── RunRefused             another run holds the cluster's run lease; names
        │                          it (run id, host, pid, what it runs) and its age
        └── LabError               ``chaosmesh-sec lab`` build / up / down failed;
                                   carries the log path to read, when there is one

Messages say what was wrong and what to do; the cause is chained (``raise ... from``),
except a Kubernetes client's ``ApiException``: its text holds the response's headers and
body, and chaoslib writes the whole chain into the journal, so :class:`ApiError` keeps its
status and reason and drops it (``from None``). No message ever carries a token, a
private key or a certificate's private part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

__all__ = [
    "ApiError",
    "ChaosMeshSecError",
    "ClusterUnreachable",
    "FailOpen",
    "FaultNotApplied",
    "InvalidInput",
    "LabError",
    "RollbackFailed",
    "RunRefused",
]


class ChaosMeshSecError(ActivityFailed):  # type: ignore[misc]  # chaoslib is untyped
    """Root of the pack's exceptions (an ``ActivityFailed`` for the runtime)."""


class InvalidInput(ChaosMeshSecError, ValueError):
    """An argument or configuration value is wrong; nothing was touched.

    ``name`` is the input's name as the user wrote it (``min_ready``,
    ``configuration.kubeconfig_path``), so the message can point at it.
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"invalid input {name!r}: {problem}")


class ClusterUnreachable(ChaosMeshSecError):
    """No usable Kubernetes API: config not found or unusable, or the server did not answer."""


class ApiError(ChaosMeshSecError):
    """The API server answered a request with an error: its status code and reason only.

    ``status`` (e.g. 403, 404) and ``reason`` are kept for callers; the response's body
    and headers, which may echo the request, are not.
    """

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class FaultNotApplied(ChaosMeshSecError):
    """A fault could not be put in place; any partial effect was undone before raising."""


class RollbackFailed(ChaosMeshSecError):
    """Undoing a fault did not verify: something may be left behind (the message says what).

    ``result``, when given, is what the heal did do (JSON-ready), for a caller that
    records it (the safety net).
    """

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        self.result = result
        super().__init__(message)


class FailOpen(ChaosMeshSecError):
    """A request an identity matrix expected to be denied was allowed: the worst result."""


class LabError(ChaosMeshSecError):
    """The local lab could not be built, started or stopped.

    ``log_path``, when given, is the file with the failing step's output; the
    message shows it so the user knows where to look.
    """

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        super().__init__(f"{message}\n  log: {log_path}" if log_path else message)


class RunRefused(ChaosMeshSecError):
    """Another run holds the cluster's run lease (:mod:`chaosmesh_sec._lease`): nothing
    was done. The message names the holder and says how old its lease is."""
