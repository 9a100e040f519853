"""Probe: is every sidecar pod's traffic really captured by its proxy?

A sidecar only enforces mTLS and AuthorizationPolicy on traffic its pod's ``nat``
rules send through it. With istio-cni those rules are written by the CNI plugin
when the pod's network is set up; a pod set up while the plugin was missing from
the node's chain (istio-cni-node restarting) has none, and its app is reachable
around the proxy: a fail-open no policy shows. Three witnesses, per pod:

- the ``istio-validation`` init container's exit code (126: traffic not captured;
  the pod is then held in Init, caught). Its latest run counts: a pod whose rules
  istio-cni's repair controller wrote in place passes on its next run (``repaired``);
- the label istio-cni's repair controller puts on such pods
  (``cni.istio.io/uninitialized``);
- the ``ISTIO_INBOUND`` / ``ISTIO_IN_REDIRECT`` / ``ISTIO_OUTPUT`` /
  ``ISTIO_REDIRECT`` chains and their jumps, read from the pod's own network
  namespace through an inspection pod on its node
  (:mod:`chaosmesh_sec.probes._node_pod`), when `inspect_nodes` allows.

A pod is ``redirected``, ``caught`` (not captured, but held back before its app
ran), ``unredirected`` (its app runs without capture: the failure) or ``unknown``.
No ``from __future__ import annotations``: chaoslib reads the signature.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._run import FAULT_NAMESPACE
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, core_v1
from chaosmesh_sec.probes._nat_rules import NatView, dump_script, parse_dumps
from chaosmesh_sec.probes._node_pod import DEFAULT_IMAGE, node_pod

__all__ = ["redirection_in_place"]

logger = logging.getLogger("chaostoolkit")

PROXY = "istio-proxy"
VALIDATION_ERROR_CODE = 126
PARALLEL_NODES = 4
VERDICTS = ("redirected", "caught", "unredirected", "unknown")


def _redirection_inputs(
    namespace: Any,
    label_selector: Any,
    node: Any,
    inspect_nodes: Any,
    validation_container: Any,
    uninitialized_label: Any,
    probe_namespace: Any,
    image: Any,
    tolerate_control_plane: Any,
) -> tuple[str, str, str, bool, str, str, str, str, bool]:
    """:func:`redirection_in_place`'s input check (pure)."""
    return (
        _validate.optional_dns_label("namespace", namespace),
        _validate.optional_label_selector("label_selector", label_selector),
        _validate.optional_dns_subdomain("node", node),
        _validate.boolean("inspect_nodes", inspect_nodes),
        _validate.dns_label("validation_container", validation_container),
        _validate.label_selector("uninitialized_label", uninitialized_label),
        _validate.dns_label("probe_namespace", probe_namespace),
        _validate.image("image", image, "sh, nsenter, ip and iptables-save"),
        _validate.boolean("tolerate_control_plane", tolerate_control_plane),
    )


