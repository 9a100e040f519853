"""Kill istiod replicas, never all of them unless asked, and time the ReplicaSet's recovery.

No ``from __future__ import annotations`` here: chaoslib's ``discover()`` reads these
signatures at run time (see :mod:`chaosmesh_sec._types`).
"""

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, core_v1
from chaosmesh_sec.errors import FaultNotApplied, InvalidInput
from chaosmesh_sec.faults import _workloads as wl

__all__ = ["kill_istiod_replicas"]

logger = logging.getLogger("chaostoolkit")


def _kill_inputs(
    count: Any,
    fraction: Any,
    node: Any,
    allow_all: Any,
    wait_ready: Any,
    timeout_seconds: Any,
    namespace: Any,
    label_selector: Any,
) -> tuple[int, float, str, bool, bool, int, str, str]:
    """:func:`kill_istiod_replicas`' input check (pure)."""
    count = _validate.non_negative_int("count", count)
    fraction = _validate.fraction("fraction", fraction)
    _deciding_input(count, fraction)
    return (
        count,
        fraction,
        _validate.optional_dns_subdomain("node", node),
        _validate.boolean("allow_all", allow_all),
        _validate.boolean("wait_ready", wait_ready),
        _validate.duration("timeout_seconds", timeout_seconds),
        _validate.dns_label("namespace", namespace),
        _validate.label_selector("label_selector", label_selector),
    )


