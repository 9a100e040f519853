"""Cut one node off from the API server, with real iptables rules, and heal it.

The fault runs a privileged hostNetwork pod pinned to the node. Its script installs
DROP rules (mangle table, chains named after the run id) for every address of the API
server, both directions, and removes them itself when ``duration_seconds`` ends or
when the pod is stopped, so the node heals even if the runner dies (nobody else can
reach a cut-off node). The rollback removes the rules by exact spec through ``exec``,
verifies that none is left, and deletes the pod.

By default only the API server's serving ports are dropped: the API server can still
reach the node's kubelet, so ``exec`` (the early heal) keeps working. With
``all_ports: true`` every packet to and from the API server's addresses is dropped:
closer to a full cut, but then the rollback cannot ``exec`` and the pod's own timer
(or its deletion once the node is back) is what heals it.
"""

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import watch

from chaosmesh_sec import _kube, _pack_pods, _run, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_client, api_errors, exception_brief
from chaosmesh_sec.errors import FaultNotApplied, InvalidInput, RollbackFailed
from chaosmesh_sec.faults import _cut
from chaosmesh_sec.faults._ledger import FAULT_LABEL, FAULT_NAMESPACE, OWNER_LABEL, RUN_LABEL
from chaosmesh_sec.faults._partition_pod import CONTAINER, NAME_LABEL, PACK, pod_name, run_id_of
from chaosmesh_sec.faults._partition_rules import (
    APPLIED_MARK,
    SCOPES,
    Endpoint,
    PartitionPlan,
    is_run_id,
    new_run_id,
    plan,
    removal_script,
    verify_script,
)

__all__ = ["heal_apiserver_partition", "partition_node_from_apiserver"]

logger = logging.getLogger("chaostoolkit")

FAULT_KIND = _cut.PARTITION_KIND
MAX_DURATION = 3600
APPLY_TIMEOUT = 60
EXEC_TIMEOUT = 30


def _target(node: Any, pods_selector: Any, pods_namespace: Any) -> tuple[str, str, str]:
    """The node, or the selector and namespace of the pods whose node to cut (checked)."""
    node = _validate.optional_dns_subdomain("node", node)
    pods_selector = _validate.optional_label_selector("target_pods_selector", pods_selector)
    pods_namespace = _validate.dns_label("target_pods_namespace", pods_namespace)
    if bool(node) == bool(pods_selector):
        raise InvalidInput("node", "give either node or target_pods_selector (exactly one)")
    return node, pods_selector, pods_namespace


def _extra_hosts(value: Any) -> list[tuple[str, int | None]]:
    """``IP`` or ``IP:port`` items, comma-separated: IPv4 only, ports 1-65535."""
    if not isinstance(value, str):
        raise InvalidInput("extra_hosts", f"must be a comma-separated string, got {value!r:.80}")
    if len(value) > _validate.MAX_TEXT:
        raise InvalidInput("extra_hosts", f"is longer than {_validate.MAX_TEXT} characters")
    hosts: list[tuple[str, int | None]] = []
    for raw in (h.strip() for h in value.split(",") if h.strip()):
        host, colon, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "")
        ip = _ipv4("extra_hosts", host, raw)
        if not colon:
            hosts.append((ip, None))
            continue
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise InvalidInput("extra_hosts", f"{raw!r}: the port must be 1-65535")
        hosts.append((ip, int(port)))
    return hosts


