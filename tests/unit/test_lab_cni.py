"""The lab node agent's CNI step of pod set-up, and the pod statuses it reports.

:class:`NodeCni` runs against a temporary node root: its conflist names plugins
that are small executable scripts answering ``CNI_COMMAND=VERSION`` (and the lab's
own istio-cni plugin stand-in). The capture it installs for a sidecar pod is
Istio's, by the real ``pilot-agent istio-iptables`` the lab builds, in a real
network namespace holding a pod IP (root only; skipped when the lab's binaries are
not built). Status bodies are read back through the ``kubernetes`` client's models,
as the API server would take them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from chaosmesh_sec.lab.agent import podstatus
from chaosmesh_sec.lab.agent.cni import CniError, NodeCni, capture_args, wants_capture
from chaosmesh_sec.lab.standins.cni_node import PLUGIN_TYPE, install_binary
from chaosmesh_sec.lab.standins.cni_repair import VALIDATION_ERROR_CODE, needs_repair_label
from chaosmesh_sec.probes._nat_rules import CHAINS, parse_dumps
from tests.netns import in_ns, needs_netns, pod_netns, random_pod_ip
from tests.unit.test_cni_files import ALL_VERSIONS, GALAXY_VERSIONS, chain, fake_plugin
from tests.unit.test_cni_repair import make_pod
from tests.unit.test_nat_rules import wrap

pytestmark = pytest.mark.unit

PROXY = "istio-proxy"
ISTIO_CNI = {"type": PLUGIN_TYPE, "kubernetes": {"exclude_namespaces": ["kube-system"]}}
EXCLUDE_IN = "traffic.sidecar.istio.io/excludeInboundPorts"
EXCLUDE_OUT = "traffic.sidecar.istio.io/excludeOutboundPorts"
EXCLUDE_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges"


# ---------------------------------------------------------------- which pods, which capture


@pytest.mark.parametrize(
    ("pod", "conf", "expected"),
    [
        (make_pod("app", PROXY), ISTIO_CNI, True),
        (make_pod("app"), ISTIO_CNI, False),
        (make_pod("app", PROXY, namespace="kube-system"), ISTIO_CNI, False),
        (make_pod("app", PROXY, namespace="kube-system"), {"type": PLUGIN_TYPE}, True),
        (make_pod("app", PROXY, init_containers=(PROXY,)), ISTIO_CNI, True),
        (make_pod("app", init_containers=(PROXY,)), ISTIO_CNI, False),  # a container only
        (
            make_pod("app", PROXY, annotations={"sidecar.istio.io/interceptionMode": "NONE"}),
            ISTIO_CNI,
            False,
        ),
        (
            make_pod("app", PROXY, annotations={"sidecar.istio.io/interceptionMode": "REDIRECT"}),
            ISTIO_CNI,
            True,
        ),
    ],
    ids=[
        "sidecar",
        "no-sidecar",
        "excluded-namespace",
        "no-exclusions",
        "proxy-also-init",
        "proxy-init-only",
        "interception-none",
        "interception-redirect",
    ],
)
def test_the_plugin_captures_sidecar_pods_of_included_namespaces(
    pod: k8s.V1Pod, conf: dict[str, Any], expected: bool
) -> None:
    assert wants_capture(pod, conf) is expected


REDIRECT_MODE = ["-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT"]
SIDECAR_PORTS = "15090,15021,15020"  # Envoy's metrics and readiness, pilot-agent's status


def flags(args: list[str]) -> dict[str, str]:
    """``istio-iptables`` arguments as flag -> value (each flag takes one)."""
    assert len(args) % 2 == 0 and len(set(args[::2])) == len(args) // 2, args
    return dict(zip(args[::2], args[1::2], strict=True))


@pytest.mark.parametrize(
    ("annotations", "changed"),
    [
        (None, {}),
        ({EXCLUDE_IN: "8080, 9090"}, {"-d": f"{SIDECAR_PORTS},8080, 9090"}),  # appended as is
        ({EXCLUDE_IN: ""}, {}),
        ({EXCLUDE_OUT: "5432"}, {"-o": "5432"}),
        ({EXCLUDE_OUT: ""}, {}),
        (
            {EXCLUDE_RANGES: "10.96.0.0/12,169.254.169.254/32"},
            {"-x": "10.96.0.0/12,169.254.169.254/32"},
        ),
        ({"traffic.sidecar.istio.io/includeInboundPorts": "80"}, {"-b": "80"}),
        ({"traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8"}, {"-i": "10.0.0.0/8"}),
        ({"traffic.sidecar.istio.io/includeOutboundPorts": "443"}, {"-q": "443"}),
        ({"traffic.sidecar.istio.io/excludeInterfaces": "eth1"}, {"-c": "eth1"}),
        ({"traffic.sidecar.istio.io/unknown": "1"}, {}),
    ],
    ids=[
        "none",
        "exclude-inbound",
        "exclude-inbound-empty",
        "exclude-outbound",
        "exclude-outbound-empty",
        "exclude-ranges",
        "include-inbound",
        "include-ranges",
        "include-outbound",
        "exclude-interfaces",
        "unknown",
    ],
)
def test_the_capture_takes_the_pods_annotations(
    annotations: dict[str, str] | None, changed: dict[str, str]
) -> None:
    args = capture_args(make_pod("app", PROXY, annotations=annotations))
    assert args[: len(REDIRECT_MODE)] == REDIRECT_MODE
    defaults = {"-i": "*", "-b": "*", "-d": SIDECAR_PORTS}
    assert flags(args[len(REDIRECT_MODE) :]) == {**defaults, **changed}


# ---------------------------------------------------------------- the chain on a node


def make_node(
    root: Path,
    conflists: dict[str, Any],
    plugins: dict[str, list[str] | None],
    pilot_agent: Path | None = None,
) -> NodeCni:
    """A node with these files in ``net.d`` and fake ``plugins`` (with their versions);
    ``pilot_agent``: the real one, for a node that captures (None: the pod must get none)."""
    node = NodeCni(root, pilot_agent)
    node.net_dir.mkdir(parents=True)
    node.bin_dir.mkdir(parents=True)
    for name, body in conflists.items():
        (node.net_dir / name).write_text(body if isinstance(body, str) else json.dumps(body))
    for name, versions in plugins.items():
        if name == PLUGIN_TYPE:
            install_binary(node.bin_dir)  # the lab's own plugin stand-in
        else:
            fake_plugin(node.bin_dir, name, versions)
    return node


def istio_chain(version: str = "1.0.0") -> dict[str, Any]:
    conf = chain(version, "ptp", "portmap")
    conf["plugins"].append(ISTIO_CNI)
    return conf


PTP_NODE = {"ptp": ALL_VERSIONS, "portmap": ALL_VERSIONS, PLUGIN_TYPE: None}
NO_NETNS = "cmstest-absent"  # capture into it would fail: these pods get none


@pytest.mark.parametrize(
    ("conflists", "pod", "plugins"),
    [
        ({"10-ptp.conflist": chain("1.0.0", "ptp", "portmap")}, make_pod(), ("ptp", "portmap")),
        ({"10-ptp.conflist": istio_chain()}, make_pod(), ("ptp", "portmap", PLUGIN_TYPE)),
        (
            {"10-ptp.conflist": istio_chain("0.3.1")},
            make_pod("app", PROXY, namespace="kube-system"),
            ("ptp", "portmap", PLUGIN_TYPE),
        ),
        (
            {"10-ptp.conflist": chain("0.3.1", "ptp"), "20-other.conflist": "{"},
            make_pod("app", PROXY),  # no istio-cni in the chain: the restart race
            ("ptp",),
        ),
        (
            {"00-old.conf": "{", "10-ptp.conflist": chain("0.3.1", "ptp")},  # .conf: ignored
            make_pod(),
            ("ptp",),
        ),
    ],
)
def test_a_whole_chain_sets_the_pod_up(
    tmp_path: Path, conflists: dict[str, Any], pod: k8s.V1Pod, plugins: tuple[str, ...]
) -> None:
    result = make_node(tmp_path, conflists, PTP_NODE).setup(pod, NO_NETNS)
    assert (result.conflist, result.plugins, result.captured) == (
        "10-ptp.conflist",
        plugins,
        False,
    )


@pytest.mark.parametrize(
    ("conflists", "plugins", "message"),
    [
        (  # seed 003: a 0.2.0 plugin in a 0.3.1 chain
            {"00-galaxy.conflist": chain("0.3.1", "galaxy-sdn", PLUGIN_TYPE, name="galaxy")},
            {"galaxy-sdn": GALAXY_VERSIONS, PLUGIN_TYPE: None},
            'plugin type="galaxy-sdn" failed (add): incompatible CNI versions; '
            "config is \"0.3.1\", plugin supports ['0.1.0', '0.2.0']",
        ),
        (
            {"10-ptp.conflist": chain("1.0.0", "ptp", "portmap")},
            {"ptp": ALL_VERSIONS},
            'failed to find plugin "portmap"',
        ),
        (
            {"10-ptp.conflist": chain("1.0.0", "ptp", "crashing")},
            {"ptp": ALL_VERSIONS, "crashing": None},
            'plugin type="crashing": VERSION failed: plugin crashed',
        ),
        ({}, {}, "no networks found in"),
        ({"10-bridge.conf": {"cniVersion": "1.0.0", "type": "ptp"}}, PTP_NODE, "no networks"),
        ({"10-ptp.conflist": '{"cniVersion": "1.0.0",'}, PTP_NODE, "error parsing"),
        ({"10-ptp.conflist": {"cniVersion": "1.0.0"}}, PTP_NODE, "error parsing"),
        ({"10-ptp.conflist": {"plugins": [{"type": "ptp"}]}}, PTP_NODE, "error parsing"),
        (  # the first by name is the one used, even when a later one would do
            {"05-broken.conflist": "[]", "10-ptp.conflist": chain("1.0.0", "ptp")},
            PTP_NODE,
            "error parsing configuration list 05-broken.conflist",
        ),
    ],
    ids=[
        "unsupported-version",
        "missing-binary",
        "version-failed",
        "no-files",
        "only-conf",
        "invalid-json",
        "no-plugins",
        "no-version",
        "first-by-name",
    ],
)
def test_a_broken_chain_fails_the_sandbox(
    tmp_path: Path,
    conflists: dict[str, Any],
    plugins: dict[str, list[str] | None],
    message: str,
) -> None:
    node = make_node(tmp_path, conflists, plugins)
    with pytest.raises(CniError, match=re.escape(message)):
        node.setup(make_pod("app", PROXY), NO_NETNS)


@pytest.fixture
def ptp_istio_node(tmp_path: Path, pilot_agent: Path) -> NodeCni:
    return make_node(tmp_path, {"10-ptp.conflist": istio_chain()}, PTP_NODE, pilot_agent)


@pytest.fixture
def netns() -> Iterator[str]:
    with pod_netns(random_pod_ip()) as ns:  # istio-iptables wants a pod IP
        yield ns


def nat_view(ns: str) -> Any:
    rules = in_ns(ns, "iptables-save", "-t", "nat").stdout
    return rules, parse_dumps(wrap("pod", rules))["pod"]


@needs_netns
def test_a_sidecar_pod_gets_the_capture_in_its_namespace(
    ptp_istio_node: NodeCni, netns: str
) -> None:
    pod = make_pod("app", PROXY, annotations={EXCLUDE_IN: "8080"})
    assert ptp_istio_node.setup(pod, netns).captured
    rules, view = nat_view(netns)
    assert view.chains == CHAINS
    assert view.redirected
    assert "-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j RETURN" in rules


@needs_netns
def test_a_pod_without_sidecar_gets_no_capture(ptp_istio_node: NodeCni, netns: str) -> None:
    assert not ptp_istio_node.setup(make_pod("app"), netns).captured
    rules, view = nat_view(netns)
    assert view.chains == ()
    assert "ISTIO" not in rules


@needs_netns
@pytest.mark.parametrize(
    ("annotations", "refusal"),
    [
        ({EXCLUDE_OUT: "70000"}, "invalid port/service `70000' specified"),  # iptables-restore
        ({EXCLUDE_IN: "no-such-service"}, "invalid port/service `no-such-service' specified"),
        ({EXCLUDE_RANGES: "10.0.0.0/33"}, "prefix length out of range"),  # istio-iptables
        ({EXCLUDE_RANGES: "169.254.169.254"}, "no '/'"),  # an address, not a CIDR
    ],
    ids=["port-out-of-range", "unknown-service", "prefix-too-long", "bare-address"],
)
def test_a_bad_annotation_fails_the_plugin_and_installs_nothing(
    ptp_istio_node: NodeCni, netns: str, annotations: dict[str, str], refusal: str
) -> None:
    pod = make_pod("app", PROXY, annotations=annotations)
    message = r'plugin type="istio-cni" failed \(add\): .*' + re.escape(refusal)
    with pytest.raises(CniError, match=message):
        ptp_istio_node.setup(pod, netns)
    assert nat_view(netns)[1].chains == ()


@needs_netns
def test_a_service_name_for_a_port_is_taken_as_its_number(
    ptp_istio_node: NodeCni, netns: str
) -> None:
    """istio-iptables passes ports through to iptables, which looks names up as a
    service (``/etc/services``): ``http`` is not refused, it excludes port 80."""
    try:
        port = socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("this machine has no service named http (/etc/services)")
    pod = make_pod("app", PROXY, annotations={EXCLUDE_IN: "http"})
    assert ptp_istio_node.setup(pod, netns).captured
    rules, view = nat_view(netns)
    assert view.redirected
    assert f"-A ISTIO_INBOUND -p tcp -m tcp --dport {port} -j RETURN" in rules


@needs_netns
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_istio_validation_passes_once_captured_and_exits_with_the_repair_code_before(
    ptp_istio_node: NodeCni, netns: str, pilot_agent: Path
) -> None:
    """The ``istio-validation`` init container's check, run as its uid 1337: 126
    (what :mod:`~chaosmesh_sec.lab.standins.cni_repair` labels pods for) until the
    CNI step has captured the pod."""
    pod = make_pod("app", PROXY)
    as_proxy = ["setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups"]
    validation = [
        *as_proxy,
        str(pilot_agent),
        "istio-iptables",
        *capture_args(pod),
        "--run-validation",
        "--skip-rule-apply",
        "--probe-timeout",
        "1s",
    ]
    assert in_ns(netns, *validation, check=False).returncode == VALIDATION_ERROR_CODE
    assert ptp_istio_node.setup(pod, netns).captured
    done = in_ns(netns, *validation, check=False)
    assert done.returncode == 0, done.stdout[-500:]


# ---------------------------------------------------------------- pod status bodies


def key_paths(node: Any, at: str = "") -> set[str]:
    """Every key's path; a null (in a patch: remove the field) is no field."""
    if isinstance(node, dict):
        return {
            p
            for k, v in node.items()
            if v is not None
            for p in {f"{at}.{k}"} | key_paths(v, f"{at}.{k}")
        }
    if isinstance(node, list):
        return {p for i, v in enumerate(node) for p in key_paths(v, f"{at}[{i}]")}
    return set()