@_validate.checks(_redirection_inputs)
def redirection_in_place(
    namespace: str = "",
    label_selector: str = "",
    node: str = "",
    inspect_nodes: bool = True,
    validation_container: str = "istio-validation",
    uninitialized_label: str = "cni.istio.io/uninitialized",
    probe_namespace: str = FAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    tolerate_control_plane: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Is the traffic of every sidecar pod (in `namespace`, matching `label_selector`,
    on `node`; empty: all) redirected through its proxy?

    Per pod: the exit code of init container `validation_container`'s latest run (126
    means not captured; `repaired` when an earlier run exited 126), whether it
    carries `uninitialized_label`, and, when `inspect_nodes`, its nat chains read on
    its node by an inspection pod in `probe_namespace` (image `image`: needs sh,
    nsenter, ip, iptables-save; hostPID and the
    capabilities SYS_ADMIN, SYS_PTRACE, NET_ADMIN, NET_RAW, not privileged; the
    control-plane taints tolerated only when `tolerate_control_plane`).
    Verdicts: `redirected`; `caught` (not captured, app not started);
    `unredirected` (app running without capture); `unknown` (no witness). Returns
    `{"holds", "counts": {verdict: n}, "unredirected": [pod], "caught": [pod],
    "pods": [{"pod", "namespace", "node", "ip", "phase", "app_running",
    "validation_exit_code", "repaired", "uninitialized_label", "nat", "verdict",
    "detail"}],
    "checked_at"}`; `holds` is false when any pod is `unredirected`. Tolerance:
    `$.holds`.
    """
    (
        namespace,
        label_selector,
        node,
        inspect_nodes,
        validation_container,
        uninitialized_label,
        probe_namespace,
        image,
        tolerate_control_plane,
    ) = _redirection_inputs(
        namespace,
        label_selector,
        node,
        inspect_nodes,
        validation_container,
        uninitialized_label,
        probe_namespace,
        image,
        tolerate_control_plane,
    )
    core = core_v1(configuration, secrets)
    if namespace:
        _kube.require_namespace(core, namespace)
    if node:
        _kube.require_node(core, node)
    if inspect_nodes:
        _kube.require_namespace(core, probe_namespace, "probe_namespace")
    pods = _sidecar_pods(core, namespace, label_selector, node)
    views: dict[str, NatView] = {}
    if inspect_nodes and pods:
        views = _read_nat(core, probe_namespace, image, pods, tolerate_control_plane)
    rows = [
        _judge(p, validation_container, uninitialized_label, inspect_nodes, views) for p in pods
    ]
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in VERDICTS}
    for r in rows:
        if r["verdict"] != "redirected":
            logger.info("redirection: %s/%s: %s", r["namespace"], r["pod"], r["detail"])
    return {
        "holds": counts["unredirected"] == 0,
        "counts": counts,
        "unredirected": [
            f"{r['namespace']}/{r['pod']}" for r in rows if r["verdict"] == "unredirected"
        ],
        "caught": [f"{r['namespace']}/{r['pod']}" for r in rows if r["verdict"] == "caught"],
        "pods": rows,
        "checked_at": datetime.now(UTC).isoformat(),
    }


def _sidecar_pods(core: Any, namespace: str, selector: str, node: str) -> list[Any]:
    fields = f"spec.nodeName={node}" if node else ""
    with api_errors("list pods"):
        if namespace:
            listed: Any = core.list_namespaced_pod(
                namespace, label_selector=selector, field_selector=fields
            )
        else:
            listed = core.list_pod_for_all_namespaces(
                label_selector=selector, field_selector=fields
            )
    return [
        p
        for p in listed.items
        if any(c.name == PROXY for c in p.spec.containers)
        and not p.spec.host_network
        and not _kube.pod_terminating(p)
        and p.status.phase not in ("Succeeded", "Failed")
        and p.status.pod_ip
        and p.spec.node_name
    ]


def _read_nat(
    core: Any, probe_namespace: str, image: str, pods: list[Any], control_plane: bool
) -> dict[str, NatView]:
    by_node: dict[str, list[str]] = {}
    for p in pods:
        by_node.setdefault(p.spec.node_name, []).append(p.status.pod_ip)
    config = core.api_client.configuration

    def one(item: tuple[str, list[str]]) -> dict[str, NatView]:
        node, ips = item
        inspector = node_pod(
            core, config, node, probe_namespace, image, "redirection", control_plane
        )
        with inspector as pod:
            return parse_dumps(pod.run(dump_script(ips)))

    views: dict[str, NatView] = {}
    with ThreadPoolExecutor(max_workers=PARALLEL_NODES) as pool:
        for found in pool.map(one, sorted(by_node.items())):
            views.update(found)
    return views


def _validation_runs(pod: Any, container: str) -> tuple[int | None, int | None]:
    """The exit code of ``container``'s latest ended run (None: none ended yet), and of
    the run before it (None: no earlier run ended)."""
    for status in pod.status.init_container_statuses or []:
        if status.name != container:
            continue
        ended = [
            state.terminated.exit_code
            for state in (status.state, status.last_state)
            if state is not None and state.terminated is not None
        ]
        now = status.state.terminated if status.state is not None else None
        if now is not None:  # it ended: this run, then the one before
            return ended[0], ended[1] if len(ended) > 1 else None
        return (ended[0] if ended else None), None  # waiting or running again
    return None, None


def _app_running(pod: Any) -> bool:
    return pod.status.phase == "Running" and any(
        s.name != PROXY and s.state is not None and s.state.running is not None
        for s in pod.status.container_statuses or []
    )


def _judge(
    pod: Any, validation: str, label: str, inspected: bool, views: dict[str, NatView]
) -> dict[str, Any]:
    code, before = _validation_runs(pod, validation)
    # repaired in place: istio-cni's repair controller wrote the rules into the running
    # pod, and the validation that had exited 126 passed on its next run
    repaired = code == 0 and before == VALIDATION_ERROR_CODE
    labelled = label in (pod.metadata.labels or {})
    running = _app_running(pod)
    view = views.get(pod.status.pod_ip)
    failed = code == VALIDATION_ERROR_CODE or labelled
    if view is not None:
        captured: bool | None = view.redirected
    elif code == 0:
        captured = True
    else:
        captured = False if failed else None
    if captured:
        verdict, detail = "redirected", "traffic captured"
    elif captured is None:
        verdict = "unknown"
        detail = "no witness: no validation result and the node was not inspected"
        if inspected:
            detail = "its network namespace was not found on its node"
    elif running:
        verdict = "unredirected"
        detail = "its app runs without the ISTIO_* rules: traffic bypasses the proxy"
    else:
        verdict = "caught"
        detail = "not captured, held back before its app started"
    if code not in (None, 0):
        detail += f"; {validation} exited {code}"
        if captured and code == VALIDATION_ERROR_CODE:  # the repair controller was here
            detail += ", the rules are in since: being repaired in place"
    if repaired:
        detail += f"; repaired in place: {validation} exited {before}, then passed"
    if labelled:
        detail += f"; labelled {label}"
    return {
        "pod": pod.metadata.name,
        "namespace": pod.metadata.namespace,
        "node": pod.spec.node_name,
        "ip": pod.status.pod_ip,
        "phase": pod.status.phase,
        "app_running": running,
        "validation_exit_code": code,
        "repaired": repaired,
        "uninitialized_label": labelled,
        "nat": view.as_dict() if view is not None else None,
        "verdict": verdict,
        "detail": detail,
    }