def _ipv4(name: str, host: str, raw: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidInput(name, f"{raw!r:.80} is not an IP or IP:port") from None
    if address.version != 4:
        raise InvalidInput(
            name, f"{raw!r}: IPv6 is not supported (the partition installs iptables rules only)"
        )
    return str(address)


def _pick_node(core: k8s.CoreV1Api, node: str, pods_selector: str, pods_namespace: str) -> str:
    if node:
        _kube.require_node(core, node)
        return node
    with api_errors(f"list pods {pods_selector!r} in {pods_namespace}"):
        listed: Any = core.list_namespaced_pod(pods_namespace, label_selector=pods_selector)
    pods: list[Any] = listed.items
    running = sorted((p for p in pods if _running_on_a_node(p)), key=lambda p: str(p.metadata.name))
    if not running:
        raise InvalidInput(
            "target_pods_selector",
            f"no Running pod matches {pods_selector!r} in namespace {pods_namespace!r}",
        )
    return str(running[0].spec.node_name)


def _running_on_a_node(pod: Any) -> bool:
    return bool(pod.status and pod.status.phase == "Running" and pod.spec and pod.spec.node_name)


def _apiserver_endpoints(
    core: k8s.CoreV1Api, discovery: k8s.DiscoveryV1Api, extra_hosts: list[tuple[str, int | None]]
) -> list[Endpoint]:
    """Every address of the API server: Service ClusterIP, EndpointSlices, extra hosts."""
    found: list[Endpoint] = []
    with api_errors("read the kubernetes Service and its EndpointSlices"):
        svc: Any = core.read_namespaced_service("kubernetes", "default")
        slices: Any = discovery.list_namespaced_endpoint_slice(
            "default", label_selector="kubernetes.io/service-name=kubernetes"
        )
    https = next((p for p in svc.spec.ports or [] if p.name == "https"), None)
    for ip in svc.spec.cluster_ips or [svc.spec.cluster_ip]:
        if ip and ip != "None":
            found.append(Endpoint(ip, https.port if https else 443))
    served: set[int] = set()
    for sl in slices.items:
        ports = [p.port for p in sl.ports or [] if p.port]
        served.update(ports)
        for ep in sl.endpoints or []:
            for addr in ep.addresses or []:
                found += [Endpoint(addr, port) for port in ports or [0]]
    for host, port in extra_hosts:
        found += [Endpoint(host, p) for p in ([port] if port else sorted(served) or [0])]
    return _ipv4_only(found)


def _ipv4_only(found: list[Endpoint]) -> list[Endpoint]:
    """``found``, if every address is IPv4; else FaultNotApplied, before any change (the
    rules are iptables, not ip6tables: an IPv6 address would stay reachable)."""
    ipv6 = sorted({e.ip for e in found if ipaddress.ip_address(e.ip).version == 6})
    if ipv6:
        raise FaultNotApplied(
            f"the API server has IPv6 addresses ({', '.join(ipv6)}): the partition installs "
            "iptables (IPv4) rules only and would leave them reachable; nothing was changed"
        )
    return found


def _fault_pod(
    p: PartitionPlan, node: str, image: str, tolerate_control_plane: bool = False
) -> k8s.V1Pod:
    """The fault pod: hostNetwork, NET_ADMIN / NET_RAW (iptables), no token, pinned to
    ``node``; the one shape ``deploy/admission-policy.yaml`` admits as a partition."""
    labels = {
        FAULT_LABEL: FAULT_KIND,
        RUN_LABEL: p.run_id,
        OWNER_LABEL: _run.run_id(),
        NAME_LABEL: PACK,
    }
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=pod_name(p.run_id),
            labels=labels,
        ),
        spec=k8s.V1PodSpec(
            node_name=node,
            host_network=True,
            restart_policy="Never",
            termination_grace_period_seconds=10,
            active_deadline_seconds=p.duration_seconds + 60,
            automount_service_account_token=False,
            tolerations=_pack_pods.tolerations(tolerate_control_plane),
            containers=[
                k8s.V1Container(
                    name=CONTAINER,
                    image=image,
                    command=["sh", "-c", p.pod_script()],
                    security_context=k8s.V1SecurityContext(
                        privileged=False,
                        capabilities=k8s.V1Capabilities(add=["NET_ADMIN", "NET_RAW"]),
                    ),
                )
            ],
        ),
    )