def as_api(pod: k8s.V1Pod, body: dict[str, Any]) -> Any:
    """The pod with ``body``'s status, which must hold API fields only (read as ``Any``)."""
    assert set(body) == {"status"}  # a pods/status patch
    api = k8s.ApiClient()
    status = api.deserialize(json.dumps(body["status"]), "V1PodStatus", "application/json")
    assert key_paths(api.sanitize_for_serialization(status)) == key_paths(body["status"])
    return pod.model_copy(update={"status": status})


def by_name(statuses: list[Any] | None) -> dict[str, Any]:
    return {s.name: s for s in statuses or []}


def conditions(pod: Any) -> dict[str, str]:
    return {c.type: c.status for c in pod.status.conditions}


STARTED = 1_700_000_000.0  # 2023-11-14T22:13:20Z
STARTED_AT = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
SIDECAR_POD = make_pod("app", PROXY, init_containers=("istio-validation",))


@pytest.mark.parametrize(
    ("at", "text"),
    [(0, "1970-01-01T00:00:00Z"), (STARTED + 0.9, "2023-11-14T22:13:20Z")],
)
def test_stamps_are_rfc3339_in_utc(at: float, text: str) -> None:
    assert podstatus.stamp(at) == text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", podstatus.stamp())


def test_a_failed_sandbox_leaves_the_pod_pending_in_container_creating() -> None:
    message = 'plugin type="ptp" failed (add): incompatible CNI versions'
    pod = as_api(SIDECAR_POD, podstatus.sandbox_failed(SIDECAR_POD, message))
    assert (pod.status.phase, pod.status.pod_ip) == ("Pending", "10.244.1.7")
    assert conditions(pod)["Ready"] == conditions(pod)["ContainersReady"] == "False"
    statuses = by_name(pod.status.container_statuses)
    assert set(statuses) == {"app", PROXY}
    for status in statuses.values():
        assert not status.ready and status.state.running is None
        assert (status.state.waiting.reason, status.state.waiting.message) == (
            "ContainerCreating",
            message,
        )


