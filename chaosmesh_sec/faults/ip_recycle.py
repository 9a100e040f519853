"""The seeds' hunt for a recycled pod IP: a freed IP handed to a pod of another workload.

A pod IP freed by one workload is soon handed to another pod on the same node.
Anything that still maps that IP to the old identity (an IP -> identity cache that
went stale, an allow-list by IP) then grants the newcomer the old pod's rights.
:func:`hunt_recycled_ip` makes that happen on purpose and says which pod got which IP;
with ``cut_off_pods`` it also establishes the stale-cache precondition (see
:mod:`chaosmesh_sec.faults._cut`) and says in words whether the story was reproduced.

The victim's replica change is written to the ledger first (as the churn faults do);
rollback: :func:`chaosmesh_sec.faults.churn.restore_replicas`. No ``from __future__
import annotations`` here: chaoslib's ``discover()`` reads the signature at run time.
"""

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from chaosmesh_sec import _kube, _run, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, apps_v1, core_v1
from chaosmesh_sec.errors import FaultNotApplied, InvalidInput
from chaosmesh_sec.faults import _cut, _ledger
from chaosmesh_sec.faults import _workloads as wl
from chaosmesh_sec.journal import scenario_sentence

__all__ = ["hunt_recycled_ip"]

logger = logging.getLogger("chaostoolkit")

RECYCLED_FROM = _ledger.RECYCLED_FROM


def _hunt_inputs(
    victim: Any,
    hunter: Any,
    namespace: Any,
    max_rounds: Any,
    timeout_seconds: Any,
    cut_off_pods: Any,
    fault_namespace: Any,
) -> tuple[str, str, str, int, int, str, str]:
    """:func:`hunt_recycled_ip`'s input check (pure)."""
    victim = wl.deployment_name("victim", victim)
    hunter = wl.deployment_name("hunter", hunter)
    if victim == hunter:
        raise InvalidInput("hunter", f"must be another Deployment than victim {victim!r}")
    return (
        victim,
        hunter,
        _validate.dns_label("namespace", namespace),
        _validate.positive_int("max_rounds", max_rounds),
        _validate.duration("timeout_seconds", timeout_seconds),
        _validate.optional_label_selector("cut_off_pods", cut_off_pods),
        _validate.dns_label("fault_namespace", fault_namespace),
    )


@_validate.checks(_hunt_inputs)
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
    activity can select it (an identity matrix run from that very pod). The label is a
    ledger entry carrying the run id: `restore_replicas` of `victim` and the safety net
    take it off. The hunt first takes it off any pod an earlier hunt of `victim` in this
    run left it on; a pod labelled so by another run stops the hunt before any change
    (FaultNotApplied: `chaosmesh-sec rollback` heals it), since a later selector would
    pick that stale pod too.

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
    victim, hunter, namespace, max_rounds, timeout_seconds, cut_off_pods, fault_namespace = (
        _hunt_inputs(
            victim, hunter, namespace, max_rounds, timeout_seconds, cut_off_pods, fault_namespace
        )
    )

    core, apps = core_v1(configuration, secrets), apps_v1(configuration, secrets)
    _kube.require_namespace(core, namespace)
    victim_dep = _kube.read_deployment(apps, victim, namespace, "victim")
    hunter_dep = _kube.read_deployment(apps, hunter, namespace, "hunter")
    for role, dep in (("victim", victim_dep), ("hunter", hunter_dep)):
        if dep.spec.template.spec.host_network:
            raise InvalidInput(role, f"Deployment {dep.metadata.name!r} uses hostNetwork")
    hunter_replicas = wl.spec_replicas(hunter_dep)
    if hunter_replicas < 1:
        raise InvalidInput("hunter", f"Deployment {hunter!r} has 0 replicas: nothing to rotate")
    victim_sel = wl.deployment_selector(victim_dep.spec.selector)
    hunter_sel = wl.deployment_selector(hunter_dep.spec.selector)
    victim_pods = wl.live_pods(core, namespace, victim_sel)
    victim_ips = wl.ips_of(victim_pods)
    if not victim_ips:
        raise InvalidInput("victim", f"no pod of Deployment {victim!r} has an IP to recycle")
    hunter_pods = wl.live_pods(core, namespace, hunter_sel)
    if {p["uid"] for p in victim_pods} & {p["uid"] for p in hunter_pods}:
        raise InvalidInput("hunter", f"its selector {hunter_sel!r} also matches the victim's pods")
    precondition = None
    if cut_off_pods:
        precondition = _cut.stale_cache_precondition(core, cut_off_pods, namespace, fault_namespace)
        if precondition is None:
            raise InvalidInput(
                "cut_off_pods", f"no Running pod matches {cut_off_pods!r} in {namespace!r}"
            )
    _unlabel_earlier(core, namespace, victim)  # before any change: it refuses others' labels
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
    previous = _ledger.record_replicas(apps, victim_dep, wl.spec_replicas(victim_dep), _ledger.HUNT)
    result["victim_previous_replicas"] = previous
    started = time.monotonic()
    deadline = started + timeout_seconds
    wl.patch_replicas(apps, victim, namespace, 0)
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
        undone = wl.undo_scale(apps, victim, namespace, previous)
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
        current = wl.live_pod_objects(core, namespace, hunter_sel)
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
        | {str(p["node"]) for p in wl.live_pods(core, namespace, hunter_sel)}
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
        result["scenario"] = scenario_sentence(
            True,
            f"{pod['name']} (created {pod['created']}) got {result['recycled_ip']}, "
            f"an IP of {result['victim']}'s, while {nodes} had been cut off from the API "
            f"server since {since}: an IP cache there cannot know it changed hands",
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
    result["scenario"] = scenario_sentence(False, f"{result['reason']}{refused}")


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
    _ledger.record_recycled(core, fresh.metadata.name, namespace, result["victim"])


def _unlabel_earlier(core: Any, namespace: str, victim: str) -> None:
    """Take the label off pods an earlier hunt of ``victim`` in this run found (it names
    this hunt's); refuse, before any change, if another run's label is there."""
    mine = _run.run_id()
    earlier = _ledger.pending_recycled(core, namespace, victim=victim)
    others = [e for e in earlier if e["run_id"] != mine]
    if others:
        whose = ", ".join(f"{e['name']} (run {e['run_id'] or 'unknown'})" for e in others)
        raise FaultNotApplied(
            f"pod(s) {whose} in {namespace!r} carry another run's {RECYCLED_FROM}={victim} "
            "label; a later selector would pick them too. Nothing was changed: heal them "
            "with `chaosmesh-sec rollback` (or wait for that run's safety net)"
        )
    for entry in earlier:
        _ledger.clear_recycled(core, entry["name"], namespace)


def _delete_pods(core: Any, namespace: str, selector: str) -> set[str]:
    """Delete the live pods matching ``selector`` (uid preconditions); return their uids."""
    deleted: set[str] = set()
    for pod in wl.live_pod_objects(core, namespace, selector):
        wl.delete_pod(core, pod)
        logger.debug(
            "deleted hunter pod %s/%s (%s)", namespace, pod.metadata.name, pod.status.pod_ip
        )
        deleted.add(pod.metadata.uid)
    return deleted