def _wait_applied(core: k8s.CoreV1Api, name: str, namespace: str) -> float:
    """Follow the fault pod's log until it says the rules are in; return when (epoch)."""
    deadline = time.monotonic() + APPLY_TIMEOUT
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=APPLY_TIMEOUT,
    ):
        pod: Any = event["object"]
        if pod.status.phase in ("Running", "Succeeded", "Failed"):
            w.stop()
            break
    while time.monotonic() < deadline:
        try:
            resp: Any = core.read_namespaced_pod_log(
                name, namespace, follow=True, _preload_content=False, _request_timeout=10
            )
        except k8s.ApiException as exc:
            if exc.status not in (400, 404):  # 400: the node has no log for it yet
                raise
            time.sleep(0.2)
            continue
        try:
            for line in resp.stream():
                text = line.decode(errors="replace")
                if APPLIED_MARK in text:
                    return time.time()
                if "could not apply" in text:
                    raise FaultNotApplied(f"the fault pod {name} could not apply its rules: {text}")
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            pass
        finally:
            resp.release_conn()
        time.sleep(0.2)
    raise FaultNotApplied(f"the fault pod {name} did not report its rules within {APPLY_TIMEOUT}s")


@dataclass(frozen=True)
class _PartitionInputs:
    """:func:`partition_node_from_apiserver`'s inputs, checked."""

    target: tuple[str, str, str]
    duration: int
    scope: str
    all_ports: bool
    hosts: list[tuple[str, int | None]]
    image: str
    fault_namespace: str
    tolerate_control_plane: bool


def _partition_inputs(
    node: Any,
    target_pods_selector: Any,
    target_pods_namespace: Any,
    duration_seconds: Any,
    scope: Any,
    all_ports: Any,
    extra_hosts: Any,
    image: Any,
    fault_namespace: Any,
    tolerate_control_plane: Any,
) -> _PartitionInputs:
    """:func:`partition_node_from_apiserver`'s input check (pure)."""
    duration = _validate.duration("duration_seconds", duration_seconds, maximum=MAX_DURATION)
    if not isinstance(scope, str) or scope not in SCOPES:
        raise InvalidInput("scope", f"must be one of {', '.join(SCOPES)}, got {scope!r:.80}")
    all_ports = _validate.boolean("all_ports", all_ports)
    hosts = _extra_hosts(extra_hosts)
    image = _validate.image("image", image, "sh and iptables")
    fault_namespace = _validate.dns_label("fault_namespace", fault_namespace)
    tolerate = _validate.boolean("tolerate_control_plane", tolerate_control_plane)
    target = _target(node, target_pods_selector, target_pods_namespace)
    return _PartitionInputs(
        target, duration, scope, all_ports, hosts, image, fault_namespace, tolerate
    )


