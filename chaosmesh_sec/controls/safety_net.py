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

Before the run (``before_experiment_control``), the **preflight**
(:mod:`chaosmesh_sec.controls._preflight`) checks the arguments of every pack activity
of the experiment, in every phase, with the activities' own input checks and no API
call: bad input stops the run before the steady state is first probed (status
``interrupted``, ``chaos run`` exits 1), named in the journal record's ``preflight``;
the heal is then skipped (the run changed nothing). During the method, a pack fault
action that fails stops it (:mod:`chaosmesh_sec.controls._stops`, registered by
``configure_control``): status ``aborted``, no further method activity, the rollbacks
and this heal still run; the record's ``stopped`` names it.

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
from chaosmesh_sec.controls import _preflight, _run_lease, _stops
from chaosmesh_sec.errors import RollbackFailed
from chaosmesh_sec.faults.leftovers import heal_leftovers
from chaosmesh_sec.journal import SAFETY_NET_EXTENSION, fail_open_cells

__all__ = ["after_experiment_control", "before_experiment_control", "configure_control"]

logger = logging.getLogger("chaostoolkit")


def _fault_namespace(argument: str, configuration: dict[str, Any] | None) -> str:
    if argument:
        return argument
    given = (configuration or {}).get("fault_namespace")
    return given if isinstance(given, str) and given else FAULT_NAMESPACE


def configure_control(event_registry: Any = None, **kwargs: Any) -> None:
    """Watch this run's method for a failed fault action (see :mod:`._stops`)."""
    _stops.watch(event_registry)


def before_experiment_control(
    context: Any,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    namespace: str = "",
    fault_namespace: str = "",
    **kwargs: Any,
) -> None:
    """The preflight first (every pack activity's arguments checked, no API call: see
    :mod:`._preflight`), then begin the run and take the run Lease (:mod:`._run_lease`).
    Raises chaoslib's ``InterruptExecution`` on bad input or when the run may not start."""
    _preflight.preflight(context if isinstance(context, dict) else {}, configuration, secrets)
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
    refused = _preflight.refused()
    stopped = _stops.stopped()
    if stopped:
        record["stopped"] = stopped
    if refused:
        record["preflight"] = {"refused": [r.to_json() for r in refused]}
        record["healed"] = None
        logger.info("safety net: the preflight refused the run: nothing was changed, no heal")
    elif run is not None and run.refused:
        record["healed"] = None  # the run never began: nothing of it to heal
    else:
        _heal(
            record,
            namespace,
            _fault_namespace(fault_namespace, configuration),
            configuration,
            secrets,
        )
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


def _heal(
    record: dict[str, Any],
    namespace: str,
    fault_namespace: str,
    configuration: dict[str, Any] | None,
    secrets: dict[str, Any] | None,
) -> None:
    try:
        record["healed"] = heal_leftovers(
            namespace=namespace,
            fault_namespace=fault_namespace,
            configuration=configuration,
            secrets=secrets,
        )
    except Exception as exc:  # noqa: BLE001 - whatever it is, the journal must say so
        logger.error("safety net: could not heal everything: %s", exception_brief(exc))
        record["error"] = exception_brief(exc)
        if isinstance(exc, RollbackFailed) and exc.result is not None:
            record["healed"] = exc.result
    else:
        if record["healed"]["nothing_left"]:
            logger.info("safety net: no fault left in effect")
        else:
            logger.warning("safety net: healed faults the rollbacks left: %s", record["healed"])
