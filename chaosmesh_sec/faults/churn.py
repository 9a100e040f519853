"""Workload churn: scale and rollout restart (the IP hunt is :mod:`.ip_recycle`).

Every replica change is written to the ledger (:mod:`chaosmesh_sec.faults._ledger`)
on the Deployment itself before it is made. Rollback: :func:`restore_replicas`, which
reads the count back from there (or takes it as input) and clears the entry;
``chaosmesh-sec rollback`` does the same for every entry left after a crash. No
``from __future__ import annotations`` here: chaoslib's ``discover()`` reads these
signatures at run time.
"""

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from chaosmesh_sec import _kube, _run, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, apps_v1, core_v1
from chaosmesh_sec.errors import FaultNotApplied, InvalidInput, RollbackFailed
from chaosmesh_sec.faults import _ledger
from chaosmesh_sec.faults import _workloads as wl

__all__ = ["restore_replicas", "rollout_restart", "scale_deployment"]

logger = logging.getLogger("chaostoolkit")

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _scale_inputs(
    name: Any, replicas: Any, namespace: Any, wait_ready: Any, timeout_seconds: Any
) -> "_ScaleRequest":
    """:func:`scale_deployment`'s input check (pure)."""
    return _ScaleRequest.checked(name, replicas, namespace, wait_ready, timeout_seconds)