@_validate.checks(_partition_inputs)
def partition_node_from_apiserver(
    node: str = "",
    target_pods_selector: str = "",
    target_pods_namespace: str = "default",
    duration_seconds: int = 60,
    scope: str = "host",
    all_ports: bool = False,
    extra_hosts: str = "",
    image: str = _pack_pods.DEFAULT_IMAGE,
    fault_namespace: str = FAULT_NAMESPACE,
    tolerate_control_plane: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Drop traffic between one node and every address of the API server, both ways.

    The node is given by name, or as the node of the first Running pod matching
    ``target_pods_selector`` in ``target_pods_namespace``. ``scope`` is ``host`` (the
    node's own traffic: kubelet, hostNetwork agents), ``pods`` (pod traffic crossing
    the node's FORWARD chain) or ``node`` (both). ``extra_hosts``: comma-separated
    ``IP`` or ``IP:port``. The fault pod (image ``image``: needs sh and iptables) runs
    in ``fault_namespace``; it tolerates the control-plane taints only when
    ``tolerate_control_plane``.
    The rules remove themselves after ``duration_seconds`` even if this runner dies.
    Returns the partition's id (`run_id`), the run's (`owner_run`), node, fault pod, the
    exact rules and when they took effect.
    """
    checked = _partition_inputs(
        node,
        target_pods_selector,
        target_pods_namespace,
        duration_seconds,
        scope,
        all_ports,
        extra_hosts,
        image,
        fault_namespace,
        tolerate_control_plane,
    )
    node, target_pods_selector, target_pods_namespace = checked.target
    duration, scope, all_ports, hosts = (
        checked.duration,
        checked.scope,
        checked.all_ports,
        checked.hosts,
    )
    image, fault_namespace = checked.image, checked.fault_namespace
    tolerate_control_plane = checked.tolerate_control_plane
    api = api_client(configuration, secrets)
    core = k8s.CoreV1Api(api)
    _kube.require_namespace(core, fault_namespace, "fault_namespace")
    target = _pick_node(core, node, target_pods_selector, target_pods_namespace)
    endpoints = _apiserver_endpoints(core, k8s.DiscoveryV1Api(api), hosts)
    if all_ports:
        endpoints = [Endpoint(e.ip, 0) for e in endpoints]
    p = plan(new_run_id(), scope, endpoints, duration)
    pod = _fault_pod(p, target, image, tolerate_control_plane)
    name = str(pod.metadata.name)  # type: ignore[union-attr]
    started = time.time()
    with api_errors(f"create fault pod {name} in {fault_namespace}"):
        core.create_namespaced_pod(fault_namespace, pod)
    logger.info("partition %s: fault pod %s/%s on node %s", p.run_id, fault_namespace, name, target)
    try:
        if all_ports:  # the node's log cannot be read: when the cut began is not known
            effective_at = time.time()
        else:
            effective_at = _wait_applied(core, name, fault_namespace)
            _stamp_in_force(core, name, fault_namespace, effective_at, effective_at + duration)
    except BaseException:
        logger.warning("partition %s: not applied; deleting the fault pod", p.run_id)
        _delete_pod(core, name, fault_namespace)
        raise
    return {
        "run_id": p.run_id,
        "owner_run": _run.run_id(),
        "node": target,
        "scope": scope,
        "all_ports": all_ports,
        "fault_pod": {"name": name, "namespace": fault_namespace},
        "endpoints": [{"ip": e.ip, "port": e.port} for e in p.endpoints],
        "rules": [" ".join(c) for c in p.apply_commands()],
        "duration_seconds": duration,
        "started_at": started,
        "effective_at": effective_at,
        "effective_verified": not all_ports,
        "self_heals_at": effective_at + duration,
    }


def _stamp_in_force(
    core: k8s.CoreV1Api, name: str, namespace: str, effective_at: float, self_heals_at: float
) -> None:
    """Write on the fault pod when the cut took effect (as verified) and when it ends."""
    stamps = {
        _cut.EFFECTIVE_AT: _cut.stamp(effective_at),
        _cut.SELF_HEALS_AT: _cut.stamp(self_heals_at),
    }
    with api_errors(f"stamp fault pod {namespace}/{name}"):
        core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": stamps}})


def _delete_pod(core: k8s.CoreV1Api, name: str, namespace: str) -> None:
    try:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=10)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


def _exec(core: k8s.CoreV1Api, pod: Any, script: str) -> str:
    """The standard output of ``script`` in the fault pod (a shell there)."""
    config = core.api_client.configuration
    out, _err = _kube.exec_in_pod(config, pod, None, ["sh", "-c", script], EXEC_TIMEOUT)
    return out


def _heal_one(core: k8s.CoreV1Api, pod: Any, run_id: str) -> tuple[str, list[str]]:
    """Heal one fault pod of the pack: ``(what it was, the problems met)``.

    A Running pod gets the removal built from its run id, then a count of what is left;
    every pod is deleted (a pod still running removes its rules on SIGTERM). What it
    was: ``healed`` (rules removed and verified), ``expired`` (Succeeded: its rules
    removed themselves when its time was up) or ``ended`` (any other state).
    """
    meta: Any = pod.metadata
    phase = pod.status.phase if pod.status else None
    problems: list[str] = []
    kind = "expired" if phase == "Succeeded" else "ended"
    if phase == "Running" and not meta.deletion_timestamp:
        kind = "healed"
        try:
            _exec(core, pod, removal_script(run_id))
            lines = _exec(core, pod, verify_script(run_id)).strip().splitlines()
            left = lines[-1].strip() if lines else ""
        except Exception as exc:  # noqa: BLE001 - reported; the deletion below heals too
            problems.append(f"exec failed ({exception_brief(exc)}); its own timer will heal")
        else:
            if left != "0":
                problems.append(f"{left or 'an unknown number of'} rule(s) left after removal")
    try:
        with api_errors(f"delete fault pod {meta.namespace}/{meta.name}"):
            _delete_pod(core, meta.name, meta.namespace)
    except Exception as exc:  # noqa: BLE001 - reported with the rest
        problems.append(f"not deleted ({exception_brief(exc)})")
    return kind, problems


def _heal_inputs(
    node: Any, run_id: Any, fault_namespace: Any, all_runs: Any
) -> tuple[str, str, str, bool]:
    """:func:`heal_apiserver_partition`'s input check (pure)."""
    node = _validate.optional_dns_subdomain("node", node)
    if not isinstance(run_id, str) or (run_id and not is_run_id(run_id)):
        raise InvalidInput("run_id", f"{run_id!r:.80} is not a partition run id (8 hex digits)")
    fault_namespace = _validate.dns_label("fault_namespace", fault_namespace)
    return node, run_id, fault_namespace, _validate.boolean("all_runs", all_runs)


@_validate.checks(_heal_inputs)
def heal_apiserver_partition(
    node: str = "",
    run_id: str = "",
    fault_namespace: str = FAULT_NAMESPACE,
    all_runs: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Remove partitions by exact spec, verify no rule is left, delete their fault pods.

    Looks only in `fault_namespace` (where the partition put its pods), optionally only
    at pods on `node` or of the partition `run_id`. A labelled pod not of the pack's
    shape is a stranger, listed and left alone (whichever run heals); of the pack's
    pods, it heals only the partitions this run made (their `chaosmesh-sec.io/owner-run`
    label; `all_runs: true`: every run's). The removal is rebuilt from each pod's run
    id, never read from the cluster. Each pod is healed on its own: one failure does not
    stop the rest. Safe to repeat. Returns `{"healed", "expired", "ended", "failed", "strangers",
    "fault_pods_deleted"}` (each healed entry with its `run_id` and `owner_run`);
    raises RollbackFailed (carrying that result) if a pod could not be healed or a rule
    could not be shown to be gone.
    """
    node, run_id, fault_namespace, all_runs = _heal_inputs(node, run_id, fault_namespace, all_runs)
    selector = f"{FAULT_LABEL}={FAULT_KIND}"
    if run_id:
        selector += f",{RUN_LABEL}={run_id}"
    mine = "" if all_runs else _run.run_id()
    core = k8s.CoreV1Api(api_client(configuration, secrets))
    with api_errors(f"list partition fault pods in {fault_namespace}"):
        pods: list[Any] = core.list_namespaced_pod(fault_namespace, label_selector=selector).items
    result: dict[str, list[Any]] = {
        "healed": [],
        "expired": [],
        "ended": [],
        "failed": [],
        "strangers": [],
        "fault_pods_deleted": [],
    }
    for pod in sorted(pods, key=lambda p: str(p.metadata.name)):
        meta: Any = pod.metadata
        where = f"{meta.namespace}/{meta.name}"
        on = pod.spec.node_name if pod.spec else None
        if node and on != node:
            continue
        pod_run, why = run_id_of(pod)
        if not pod_run:
            logger.warning("partition heal: %s is not a fault pod of this pack (%s)", where, why)
            result["strangers"].append({"pod": where, "node": on, "why": why})
            continue
        if mine and (meta.labels or {}).get(OWNER_LABEL) != mine:
            continue  # another run's partition: that run heals it (or chaosmesh-sec rollback)
        kind, problems = _heal_one(core, pod, pod_run)
        entry = {"run_id": pod_run, "owner_run": (meta.labels or {}).get(OWNER_LABEL), "node": on}
        if problems:
            result["failed"].append({**entry, "pod": where, "problems": problems})
        else:
            result[kind].append(entry)
        if not any(p.startswith("not deleted") for p in problems):
            result["fault_pods_deleted"].append(where)
            logger.info("partition %s: fault pod %s deleted (%s)", pod_run, where, kind)
    if result["failed"]:
        failures = "; ".join(f"{f['pod']}: {', '.join(f['problems'])}" for f in result["failed"])
        raise RollbackFailed(f"partition heal: {failures}", result=dict(result))
    return dict(result)