def test_a_failed_init_container_is_retried_with_its_exit_in_last_state() -> None:
    body = podstatus.init_failed(SIDECAR_POD, "istio-validation", 126, STARTED, 3, "no redirect")
    pod = as_api(SIDECAR_POD, body)
    assert pod.status.phase == "Pending"
    assert conditions(pod) == {
        "Initialized": "False",
        "Ready": "False",
        "ContainersReady": "False",
    }
    validation = by_name(pod.status.init_container_statuses)["istio-validation"]
    assert validation.restart_count == 3
    assert validation.state.waiting.reason == "CrashLoopBackOff"
    ended = validation.last_state.terminated
    assert (ended.exit_code, ended.reason, ended.message) == (126, "Error", "no redirect")
    assert ended.started_at == STARTED_AT <= ended.finished_at
    for status in pod.status.container_statuses:
        assert status.state.waiting.reason == "PodInitializing"
    assert needs_repair_label(pod)  # what istio-cni's repair controller acts on


def test_init_containers_before_the_failed_one_show_completed() -> None:
    pod = make_pod("app", init_containers=("setup", "istio-validation"))
    done = as_api(pod, podstatus.init_failed(pod, "istio-validation", 126, STARTED, 1, "x"))
    setup = by_name(done.status.init_container_statuses)["setup"]
    assert setup.state.terminated is not None and setup.state.terminated.exit_code == 0


