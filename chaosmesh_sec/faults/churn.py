"""Workload churn: scale, rollout restart, and the seeds' hunt for a recycled pod IP.

A pod IP freed by one workload is soon handed to another pod on the same node.
Anything that still maps that IP to the old identity (an IP -> identity cache that
went stale, an allow-list by IP) then grants the newcomer the old pod's rights.
:func:`hunt_recycled_ip` makes that happen on purpose and says which pod got which IP.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from kubernetes.client import exceptions as k8s_exceptions

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, apps_v1, core_v1
from chaosmesh_sec.errors import FaultNotApplied, InvalidInput, RollbackFailed
from chaosmesh_sec.faults import _cut, _ledger
from chaosmesh_sec.faults import _workloads as wl

__all__ = ["hunt_recycled_ip", "restore_replicas", "rollout_restart", "scale_deployment"]

logger = logging.getLogger("chaostoolkit")

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RECYCLED_FROM = "chaosmesh-sec.io/recycled-from"


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
    req = _ScaleRequest.checked(name, replicas, namespace, wait_ready, timeout_seconds)
    apps, deployment = req.current(configuration, secrets)
    previous = _spec_replicas(deployment)
    restore_to = _ledger.record_replicas(apps, deployment, previous, "scale_deployment")
    try:
        result = req.apply(apps)
    except Exception as exc:
        undone = _undo_scale(apps, req.name, req.namespace, restore_to)
        raise FaultNotApplied(
            f"scaling {req.namespace}/{req.name} failed ({exc}); {undone}"
        ) from exc
    result["previous_replicas"] = previous
    result["restore_to"] = restore_to
    return result


def restore_replicas(
    name: str = "",
    replicas: int = -1,
    namespace: str = "default",
    wait_ready: bool = True,
    timeout_seconds: int = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Rollback: set Deployment `name` back to its count before the fault, clear the ledger.

    `name` is required. Without `replicas` the count comes from the ledger entry a
    fault wrote on the Deployment; with no entry there is nothing to restore and the
    result says so (`restored: false`), so the rollback is safe to repeat. A given
    `replicas` wins over the ledger. Verifies the Deployment's spec now asks for that
    count (else `RollbackFailed`); with `wait_ready`, waits for the pods as
    :func:`scale_deployment` does and reports a timeout as `ready: false`. Returns the
    shape of :func:`scale_deployment` plus `restored`.
    """
    given = replicas != -1 or isinstance(replicas, bool)
    req = _ScaleRequest.checked(
        name, replicas if given else 0, namespace, wait_ready, timeout_seconds
    )
    apps, deployment = req.current(configuration, secrets)
    previous = _spec_replicas(deployment)
    recorded = (deployment.metadata.annotations or {}).get(_ledger.REPLICAS_BEFORE)
    if not given:
        if recorded is None or not recorded.isdigit():
            logger.info("%s/%s: no ledger entry, nothing to restore", req.namespace, req.name)
            return {
                "name": req.name,
                "namespace": req.namespace,
                "previous_replicas": previous,
                "replicas": previous,
                "restored": False,
                "reason": "no ledger entry: nothing to restore",
            }
        req = dataclasses.replace(req, replicas=int(recorded))
    result = req.apply(apps, clear_ledger=recorded is not None)
    result["previous_replicas"] = previous
    result["restored"] = True
    return result


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
    name = _deployment_name("name", name)
    namespace = _validate.dns_label("namespace", namespace)
    cycles = _validate.positive_int("cycles", cycles)
    wait_ready = _validate.boolean("wait_ready", wait_ready)
    timeout_seconds = _validate.duration("timeout_seconds", timeout_seconds)
    if cycles > 1 and not wait_ready:
        raise InvalidInput("cycles", "more than one cycle needs wait_ready: true")

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
        before = _live_pods(core, namespace, selector)
        stamp = datetime.now(UTC).isoformat()
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        started = time.monotonic()
        with api_errors(f"restart Deployment {namespace}/{name}"):
            apps.patch_namespaced_deployment(name, namespace, patch)
        logger.info("Rollout restart %d/%d of Deployment %s/%s", cycle, cycles, namespace, name)
        done: bool | None = None
        if wait_ready:
            done = _wait_rollout(apps, name, namespace, None, started + timeout_seconds)
        after = _live_pods(core, namespace, selector)
        result["history"].append(
            {
                "cycle": cycle,
                "restarted_at": stamp,
                "pods_before": before,
                "pods_after": after,
                "ips_before": _ips(before),
                "ips_after": _ips(after),
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


def hunt_recycled_ip(
    victim: str = "",
    hunter: str = "",
    namespace: str = "default",
    max_rounds: int = 10,
    timeout_seconds: int = 180,
    cut_off_pods: str = "",
    fault_namespace: str = _ledger.FAULT_NAMESPACE,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Scale `victim` to zero, then rotate `hunter`'s pods until one holds a victim's old IP.

    `victim` and `hunter` (two different Deployments in `namespace`) are required.
    Records the IPs of Deployment `victim`'s pods, scales it to 0 and waits for its
    pods to be gone (their IPs are free then). Each round deletes every pod of
    Deployment `hunter` (its ReplicaSet recreates them) and watches the new pods get
    IPs; the hunt ends when one holds an IP that was the victim's, after `max_rounds`
    rounds, or after `timeout_seconds` in all. IPs recycle within a node's pod CIDR:
    pin both Deployments to the same node.

    The pod found is labelled `chaosmesh-sec.io/recycled-from=<victim>`, so a later
    activity can select it (an identity matrix run from that very pod); the hunt first
    takes that label off any pod an earlier hunt of `victim` left it on.

    `cut_off_pods` (a label selector in `namespace`, e.g. the server's pods) asks for
    the stale-cache story: the nodes of those pods must be cut off from the API server
    by this pack's partition (its fault pods in `fault_namespace`), and only a holder
    created after the cut began, while it is still in force, counts; an earlier one is
    listed under `rejected` and the hunt goes on. `scenario` then says in words whether
    the story was `reproduced` or `not reproduced`, and why.

    Returns `{"found", "recycled_ip", "pod": {"name", "uid", "node", "pod_ip",
    "created"}, "rounds", "victim_ips", "victim_nodes", "hunter_nodes",
    "victim_previous_replicas", "seconds", "reason", "reproduced", "scenario",
    "precondition", "rejected"}`; not finding one is `found: false` with a `reason`, not
    an error. Rollback: `restore_replicas` of `victim` to `victim_previous_replicas`.
    If the hunt fails midway, the victim's replicas are restored before raising.
    """
    victim = _deployment_name("victim", victim)
    hunter = _deployment_name("hunter", hunter)
    if victim == hunter:
        raise InvalidInput("hunter", f"must be another Deployment than victim {victim!r}")
    namespace = _validate.dns_label("namespace", namespace)
    max_rounds = _validate.positive_int("max_rounds", max_rounds)
    timeout_seconds = _validate.duration("timeout_seconds", timeout_seconds)
    cut_off_pods = _validate.optional_label_selector("cut_off_pods", cut_off_pods)
    fault_namespace = _validate.dns_label("fault_namespace", fault_namespace)

    core, apps = core_v1(configuration, secrets), apps_v1(configuration, secrets)
    _kube.require_namespace(core, namespace)
    victim_dep = _kube.read_deployment(apps, victim, namespace, "victim")
    hunter_dep = _kube.read_deployment(apps, hunter, namespace, "hunter")
    for role, dep in (("victim", victim_dep), ("hunter", hunter_dep)):
        if dep.spec.template.spec.host_network:
            raise InvalidInput(role, f"Deployment {dep.metadata.name!r} uses hostNetwork")
    hunter_replicas = _spec_replicas(hunter_dep)
    if hunter_replicas < 1:
        raise InvalidInput("hunter", f"Deployment {hunter!r} has 0 replicas: nothing to rotate")
    victim_sel = wl.deployment_selector(victim_dep.spec.selector)
    hunter_sel = wl.deployment_selector(hunter_dep.spec.selector)
    victim_pods = _live_pods(core, namespace, victim_sel)
    victim_ips = _ips(victim_pods)
    if not victim_ips:
        raise InvalidInput("victim", f"no pod of Deployment {victim!r} has an IP to recycle")
    hunter_pods = _live_pods(core, namespace, hunter_sel)
    if {p["uid"] for p in victim_pods} & {p["uid"] for p in hunter_pods}:
        raise InvalidInput("hunter", f"its selector {hunter_sel!r} also matches the victim's pods")
    precondition = None
    if cut_off_pods:
        precondition = _cut.stale_cache_precondition(core, cut_off_pods, namespace, fault_namespace)
        if precondition is None:
            raise InvalidInput(
                "cut_off_pods", f"no Running pod matches {cut_off_pods!r} in {namespace!r}"
            )
    _unlabel_earlier(core, namespace, victim)
    result: JSONObject = {
        "found": False,
        "recycled_ip": None,
        "pod": None,
        "rounds": 0,
        "victim": victim,
        "hunter": hunter,
        "namespace": namespace,
        "victim_ips": victim_ips,
        "victim_nodes": sorted({str(p["node"]) for p in victim_pods}),
        "hunter_nodes": sorted({str(p["node"]) for p in hunter_pods if p["node"]}),
        "victim_previous_replicas": None,
        "seconds": None,
        "reason": None,
        "reproduced": None,
        "scenario": None,
        "precondition": precondition.to_json() if precondition else None,
        "rejected": [],
    }
    impossible = precondition.why_not() if precondition else None
    if impossible:
        result["reason"] = impossible
        _tell_story(result, precondition)
        logger.info("IP hunt not started: %s", result["scenario"])
        return result
    previous = _ledger.record_replicas(
        apps, victim_dep, _spec_replicas(victim_dep), "hunt_recycled_ip"
    )
    result["victim_previous_replicas"] = previous
    started = time.monotonic()
    deadline = started + timeout_seconds
    _patch_replicas(apps, victim, namespace, 0)
    try:
        _hunt(
            core,
            namespace,
            (victim_sel, hunter_sel),
            hunter_replicas,
            max_rounds,
            deadline,
            result,
            precondition.admits if precondition else (lambda _pod: True),
        )
    except BaseException as exc:
        undone = _undo_scale(apps, victim, namespace, previous)
        if not isinstance(exc, Exception):
            raise
        raise FaultNotApplied(f"IP hunt failed ({exc}); {undone}") from exc
    result["seconds"] = round(time.monotonic() - started, 3)
    _tell_story(result, precondition)
    if result["found"]:
        logger.info(
            "Recycled IP %s: victim %s's, now held by %s/%s after %d round(s)",
            result["recycled_ip"],
            victim,
            namespace,
            result["pod"]["name"],
            result["rounds"],
        )
    else:
        logger.info("No recycled IP: %s", result["reason"])
    return result


# ---------------------------------------------------------------- the hunt


def _hunt(
    core: Any,
    namespace: str,
    selectors: tuple[str, str],
    hunter_replicas: int,
    max_rounds: int,
    deadline: float,
    result: JSONObject,
    admits: Callable[[Any], bool],
) -> None:
    """Rounds of hunter-pod deletion; fills ``result`` in place. Only a holder that
    ``admits`` accepts ends the hunt; the others are listed under ``rejected``."""
    victim_sel, hunter_sel = selectors
    victim_ips = set(result["victim_ips"])

    def holder(pods: list[Any]) -> Any:
        return _holder(pods, victim_ips, admits, result["rejected"])

    gone, _ = _kube.watch_until(
        core.list_namespaced_pod,
        lambda objects: not objects,
        deadline,
        f"victim pods {victim_sel!r} in {namespace!r}",
        namespace,
        label_selector=victim_sel,
    )
    if not gone:
        result["reason"] = "the victim's pods were still there when the timeout ran out"
        return
    seen: set[str] = set()
    while True:
        current = _live_pod_objects(core, namespace, hunter_sel)
        seen |= {p.status.pod_ip for p in current if p.status and p.status.pod_ip}
        found = holder(current)
        if found is not None:
            _found(core, namespace, found, result)
            return
        if result["rounds"] >= max_rounds:
            break
        result["rounds"] += 1
        deleted = _delete_pods(core, namespace, hunter_sel)

        def settled(objects: Mapping[str, Any], deleted: set[str] = deleted) -> bool:
            fresh = [
                p
                for uid, p in objects.items()
                if uid not in deleted and not _kube.pod_terminating(p) and p.status.pod_ip
            ]
            if any(p.status.pod_ip in victim_ips and admits(p) for p in fresh):
                return True
            return len(fresh) >= hunter_replicas

        held, objects = _kube.watch_until(
            core.list_namespaced_pod,
            settled,
            deadline,
            f"hunter pods {hunter_sel!r} in {namespace!r}",
            namespace,
            label_selector=hunter_sel,
        )
        seen |= {p.status.pod_ip for p in objects.values() if p.status and p.status.pod_ip}
        if not held:
            found = holder(list(objects.values()))
            if found is not None:
                _found(core, namespace, found, result)
                return
            result["reason"] = (
                f"timed out in round {result['rounds']} of {max_rounds}: no hunter pod got "
                f"one of the victim's IPs {sorted(victim_ips)}"
            )
            return
    result["hunter_nodes"] = sorted(
        set(result["hunter_nodes"])
        | {str(p["node"]) for p in _live_pods(core, namespace, hunter_sel)}
    )
    result["reason"] = (
        f"no IP reused: after {max_rounds} round(s) ({hunter_replicas} hunter pod(s) each, "
        f"{len(seen)} distinct IPs seen) no hunter pod held one of the victim's IPs "
        f"{sorted(victim_ips)}; IPs are only reused within a node's pod CIDR "
        f"(victim ran on {result['victim_nodes']}, hunter on {result['hunter_nodes']})"
    )


def _holder(
    pods: list[Any], victim_ips: set[str], admits: Callable[[Any], bool], rejected: list[Any]
) -> Any:
    """The first live pod whose IP was the victim's and that ``admits`` accepts, if any;
    a holder it refuses is added to ``rejected`` (once)."""
    for pod in sorted(pods, key=lambda p: str(p.metadata.name)):
        if _kube.pod_terminating(pod) or not pod.status or pod.status.pod_ip not in victim_ips:
            continue
        if admits(pod):
            return pod
        brief = _brief(pod)
        if brief not in rejected:
            rejected.append(brief)
    return None


def _brief(pod: Any) -> JSONObject:
    """A pod for the journal, with when it was created (the API server's clock)."""
    created = pod.metadata.creation_timestamp
    return {**_kube.pod_brief(pod), "created": created.isoformat() if created else None}


def _tell_story(result: JSONObject, precondition: _cut.StaleCachePrecondition | None) -> None:
    """``reproduced`` and ``scenario``: the stale-cache story in words (with a precondition)."""
    if precondition is None:
        return
    since = result["precondition"]["cut_since"]
    nodes = ", ".join(precondition.nodes)
    if result["found"]:
        pod = result["pod"]
        result["reproduced"] = True
        result["scenario"] = (
            f"reproduced: {pod['name']} (created {pod['created']}) got {result['recycled_ip']}, "
            f"an IP of {result['victim']}'s, while {nodes} had been cut off from the API "
            f"server since {since}: an IP cache there cannot know it changed hands"
        )
        return
    result["reproduced"] = False
    rejected = result["rejected"]
    refused = (
        "; holder(s) created before the cut or after it ended, not counted: "
        + ", ".join(f"{r['name']} ({r['pod_ip']}, created {r['created']})" for r in rejected)
        if rejected
        else ""
    )
    result["scenario"] = f"not reproduced: {result['reason']}{refused}"


def _found(core: Any, namespace: str, pod: Any, result: JSONObject) -> None:
    """Confirm by a fresh read that the pod holds the IP, then record it."""
    with api_errors(f"read pod {namespace}/{pod.metadata.name}"):
        fresh = core.read_namespaced_pod(pod.metadata.name, namespace)
    if fresh.metadata.uid != pod.metadata.uid or fresh.status.pod_ip != pod.status.pod_ip:
        return  # raced with a deletion: the next round looks again
    result["found"] = True
    result["recycled_ip"] = fresh.status.pod_ip
    result["pod"] = _brief(fresh)
    # So that later activities can find it: `<hunter selector>,chaosmesh-sec.io/recycled-from`
    _label(core, fresh.metadata.name, namespace, result["victim"])


def _unlabel_earlier(core: Any, namespace: str, victim: str) -> None:
    """Take the label off pods an earlier hunt of ``victim`` found: it names this hunt's."""
    selector = f"{RECYCLED_FROM}={victim}"
    with api_errors(f"list pods labelled {selector} in {namespace!r}"):
        earlier = core.list_namespaced_pod(namespace, label_selector=selector).items
    for pod in earlier:
        _label(core, pod.metadata.name, namespace, None)


def _label(core: Any, name: str, namespace: str, value: str | None) -> None:
    patch = {"metadata": {"labels": {RECYCLED_FROM: value}}}
    with api_errors(f"label pod {namespace}/{name}"):
        try:
            core.patch_namespaced_pod(name, namespace, patch)
        except k8s_exceptions.ApiException as exc:
            if exc.status != 404:  # gone since: nothing to label
                raise


def _delete_pods(core: Any, namespace: str, selector: str) -> set[str]:
    """Delete the live pods matching ``selector`` (uid preconditions); return their uids."""
    deleted: set[str] = set()
    for pod in _live_pod_objects(core, namespace, selector):
        wl.delete_pod(core, pod)
        logger.debug(
            "deleted hunter pod %s/%s (%s)", namespace, pod.metadata.name, pod.status.pod_ip
        )
        deleted.add(pod.metadata.uid)
    return deleted


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
            _deployment_name("name", name),
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


def _deployment_name(name: str, value: Any) -> str:
    """A required Deployment name (its default "" means "not given")."""
    if isinstance(value, str) and value == "":
        raise InvalidInput(name, "required: the name of a Deployment")
    return _validate.dns_subdomain(name, value)


def _replicas(value: Any) -> int:
    """The ``replicas`` input: required (its default -1 means "not given"), >= 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value == -1:
        raise InvalidInput("replicas", "required: the number of replicas to set (>= 0)")
    return _validate.non_negative_int("replicas", value)


def _spec_replicas(deployment: Any) -> int:
    """A Deployment's desired replicas (the API defaults an unset value to 1)."""
    replicas = deployment.spec.replicas
    return 1 if replicas is None else int(replicas)


def _patch_replicas(apps: Any, name: str, namespace: str, replicas: int) -> int:
    """Set the scale subresource; return the replicas the API now holds for the spec."""
    with api_errors(f"scale Deployment {namespace}/{name} to {replicas}"):
        scale = apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}}
        )
    logger.info("Scaled Deployment %s/%s to %d replicas", namespace, name, replicas)
    return int(scale.spec.replicas or 0)  # 0 is omitted from the JSON


def _undo_scale(apps: Any, name: str, namespace: str, replicas: int) -> str:
    """Best effort: restore a Deployment's ``replicas`` and clear its ledger entry."""
    try:
        _patch_replicas(apps, name, namespace, replicas)
        _ledger.clear_replicas(apps, name, namespace)
    except Exception as exc:  # noqa: BLE001 - report, the original error is raised
        logger.error("could not restore %s/%s to %d replicas: %s", namespace, name, replicas, exc)
        return (
            f"Deployment {name!r} is left scaled: restore it to {replicas} replicas "
            "(`chaosmesh-sec rollback` reads the count from its ledger entry)"
        )
    return f"Deployment {name!r} was restored to {replicas} replicas"


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
    asked = _patch_replicas(apps, name, namespace, replicas)
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

    def complete(objects: Mapping[str, Any]) -> bool:
        for dep in objects.values():
            if states is not None:
                states["deployment"] = dep
            want = _spec_replicas(dep) if replicas is None else replicas
            if wl.rollout_complete(dep, want):
                return True
        return False

    held, _ = _kube.watch_until(
        apps.list_namespaced_deployment,
        complete,
        deadline,
        f"Deployment {namespace}/{name}",
        namespace,
        field_selector=f"metadata.name={name}",
    )
    return held


# ---------------------------------------------------------------- pods


def _live_pod_objects(core: Any, namespace: str, selector: str) -> list[Any]:
    with api_errors(f"list pods {selector!r} in namespace {namespace!r}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if not _kube.pod_terminating(p)]


def _live_pods(core: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
    """Name, uid, node and IP of the non-terminating pods matching ``selector``, by name."""
    pods = _live_pod_objects(core, namespace, selector)
    return sorted((_kube.pod_brief(p) for p in pods), key=lambda p: str(p["name"]))


def _ips(pods: list[dict[str, Any]]) -> list[str]:
    return sorted({str(p["pod_ip"]) for p in pods if p["pod_ip"]})
