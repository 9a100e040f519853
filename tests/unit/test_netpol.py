"""NetworkPolicy ingress for one pod (pure), and how the ambient probe judges a pod with it.

Policies and pods are plain dicts in the API's JSON form, as the probe gets them from
``sanitize_for_serialization``. The seed's four examples (Istio's "Ambient and
Kubernetes NetworkPolicy" page) are here as they are written there.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import _netpol, ambient

Obj = dict[str, Any]

NS = "shop"
APP = {"app.kubernetes.io/name": "my-app"}
KUBELET = ambient.KUBELET_SOURCE
HBONE = ambient.HBONE_PORT


def _pod(
    labels: dict[str, str] | None = None,
    namespace: str = NS,
    ports: list[Obj] | None = None,
    annotations: dict[str, str] | None = None,
    **container: Any,
) -> Obj:
    return {
        "metadata": {
            "name": "my-app-0",
            "namespace": namespace,
            "labels": APP if labels is None else labels,
            "annotations": {ambient.REDIRECTION: "enabled"} if annotations is None else annotations,
        },
        "spec": {"containers": [{"name": "app", "ports": ports or [], **container}]},
        "status": {"phase": "Running"},
    }


def _policy(name: str, namespace: str = NS, selector: Obj | None = None, **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": APP} if selector is None else selector, **spec},
    }


def _tcp(port: int | str, **extra: Any) -> Obj:
    return {"port": port, "protocol": "TCP", **extra}


# ---------------------------------------------------------------- the seed's examples

ONLY_9090 = _policy("only-9090", ingress=[{"ports": [_tcp(9090)]}])
WITH_HBONE = _policy("with-hbone", ingress=[{"ports": [_tcp(8080), _tcp(15008)]}])
DENY_INGRESS = _policy("deny-ingress", policyTypes=["Ingress"])
ALLOW_KUBELET = _policy(
    "deny-ingress-allow-kubelet-healthprobes",
    ingress=[{"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}]}],
)


@pytest.mark.parametrize(
    ("policies", "hbone", "kubelet"),
    [
        ([], True, True),
        ([ONLY_9090], False, True),  # no `from`: the kubelet gets in on 9090
        ([WITH_HBONE], True, True),
        ([DENY_INGRESS], False, False),
        ([ALLOW_KUBELET], False, True),  # only the link-local source: no pod reaches 15008
        ([DENY_INGRESS, ALLOW_KUBELET], False, True),
        ([DENY_INGRESS, ALLOW_KUBELET, WITH_HBONE], True, True),
        ([ONLY_9090, WITH_HBONE], True, True),  # additive: one admitting policy is enough
    ],
)
def test_the_seed_policies(policies: list[Obj], hbone: bool, kubelet: bool) -> None:
    pod = _pod()
    assert _netpol.admits_port(policies, pod, HBONE) is hbone
    assert _netpol.admits_source(policies, pod, KUBELET) is kubelet


def test_the_probe_names_the_policies_that_block() -> None:
    assert _kinds(_pod(), [ONLY_9090]) == {"hbone_port_blocked": ["only-9090"]}
    assert _kinds(_pod(), [DENY_INGRESS]) == {
        "hbone_port_blocked": ["deny-ingress"],
        "kubelet_probe_blocked": ["deny-ingress"],
    }
    assert _kinds(_pod(), [WITH_HBONE]) == {}
    assert _kinds(_pod(), [DENY_INGRESS, ALLOW_KUBELET, WITH_HBONE]) == {}
    both = _kinds(_pod(), [DENY_INGRESS, ALLOW_KUBELET])
    assert both == {
        "hbone_port_blocked": ["deny-ingress", "deny-ingress-allow-kubelet-healthprobes"]
    }


def _kinds(pod: Obj, policies: list[Obj]) -> dict[str, list[str]]:
    return {f["kind"]: f["policies"] for f in ambient._policy_findings(pod, policies)}


# ---------------------------------------------------------------- selection


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ({}, True),
        ({"matchLabels": APP}, True),
        ({"matchLabels": {"app.kubernetes.io/name": "other"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "gone", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "gone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        (  # labels and expressions must all hold
            {"matchLabels": APP, "matchExpressions": [{"key": "gone", "operator": "Exists"}]},
            False,
        ),
    ],
)
def test_pod_selector(selector: Obj, selected: bool) -> None:
    pod = _pod(labels={**APP, "tier": "web"})
    policy = _policy("p", selector=selector)
    assert (_netpol.selecting([policy], pod) == [policy]) is selected


def test_only_policies_of_the_pods_namespace_select_it() -> None:
    elsewhere = _policy("deny", namespace="other", selector={}, policyTypes=["Ingress"])
    assert _netpol.selecting([elsewhere], _pod()) == []
    assert _netpol.admits_port([elsewhere], _pod(), HBONE)


def test_an_unknown_operator_is_refused() -> None:
    selector = {"matchExpressions": [{"key": "a", "operator": "Near"}]}
    with pytest.raises(ValueError, match="Near"):
        _netpol.selector_matches(selector, {"a": "b"})


# ---------------------------------------------------------------- isolation


@pytest.mark.parametrize(
    ("spec", "isolates"),
    [
        ({}, True),  # no policyTypes: Ingress implied
        ({"policyTypes": ["Ingress"]}, True),
        ({"policyTypes": ["Ingress", "Egress"]}, True),
        ({"policyTypes": ["Egress"]}, False),
        ({"policyTypes": ["Egress"], "ingress": [{"ports": [_tcp(9090)]}]}, False),
    ],
)
def test_ingress_isolation(spec: Obj, isolates: bool) -> None:
    policy = _policy("p", **spec)
    assert _netpol.isolates_ingress(policy) is isolates
    assert bool(_netpol.isolating([policy], _pod())) is isolates


def test_an_egress_only_policy_leaves_every_port_and_source_open() -> None:
    egress_only = _policy("egress", policyTypes=["Egress"], egress=[{"ports": [_tcp(53)]}])
    assert _netpol.admits_port([egress_only], _pod(), HBONE)
    assert _netpol.admits_source([egress_only], _pod(), KUBELET)
    assert _kinds(_pod(), [egress_only]) == {}


# ---------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("ports", "port", "admitted"),
    [
        ([], 15008, True),  # a rule without ports admits every port
        ([_tcp(15008)], 15008, True),
        ([_tcp(15009)], 15008, False),
        ([{"port": 15008}], 15008, True),  # protocol defaults to TCP
        ([{"port": 15008, "protocol": "UDP"}], 15008, False),
        ([{"protocol": "TCP"}], 15008, True),  # no port: every TCP port
        ([{"protocol": "SCTP"}], 15008, False),
        ([_tcp(15000, endPort=15010)], 15008, True),
        ([_tcp(15000, endPort=15007)], 15008, False),
        ([_tcp(15000, endPort=15010)], 15010, True),
        ([_tcp(15000, endPort=15010)], 14999, False),
        ([_tcp("hbone")], 15008, True),  # named: the pod declares hbone -> 15008
        ([_tcp("http")], 15008, False),  # named: http -> 8080
        ([_tcp("metrics")], 15008, False),  # a name the pod does not declare admits nothing
        ([_tcp(9090), _tcp("hbone")], 15008, True),
    ],
)
def test_ports(ports: list[Obj], port: int, admitted: bool) -> None:
    pod = _pod(
        ports=[
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "hbone", "containerPort": 15008},
        ]
    )
    policy = _policy("p", ingress=[{"ports": ports}])
    assert _netpol.admits_port([policy], pod, port) is admitted


def test_a_named_port_resolves_by_protocol_too() -> None:
    pod = _pod(ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    assert _netpol.named_port(pod, "dns", "UDP") == 53
    assert _netpol.named_port(pod, "dns") is None


def test_a_rule_admits_only_its_ports_from_only_its_peers() -> None:
    """Ports and peers of one rule go together: 15008 from the kubelet only is no HBONE."""
    rule = {"ports": [_tcp(15008)], "from": [{"ipBlock": {"cidr": "169.254.0.0/16"}}]}
    policy = _policy("p", ingress=[rule])
    assert not _netpol.admits_port([policy], _pod(), HBONE)
    assert _netpol.admits_source([policy], _pod(), KUBELET, HBONE)
    assert not _netpol.admits_source([policy], _pod(), KUBELET, 8080)


# ---------------------------------------------------------------- sources


@pytest.mark.parametrize(
    ("peers", "kubelet", "pods"),
    [
        (None, True, True),  # no `from`: every source
        ([], True, True),
        ([{"ipBlock": {"cidr": "169.254.7.127/32"}}], True, False),
        ([{"ipBlock": {"cidr": "169.254.0.0/16", "except": ["169.254.7.0/24"]}}], False, False),
        ([{"ipBlock": {"cidr": "0.0.0.0/0"}}], True, True),
        ([{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}], False, True),
        ([{"ipBlock": {"cidr": "10.0.0.0/8"}}], False, True),
        ([{"ipBlock": {"cidr": "::/0"}}], False, True),
        ([{"podSelector": {}}], False, True),
        ([{"namespaceSelector": {}}], False, True),
        ([{"namespaceSelector": {}, "podSelector": {"matchLabels": APP}}], False, True),
        ([{"podSelector": {}}, {"ipBlock": {"cidr": "169.254.7.127/32"}}], True, True),
    ],
)
def test_sources(peers: list[Obj] | None, kubelet: bool, pods: bool) -> None:
    rule: Obj = {} if peers is None else {"from": peers}
    policy = _policy("p", ingress=[rule])
    assert _netpol.admits_source([policy], _pod(), KUBELET) is kubelet
    assert _netpol.admits_port([policy], _pod(), HBONE) is pods


# ---------------------------------------------------------------- kubelet probes


def test_probe_ports() -> None:
    pod = _pod(
        ports=[{"name": "health", "containerPort": 8081}],
        livenessProbe={"httpGet": {"path": "/healthz", "port": "health"}},
        readinessProbe={"tcpSocket": {"port": 8080}},
        startupProbe={"grpc": {"port": 9000}},
    )
    assert _netpol.probe_ports(pod) == [8080, 8081, 9000]
    elsewhere = _pod(livenessProbe={"httpGet": {"host": "10.0.0.1", "port": 80}})
    assert _netpol.probe_ports(elsewhere) == []
    assert _netpol.probe_ports(_pod(readinessProbe={"exec": {"command": ["true"]}})) == []


def test_the_kubelet_must_reach_the_probed_ports() -> None:
    """Admitted on 9090 is not enough when the probes knock on 8080."""
    probed = _pod(readinessProbe={"tcpSocket": {"port": 8080}})
    findings = ambient._policy_findings(probed, [ONLY_9090])
    assert [f["kind"] for f in findings] == ["hbone_port_blocked", "kubelet_probe_blocked"]
    assert "TCP 8080" in findings[1]["detail"]
    assert _kinds(probed, [WITH_HBONE]) == {}


# ---------------------------------------------------------------- which pods are ambient


@pytest.mark.parametrize(
    ("change", "namespace_mode", "mode"),
    [
        ({}, "ambient", "redirected"),
        ({}, None, "redirected"),  # redirected is redirected, whatever the labels say
        ({"annotations": {}}, "ambient", "missing"),
        ({"annotations": {}}, None, "out"),
        ({"annotations": {}, "pod_mode": "ambient"}, None, "missing"),
        ({"annotations": {}, "pod_mode": "none"}, "ambient", "out"),  # opted out
        ({"annotations": {}, "hostNetwork": True}, "ambient", "out"),
        ({"annotations": {}, "phase": "Succeeded"}, "ambient", "out"),
        ({"annotations": {}, "phase": "Failed"}, "ambient", "out"),
        ({"annotations": {"sidecar.istio.io/status": "{}"}}, "ambient", "out"),
        ({"annotations": {}, "container": "istio-proxy"}, "ambient", "out"),
    ],
)
def test_which_pods_are_ambient(change: Obj, namespace_mode: str | None, mode: str) -> None:
    pod = _pod()
    meta, spec = pod["metadata"], pod["spec"]
    if "annotations" in change:
        meta["annotations"] = change["annotations"]
    if "pod_mode" in change:
        meta["labels"] = {**APP, ambient.DATAPLANE_MODE: change["pod_mode"]}
    if "hostNetwork" in change:
        spec["hostNetwork"] = True
    if "phase" in change:
        pod["status"]["phase"] = change["phase"]
    if "container" in change:
        spec["containers"].append({"name": change["container"]})
    labels = {ambient.DATAPLANE_MODE: namespace_mode} if namespace_mode else {}
    assert ambient._mode(pod, labels) == mode


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("namespaces", ["default", ["Default"], ["ok", "no_underscore"], [1]])
def test_ambient_posture_rejects_bad_namespaces(no_cluster: None, namespaces: Any) -> None:
    with pytest.raises(InvalidInput) as info:
        ambient.ambient_posture(namespaces=namespaces)
    assert info.value.name == "namespaces"