@_validate.checks(_kill_inputs)
def kill_istiod_replicas(
    count: int = 1,
    fraction: float = 0.0,
    node: str = "",
    allow_all: bool = False,
    wait_ready: bool = True,
    timeout_seconds: int = 120,
    namespace: str = "istio-system",
    label_selector: str = "app=istiod",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Delete `count` istiod pods (or `fraction` of them), then wait for replacements.

    Exactly one of `count` / `fraction` decides: a `fraction` in (0, 1] picks
    that share of the candidate pods, rounded up; `count` then stays at its
    default (or 0). Candidates are the pods matching `label_selector` in
    `namespace`, only those on `node` when it is given (it must exist). Ready pods
    are picked first, oldest first. Refused before anything is deleted: no pod
    matches, a pod has no controller to replace it, or the kill would leave no
    Ready replica (unless `allow_all` is true).

    With `wait_ready`, watches the pods until as many are Ready as before the kill
    (at most `timeout_seconds`); a timeout is reported as `recovered: false`, not
    raised. Returns `{"killed": [{"name", "uid", "node", "pod_ip", "ready"}],
    "replacements": [{"name", "uid", "node", "pod_ip", "ready_at"}], "ready_before",
    "ready_after", "recovered", "recovery_seconds", "decided_by", "namespace",
    "label_selector", "node", "reason"}`.

    No rollback: the ReplicaSet replaces the pods. Tolerate on `$.recovered` of
    this action's result to check recovery without a separate probe.
    """
    count, fraction, node, allow_all, wait_ready, timeout_seconds, namespace, label_selector = (
        _kill_inputs(
            count, fraction, node, allow_all, wait_ready, timeout_seconds, namespace, label_selector
        )
    )
    decided_by = _deciding_input(count, fraction)
    core = core_v1(configuration, secrets)
    _kube.require_namespace(core, namespace)
    if node:
        _kube.require_node(core, node)
    with api_errors(f"list pods {label_selector!r} in namespace {namespace!r}"):
        listed = core.list_namespaced_pod(namespace, label_selector=label_selector)
    pods = [p for p in listed.items if not _kube.pod_terminating(p)]
    victims, ready_before = _plan_kill(
        pods, count, fraction, node, allow_all, where=f"{label_selector!r} in {namespace!r}"
    )

    started = time.monotonic()
    killed = _delete(core, namespace, victims)
    result: JSONObject = {
        "namespace": namespace,
        "label_selector": label_selector,
        "node": node,
        "decided_by": decided_by,
        "killed": killed,
        "ready_before": ready_before,
        "ready_after": None,
        "recovered": None,
        "recovery_seconds": None,
        "replacements": [],
        "reason": None,
    }
    if not wait_ready:
        return result

    known = {p.metadata.uid for p in listed.items if p.metadata}
    dead = {p.metadata.uid for p in victims}

    def healed(objects: Mapping[str, Any]) -> bool:
        return _ready_survivors(objects, dead) >= ready_before

    held, objects = _kube.watch_until(
        core.list_namespaced_pod,
        healed,
        started + timeout_seconds,
        f"pods {label_selector!r} in {namespace!r}",
        namespace,
        label_selector=label_selector,
    )
    result["ready_after"] = _ready_survivors(objects, dead)
    result["recovered"] = held
    result["replacements"] = [
        {**_kube.pod_brief(p), "ready_at": _kube.pod_ready_at(p)}
        for p in sorted(objects.values(), key=lambda p: str(p.metadata.name))
        if p.metadata.uid not in known and not _kube.pod_terminating(p)
    ]
    if held:
        result["recovery_seconds"] = round(time.monotonic() - started, 3)
        logger.info(
            "istiod recovered: %d Ready again after %.1fs",
            result["ready_after"],
            result["recovery_seconds"],
        )
    else:
        result["reason"] = (
            f"only {result['ready_after']} of {ready_before} pods Ready "
            f"{timeout_seconds}s after the kill"
        )
        logger.warning("istiod did not recover: %s", result["reason"])
    return result


def _deciding_input(count: int, fraction: float) -> str:
    """Which of count / fraction decides; refuse both or neither."""
    if fraction > 0:
        if count not in (0, 1):
            raise InvalidInput(
                "fraction",
                f"give count or fraction, not both (count={count}, fraction={fraction})",
            )
        return "fraction"
    if count == 0:
        raise InvalidInput("count", "must be >= 1 (or give a fraction in (0, 1])")
    return "count"


def _kill_count(count: int, fraction: float, candidates: int) -> int:
    """How many pods to kill: `count`, or `fraction` of `candidates` rounded up (at least 1)."""
    if fraction > 0:
        # 0.1 * 30 is 3.0000000000000004 in floating point: it means 3, not 4
        return max(1, math.ceil(round(fraction * candidates, 9)))
    return count


def _plan_kill(
    pods: Sequence[Any],
    count: int,
    fraction: float,
    node: str,
    allow_all: bool,
    where: str = "",
) -> tuple[list[Any], int]:
    """Pick the pods to delete (pure): returns ``(victims, ready_before)`` or raises InvalidInput.

    ``pods`` are the non-terminating pods matching the selector; ``ready_before``
    counts the Ready ones among them, whatever their node.
    """
    decided_by = _deciding_input(count, fraction)
    if not pods:
        raise InvalidInput("label_selector", f"no running pod matches {where or 'it'}")
    candidates = [p for p in pods if not node or p.spec.node_name == node]
    if not candidates:
        raise InvalidInput("node", f"no pod matching {where or 'the selector'} runs on {node!r}")
    wanted = _kill_count(count, fraction, len(candidates))
    if wanted > len(candidates):
        on = f" on node {node!r}" if node else ""
        raise InvalidInput("count", f"asks for {wanted} pods but only {len(candidates)} match{on}")
    ordered = sorted(
        candidates,
        key=lambda p: (
            not _kube.pod_ready(p),
            p.metadata.creation_timestamp is None,
            p.metadata.creation_timestamp or 0,
            p.metadata.name,
        ),
    )
    victims = ordered[:wanted]
    for pod in victims:
        if not any(ref.controller for ref in pod.metadata.owner_references or []):
            raise InvalidInput(
                "label_selector",
                f"pod {pod.metadata.name!r} has no controller (ReplicaSet): "
                "nothing would replace it",
            )
    ready_before = sum(1 for p in pods if _kube.pod_ready(p))
    ready_left = ready_before - sum(1 for p in victims if _kube.pod_ready(p))
    if ready_before > 0 and ready_left == 0 and not allow_all:
        raise InvalidInput(
            decided_by,
            f"killing {wanted} pod(s) would leave none of the {ready_before} Ready "
            "replicas; set allow_all: true to kill them all on purpose",
        )
    return victims, ready_before


def _delete(core: Any, namespace: str, victims: Sequence[Any]) -> list[dict[str, Any]]:
    """Delete each pod (only the very pod listed: uid precondition); say what was deleted."""
    killed: list[dict[str, Any]] = []
    for pod in victims:
        entry = {**_kube.pod_brief(pod), "ready": _kube.pod_ready(pod)}
        try:
            entry["deleted"] = wl.delete_pod(core, pod)
        except Exception as exc:
            done = [k["name"] for k in killed if k["deleted"]]
            raise FaultNotApplied(
                f"could not delete pod {pod.metadata.name!r} ({exc}); already deleted: "
                f"{done or 'none'} (their ReplicaSet replaces them)"
            ) from exc
        logger.info(
            "Killed istiod pod %s/%s on %s", namespace, pod.metadata.name, pod.spec.node_name
        )
        killed.append(entry)
    return killed


def _ready_survivors(objects: Mapping[str, Any], dead: set[str]) -> int:
    """Ready pods that are not among the killed ones."""
    return sum(1 for uid, pod in objects.items() if uid not in dead and _kube.pod_ready(pod))