@pytest.mark.parametrize(
    ("probed", "ready"), [((), {"app": True, PROXY: True}), (("app",), {"app": False, PROXY: True})]
)
def test_a_running_pod_has_completed_its_init_containers(
    probed: tuple[str, ...], ready: dict[str, bool]
) -> None:
    spec = make_pod("app", PROXY, init_containers=("istio-validation",), probed=probed)
    pod = as_api(spec, podstatus.running(spec, STARTED, {"istio-validation": 2}))
    assert pod.status.phase == "Running"
    all_ready = str(all(ready.values()))
    assert conditions(pod) == {
        "Initialized": "True",
        "Ready": all_ready,
        "ContainersReady": all_ready,
    }
    validation = by_name(pod.status.init_container_statuses)["istio-validation"]
    assert (validation.restart_count, validation.state.terminated.exit_code) == (2, 0)
    assert validation.state.terminated.reason == "Completed"
    statuses = by_name(pod.status.container_statuses)
    assert {n: s.ready for n, s in statuses.items()} == ready
    assert all(s.started and s.state.running is not None for s in statuses.values())


def test_a_pod_without_init_containers_runs_with_none_reported() -> None:
    pod = as_api(make_pod(), podstatus.running(make_pod(), STARTED, {}))
    assert pod.status.init_container_statuses == []
    assert conditions(pod)["Ready"] == "True"


@pytest.mark.parametrize(("code", "phase"), [(0, "Succeeded"), (3, "Failed")])
def test_an_ended_pod_reports_its_containers_exit(code: int, phase: str) -> None:
    spec = make_pod("app", "log-shipper")
    pod = as_api(spec, podstatus.terminated(spec, "app", code, STARTED))
    assert pod.status.phase == phase
    assert conditions(pod) == {"Ready": "False", "ContainersReady": "False"}
    ended = {n: s.state.terminated for n, s in by_name(pod.status.container_statuses).items()}
    assert {n: t.exit_code for n, t in ended.items()} == {"app": code, "log-shipper": 0}
    assert ended["app"].reason == ("Completed" if code == 0 else "Error")
    assert ended["app"].started_at == STARTED_AT


def test_a_container_that_exited_0_is_completed_whatever_another_did() -> None:
    spec = make_pod("app", "log-shipper")
    pod = as_api(spec, podstatus.terminated(spec, "app", 3, STARTED))
    shipper = by_name(pod.status.container_statuses)["log-shipper"]
    assert shipper.state.terminated.reason == "Completed"
