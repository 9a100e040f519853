"""The safety net's part in "one run at a time": begin the run, take the Lease, let it go.

:func:`begin` runs before the experiment (the control's ``before_experiment_control``):
it starts a new run id for this process (:func:`chaosmesh_sec._run.begin_run`: every
ledger entry of the run carries it) and takes the cluster's run Lease
(:mod:`chaosmesh_sec._lease`), or joins its game day's. If another run holds it, or the
Lease cannot be taken at all, the run is stopped there with chaoslib's
``InterruptExecution``: before the steady state is probed, before any fault. chaoslib
then marks the journal ``interrupted`` and ``chaos run`` exits 1; :func:`record` puts
why in the safety net's record (``lease.refused``). :func:`end` runs after the heal:
it stops the renewal and releases the Lease.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import InterruptExecution

from chaosmesh_sec import _lease, _run, _validate
from chaosmesh_sec.client import api_client, exception_brief

__all__ = ["RunState", "begin", "current", "end", "record"]

logger = logging.getLogger("chaostoolkit")


@dataclass
class RunState:
    """This process's controlled run: its id, its Lease (or why there is none)."""

    run_id: str
    held: _lease.Held | None = None
    renewal: _lease.Renewal | None = None
    refused: str = ""
    api: Any = None


_state: RunState | None = None


def current() -> RunState | None:
    """The run :func:`begin` started in this process, until :func:`end`."""
    return _state


def _runs(context: Any) -> str:
    title = context.get("title") if isinstance(context, dict) else None
    return f"chaos run: {title}" if isinstance(title, str) and title else "chaos run"


def begin(
    context: Any,
    fault_namespace: str,
    configuration: dict[str, Any] | None,
    secrets: dict[str, Any] | None,
    environ: dict[str, str],
) -> RunState:
    """Start the run and take (or join) the Lease; InterruptExecution if the run may not go."""
    global _state
    state = _state = RunState(_run.begin_run())
    try:
        namespace = _validate.dns_label("fault_namespace", fault_namespace)
        state.api = api_client(configuration, secrets)
        holder = _lease.Holder.this_process(state.run_id, _runs(context))
        state.held = _lease.take(
            state.api, namespace, holder, join=environ.get(_run.HOLDER_ENV, "")
        )
    except Exception as exc:  # noqa: BLE001 - any failure stops the run before it begins
        state.refused = exception_brief(exc)
        logger.error("run %s refused: %s", state.run_id, state.refused)
        raise InterruptExecution(
            f"chaosmesh-sec: this run may not start: {state.refused}"
        ) from None
    state.renewal = _lease.Renewal(state.api, state.held).start()
    logger.info(
        "run %s: %s the run lease %s/%s",
        state.run_id,
        "joined" if state.held.joined else "holds",
        namespace,
        _lease.LEASE_NAME,
    )
    return state


def record(state: RunState | None) -> dict[str, Any]:
    """What the safety net's record says of the run: ``run_id`` and ``lease``."""
    if state is None:
        return {"run_id": _run.run_id(), "lease": None}
    lease: dict[str, Any] = state.held.to_json() if state.held else {"name": _lease.LEASE_NAME}
    if state.refused:
        lease["refused"] = state.refused
    return {"run_id": state.run_id, "lease": lease}


def end(state: RunState | None) -> str:
    """Stop renewing and release the Lease (a joined one is left to its game day)."""
    global _state
    _state = None
    _run.end_run()
    if state is None or state.held is None:
        return "not held"
    if state.renewal is not None:
        state.renewal.stop()
    return _lease.release(state.api, state.held)
