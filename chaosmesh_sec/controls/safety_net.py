"""The safety net: at the end of every run, heal what the pack's faults left behind.

Chaos Toolkit's default rollback strategy skips rollbacks after a failed run, and
``--rollback-strategy=never`` (or exit signal 30) skips them always. This control
runs at the end of the experiment whatever happened, reads the ledger in the
cluster and undoes what is still there (see
:func:`chaosmesh_sec.faults.leftovers.heal_leftovers`). What it did goes into the
journal's ``extensions`` as ``{"name": "chaosmesh-sec-safety-net", ...}``
(:data:`chaosmesh_sec.journal.SAFETY_NET_EXTENSION`: the game day and the report read
it there). Declare it in an experiment::

    "controls": [{"name": "chaosmesh-sec-safety-net",
                  "provider": {"type": "python",
                               "module": "chaosmesh_sec.controls.safety_net"}}]

Before the experiment, it begins the run (a run id every ledger entry of the run
carries) and takes the cluster's run Lease in the fault namespace (the control's
``fault_namespace`` argument, else the experiment's configuration ``fault_namespace``,
else :data:`chaosmesh_sec._run.FAULT_NAMESPACE`), or joins its game day's; a run that
may not start (another run holds the Lease: it is named, with its age) is interrupted
there, before the steady state is probed (see :mod:`._run_lease`). At the end it heals
the leftovers of *this run only* (partitions in that fault namespace, Deployments,
the IP hunt's labels, each carrying the run id), then releases the Lease; the record
says ``run_id`` and ``lease``. ``chaosmesh-sec rollback`` heals every run's. Any
failure, the pack's or not, is recorded as the record's ``error`` (with what was
healed all the same): the game day then exits 3.

A fail-open cell anywhere in the journal (before, during or after the method, in the
method itself or its rollbacks) marks the run ``deviated``, so ``chaos run`` exits
non-zero even when the hypothesis' tolerance let the cell through.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from chaosmesh_sec._run import FAULT_NAMESPACE
from chaosmesh_sec.client import exception_brief
from chaosmesh_sec.controls import _run_lease
from chaosmesh_sec.errors import RollbackFailed
from chaosmesh_sec.faults.leftovers import heal_leftovers
from chaosmesh_sec.journal import SAFETY_NET_EXTENSION, fail_open_cells

__all__ = ["after_experiment_control", "before_experiment_control"]

logger = logging.getLogger("chaostoolkit")


def _fault_namespace(argument: str, configuration: dict[str, Any] | None) -> str:
    if argument:
        return argument
    given = (configuration or {}).get("fault_namespace")
    return given if isinstance(given, str) and given else FAULT_NAMESPACE


def before_experiment_control(
    context: Any,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    namespace: str = "",
    fault_namespace: str = "",
    **kwargs: Any,
) -> None:
    """Begin the run and take the run Lease; interrupt the run if it may not start."""
    _run_lease.begin(
        context,
        _fault_namespace(fault_namespace, configuration),
        configuration,
        secrets,
        dict(os.environ),
    )


def after_experiment_control(
    context: Any,
    state: Any,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    namespace: str = "",
    fault_namespace: str = "",
    **kwargs: Any,
) -> None:
    """Heal this run's leftovers once the experiment (and any rollbacks) ended, release the
    run Lease; note both in the journal."""
    run = _run_lease.current()
    record: dict[str, Any] = {"name": SAFETY_NET_EXTENSION, **_run_lease.record(run)}
    try:
        if run is not None and run.refused:
            record["healed"] = None  # the run never began: nothing of it to heal
        else:
            record["healed"] = heal_leftovers(
                namespace=namespace,
                fault_namespace=_fault_namespace(fault_namespace, configuration),
                configuration=configuration,
                secrets=secrets,
            )
    except Exception as exc:  # noqa: BLE001 - whatever it is, the journal must say so
        logger.error("safety net: could not heal everything: %s", exception_brief(exc))
        record["error"] = exception_brief(exc)
        if isinstance(exc, RollbackFailed) and exc.result is not None:
            record["healed"] = exc.result
    else:
        if record["healed"] is None:
            pass
        elif record["healed"]["nothing_left"]:
            logger.info("safety net: no fault left in effect")
        else:
            logger.warning("safety net: healed faults the rollbacks left: %s", record["healed"])
    if record["lease"] is not None:
        record["lease"]["release"] = _run_lease.end(run)
    if isinstance(state, dict):
        opened = fail_open_cells(state)
        if opened:
            record["fail_open_cells"] = opened
            if not state.get("deviated"):
                logger.error("safety net: %d fail-open cell(s): the run is deviated", opened)
                state["deviated"] = True
        state.setdefault("extensions", []).append(record)
