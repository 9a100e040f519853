"""Which run this process is: the run id every ledger entry carries, and who holds the lease.

A *run* is one ``chaos run`` (or one script calling the pack's activities). The
safety-net control begins it (:func:`begin_run`) before anything else happens, so
every activity of that experiment, in the same process, writes the same id on what it
changes (:mod:`chaosmesh_sec.faults._ledger`); that run's rollbacks and its safety net
heal only entries carrying it. Activities called outside a controlled run keep working:
the first one makes the process's id (:func:`run_id`) and the rest share it.

The run id is 12 lowercase hex digits (a partition's own id, naming its chains and
pod, is 8: the two are never confused). :data:`HOLDER_ENV` carries a game day's lease
holder identity to the ``chaos run`` children it starts (see
:mod:`chaosmesh_sec._lease`).
"""

from __future__ import annotations

import re
import socket
import threading
import uuid

__all__ = [
    "FAULT_NAMESPACE",
    "HOLDER_ENV",
    "RUN_ID",
    "begin_run",
    "end_run",
    "is_run_id",
    "new_run_id",
    "run_id",
    "this_host",
]

FAULT_NAMESPACE = "chaosmesh-sec-faults"
"""Where fault pods and the run lease go unless an experiment says otherwise (``deploy/``
creates it). Here, on the floor, so that the game day (which imports no fault) knows it."""
HOLDER_ENV = "CHAOSMESH_SEC_LEASE_HOLDER"
"""Set by a game day for its ``chaos run`` children: the holder identity of its lease."""
RUN_ID = re.compile(r"[0-9a-f]{12}")

_lock = threading.Lock()
_current: str | None = None


def new_run_id() -> str:
    """A fresh run id (12 hex digits of a random UUID)."""
    return uuid.uuid4().hex[:12]


def is_run_id(value: object) -> bool:
    """Whether ``value`` is a run id as :func:`new_run_id` makes them."""
    return isinstance(value, str) and RUN_ID.fullmatch(value) is not None


def begin_run() -> str:
    """Start a new run in this process (the control does, before the experiment); its id."""
    global _current
    with _lock:
        _current = new_run_id()
        return _current


def end_run() -> None:
    """Forget the run (after the safety net healed it): the next activity makes a new id."""
    global _current
    with _lock:
        _current = None


def run_id() -> str:
    """The id of the run this process is in (made on first use outside a controlled run)."""
    global _current
    with _lock:
        if _current is None:
            _current = new_run_id()
        return _current


def this_host() -> str:
    """This machine's name (for a lease holder's description)."""
    return socket.gethostname() or "unknown-host"