@_validate.checks(_scale_inputs)
def scale_deployment(
    name: str = "",
    replicas: int = -1,
    namespace: str = "default",
    wait_ready: bool = True,
    timeout_seconds: int = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Scale Deployment `name` to `replicas`; with `wait_ready`, wait for the rollout.

    `name` and `replicas` (>= 0) are required (their defaults mean "not given").
    Waits (by watch, at most `timeout_seconds`) until exactly `replicas` pods are
    updated, Ready and available. Returns `{"name", "namespace", "previous_replicas",
    "replicas", "ready", "ready_replicas", "seconds", "reason", "restore_to"}`; a
    timeout gives `ready: false` and a `reason`. `restore_to` is the count in the
    ledger: the one before the first change not restored yet. Rollback:
    `restore_replicas` with the same `name` and `namespace`.
    """
    req = _scale_inputs(name, replicas, namespace, wait_ready, timeout_seconds)
    apps, deployment = req.current(configuration, secrets)
    previous = wl.spec_replicas(deployment)
    restore_to = _ledger.record_replicas(apps, deployment, previous, "scale_deployment")
    try:
        result = req.apply(apps)
    except Exception as exc:
        undone = wl.undo_scale(apps, req.name, req.namespace, restore_to)
        raise FaultNotApplied(
            f"scaling {req.namespace}/{req.name} failed ({exc}); {undone}"
        ) from exc
    result["previous_replicas"] = previous
    result["restore_to"] = restore_to
    return result


def _restore_inputs(
    name: Any,
    replicas: Any,
    namespace: Any,
    wait_ready: Any,
    timeout_seconds: Any,
    all_runs: Any,
) -> tuple["_ScaleRequest", bool, bool]:
    """:func:`restore_replicas`' input check (pure): the request, whether `replicas`
    was given (-1, its default, means "read it from the ledger"), and `all_runs`."""
    given = replicas != -1 or isinstance(replicas, bool)
    req = _ScaleRequest.checked(
        name, replicas if given else 0, namespace, wait_ready, timeout_seconds
    )
    return req, given, _validate.boolean("all_runs", all_runs)


@_validate.checks(_restore_inputs)
def restore_replicas(
    name: str = "",
    replicas: int = -1,
    namespace: str = "default",
    wait_ready: bool = True,
    timeout_seconds: int = 120,
    all_runs: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Rollback: set Deployment `name` back to its count before the fault, clear the ledger.

    `name` is required. Without `replicas` the count comes from the ledger entry a
    fault of this run wrote on the Deployment; with no entry there is nothing to restore
    and the result says so (`restored: false`), so the rollback is safe to repeat. An
    entry another run wrote is left alone (`restored: false`, the reason names that
    run) unless `all_runs` is true (`chaosmesh-sec rollback` heals every run's). A given
    `replicas` wins over the ledger. Verifies the Deployment's spec now asks for that
    count (else `RollbackFailed`); with `wait_ready`, waits for the pods as
    :func:`scale_deployment` does and reports a timeout as `ready: false`. When the
    entry was the IP hunt's (its victim), the hunt's `recycled-from` labels of the same
    run come off too (`labels_cleared`). Returns the shape of :func:`scale_deployment`
    plus `restored`.
    """
    req, given, all_runs = _restore_inputs(
        name, replicas, namespace, wait_ready, timeout_seconds, all_runs
    )
    only_run = "" if all_runs else _run.run_id()
    apps, deployment = req.current(configuration, secrets)
    previous = wl.spec_replicas(deployment)
    annotations = deployment.metadata.annotations or {}
    recorded = annotations.get(_ledger.REPLICAS_BEFORE)
    owner = _ledger.owner_of(deployment)
    unrestored = {
        "name": req.name,
        "namespace": req.namespace,
        "previous_replicas": previous,
        "replicas": previous,
        "restored": False,
    }
    if recorded is not None and only_run and owner != only_run:
        reason = (
            f"its ledger entry is run {owner or 'unknown'}'s, not this run's ({only_run}): "
            "left to it (`chaosmesh-sec rollback` heals every run's)"
        )
        logger.info("%s/%s: %s", req.namespace, req.name, reason)
        return {**unrestored, "reason": reason}
    if not given:
        if recorded is None or not recorded.isdigit():
            logger.info("%s/%s: no ledger entry, nothing to restore", req.namespace, req.name)
            return {**unrestored, "reason": "no ledger entry: nothing to restore"}
        req = dataclasses.replace(req, replicas=int(recorded))
    result = req.apply(apps, clear_ledger=recorded is not None)
    result["previous_replicas"] = previous
    result["restored"] = True
    if annotations.get(_ledger.CHANGED_BY) == _ledger.HUNT:
        core = core_v1(configuration, secrets)
        labelled = _ledger.pending_recycled(
            core, req.namespace, run_id=owner if only_run else "", victim=req.name
        )
        result["labels_cleared"] = [
            e["name"] for e in labelled if _ledger.clear_recycled(core, e["name"], req.namespace)
        ]
    return result


def _restart_inputs(
    name: Any, namespace: Any, cycles: Any, wait_ready: Any, timeout_seconds: Any
) -> tuple[str, str, int, bool, int]:
    """:func:`rollout_restart`'s input check (pure)."""
    name = wl.deployment_name("name", name)
    namespace = _validate.dns_label("namespace", namespace)
    cycles = _validate.positive_int("cycles", cycles)
    wait_ready = _validate.boolean("wait_ready", wait_ready)
    timeout_seconds = _validate.duration("timeout_seconds", timeout_seconds)
    if cycles > 1 and not wait_ready:
        raise InvalidInput("cycles", "more than one cycle needs wait_ready: true")
    return name, namespace, cycles, wait_ready, timeout_seconds


@_validate.checks(_restart_inputs)
def rollout_restart(
    name: str = "",
    namespace: str = "default",
    cycles: int = 1,
    wait_ready: bool = True,
    timeout_seconds: int = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Restart Deployment `name`'s pods `cycles` times, as `kubectl rollout restart` does.

    `name` is required. Each cycle stamps the pod template annotation
    `kubectl.kubernetes.io/restartedAt` and, with `wait_ready`, watches the rollout to
    completion (at most `timeout_seconds` per cycle; more than one cycle needs
    `wait_ready`). Returns
    `{"name", "namespace", "cycles", "completed", "completed_cycles", "history":
    [{"cycle", "restarted_at", "pods_before", "pods_after", "ips_before", "ips_after",
    "completed", "seconds"}], "reason"}`. A restart cannot be undone; no rollback.
    """
    name, namespace, cycles, wait_ready, timeout_seconds = _restart_inputs(
        name, namespace, cycles, wait_ready, timeout_seconds
    )

    core, apps = core_v1(configuration, secrets), apps_v1(configuration, secrets)
    _kube.require_namespace(core, namespace)
    deployment = _kube.read_deployment(apps, name, namespace, "name")
    if deployment.spec.paused:
        raise InvalidInput("name", f"Deployment {name!r} is paused: resume it first")
    selector = wl.deployment_selector(deployment.spec.selector)

    result: JSONObject = {
        "name": name,
        "namespace": namespace,
        "cycles": cycles,
        "completed": None,
        "completed_cycles": 0,
        "history": [],
        "reason": None,
    }
    for cycle in range(1, cycles + 1):
        before = wl.live_pods(core, namespace, selector)
        stamp = datetime.now(UTC).isoformat()
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        started = time.monotonic()
        with api_errors(f"restart Deployment {namespace}/{name}"):
            apps.patch_namespaced_deployment(name, namespace, patch)
        logger.info("Rollout restart %d/%d of Deployment %s/%s", cycle, cycles, namespace, name)
        done: bool | None = None
        if wait_ready:
            done = _wait_rollout(apps, name, namespace, None, started + timeout_seconds)
        after = wl.live_pods(core, namespace, selector)
        result["history"].append(
            {
                "cycle": cycle,
                "restarted_at": stamp,
                "pods_before": before,
                "pods_after": after,
                "ips_before": wl.ips_of(before),
                "ips_after": wl.ips_of(after),
                "completed": done,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
        if done is False:
            result["completed"] = False
            result["reason"] = f"cycle {cycle}: rollout not complete after {timeout_seconds}s"
            return result
        if done:
            result["completed_cycles"] = cycle
    if wait_ready:
        result["completed"] = True
    return result


# ---------------------------------------------------------------- scaling


@dataclass(frozen=True)
class _ScaleRequest:
    """A checked request to set a Deployment's replica count (scale and its rollback)."""

    name: str
    replicas: int
    namespace: str
    wait_ready: bool
    timeout_seconds: int

    @classmethod
    def checked(
        cls, name: Any, replicas: Any, namespace: Any, wait_ready: Any, timeout_seconds: Any
    ) -> Self:
        return cls(
            wl.deployment_name("name", name),
            _replicas(replicas),
            _validate.dns_label("namespace", namespace),
            _validate.boolean("wait_ready", wait_ready),
            _validate.duration("timeout_seconds", timeout_seconds),
        )

    def current(self, configuration: Any, secrets: Any) -> tuple[Any, Any]:
        """The apps client and the Deployment now (InvalidInput if it is missing)."""
        core, apps = core_v1(configuration, secrets), apps_v1(configuration, secrets)
        _kube.require_namespace(core, self.namespace)
        return apps, _kube.read_deployment(apps, self.name, self.namespace, "name")

    def apply(self, apps: Any, clear_ledger: bool = False) -> JSONObject:
        """Set the replicas (then, with ``clear_ledger``, clear the entry) and wait."""
        return _scale_and_wait(
            apps,
            self.name,
            self.namespace,
            self.replicas,
            self.wait_ready,
            self.timeout_seconds,
            clear_ledger,
        )


def _replicas(value: Any) -> int:
    """The ``replicas`` input: required (its default -1 means "not given"), >= 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value == -1:
        raise InvalidInput("replicas", "required: the number of replicas to set (>= 0)")
    return _validate.non_negative_int("replicas", value)


def _scale_and_wait(
    apps: Any,
    name: str,
    namespace: str,
    replicas: int,
    wait_ready: bool,
    timeout_seconds: int,
    clear_ledger: bool = False,
) -> JSONObject:
    started = time.monotonic()
    asked = wl.patch_replicas(apps, name, namespace, replicas)
    if asked != replicas:
        raise RollbackFailed(
            f"Deployment {namespace}/{name} asks for {asked} replicas after setting {replicas}: "
            "something else (an autoscaler?) manages its scale"
        )
    if clear_ledger:  # the spec is restored: the entry is done (before the wait, which
        _ledger.clear_replicas(apps, name, namespace)  # sees the generation it bumps)
    result: JSONObject = {
        "name": name,
        "namespace": namespace,
        "previous_replicas": None,
        "replicas": replicas,
        "ready": None,
        "ready_replicas": None,
        "seconds": None,
        "reason": None,
    }
    if not wait_ready:
        return result
    states: dict[str, Any] = {}
    result["ready"] = _wait_rollout(
        apps, name, namespace, replicas, started + timeout_seconds, states
    )
    result["seconds"] = round(time.monotonic() - started, 3)
    last = states.get("deployment")
    result["ready_replicas"] = (last.status.ready_replicas or 0) if last and last.status else 0
    if not result["ready"]:
        result["reason"] = (
            f"{result['ready_replicas']} of {replicas} replicas Ready after {timeout_seconds}s"
        )
    return result


def _wait_rollout(
    apps: Any,
    name: str,
    namespace: str,
    replicas: int | None,
    deadline: float,
    states: dict[str, Any] | None = None,
) -> bool:
    """Watch the Deployment until its rollout is complete (``replicas`` None: its spec's)."""

    def complete(dep: Any) -> bool:
        if states is not None:
            states["deployment"] = dep
        return wl.rollout_complete(dep, wl.spec_replicas(dep) if replicas is None else replicas)

    held, _ = _kube.watch_named(
        apps.list_namespaced_deployment, "Deployment", name, namespace, complete, deadline
    )
    return held
