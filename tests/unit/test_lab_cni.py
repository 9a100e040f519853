"""The lab node agent's CNI step of pod set-up and teardown, and the pod statuses it reports.

:class:`NodeCni` runs against a temporary node root whose conflist names small
executable plugins: fakes that answer ``CNI_COMMAND=VERSION`` (for the chain's
checks), and a recording plugin that answers ``ADD`` and ``DEL`` as a chained plugin
does (it hands its ``prevResult`` on) and writes down what it was given: its
environment, its stdin, the ``/run`` it saw and the network namespace behind
``CNI_NETNS``. Those runs need a real network namespace (root only). The real
istio-cni plugin needs the API server for its pod: the lab's integration tests run it.
Status bodies are read back through the ``kubernetes`` client's models, as the API
server would take them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from chaosmesh_sec.lab.agent import podstatus
from chaosmesh_sec.lab.agent.cni import CniError, NodeCni, PodRef, container_id
from tests.netns import ISTIO_CAPTURE, in_ns, needs_netns, pod_netns, random_pod_ip
from tests.unit.test_ambient_enrolment import make_pod
from tests.unit.test_cni_files import ALL_VERSIONS, GALAXY_VERSIONS, chain, fake_plugin

pytestmark = pytest.mark.unit

PROXY = "istio-proxy"
POD = PodRef("shop", "my-app-0", "0f1e2d3c-4b5a-6978-8a9b-acbdcedfe0f1")
NO_NETNS = "cmstest-absent"  # the chain fails before any plugin would enter it

# A chained plugin that records each call in ``$RECORD_DIR/<n>-<type>-<command>.json``.
RECORDER = """#!{python}
import json, os, sys, time
conf = json.load(sys.stdin)
command = os.environ["CNI_COMMAND"]
if command == "VERSION":
    print(json.dumps({{"cniVersion": "1.0.0", "supportedVersions": {versions}}}))
    sys.exit(0)
calls_dir = {record!r}
record = os.path.join(calls_dir, "%02d-%s-%s.json" % (
    len(os.listdir(calls_dir)), conf["type"], command))
seen = {{
    "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}},
    "stdin": conf,
    "run": sorted(os.listdir("/run")),
    "netns": os.stat(os.environ["CNI_NETNS"]).st_ino,
}}
with open(record, "w") as out:
    json.dump(seen, out)
if conf.get("hang"):  # as the istio-cni plugin waiting for a pod that is gone
    with open(calls_dir + ".pid", "w") as out:
        out.write(str(os.getpid()))
    time.sleep(600)
if conf.get("fail"):
    print(json.dumps({{"cniVersion": "1.0.0", "code": 999, "msg": conf["fail"]}}))
    sys.exit(1)
if command == "ADD":
    result = conf["prevResult"]
    result["interfaces"] = result["interfaces"] + [{{"name": conf["type"]}}]
    print(json.dumps(result))
"""


def recording_plugin(bin_dir: Path, name: str, record: Path) -> None:
    script = bin_dir / name
    script.write_text(
        RECORDER.format(python=sys.executable, versions=ALL_VERSIONS, record=str(record))
    )
    script.chmod(0o755)


def make_node(
    root: Path, conflists: dict[str, Any], plugins: dict[str, list[str] | None]
) -> NodeCni:
    """A node with these files in ``net.d`` and fake ``plugins`` (with their versions)."""
    node = NodeCni(root)
    node.net_dir.mkdir(parents=True)
    node.bin_dir.mkdir(parents=True)
    for name, body in conflists.items():
        (node.net_dir / name).write_text(body if isinstance(body, str) else json.dumps(body))
    for name, versions in plugins.items():
        fake_plugin(node.bin_dir, name, versions)
    return node


PTP_NODE = {"ptp": ALL_VERSIONS, "portmap": ALL_VERSIONS}


@pytest.mark.parametrize(
    ("conflists", "plugins", "message"),
    [
        (  # seed 003: a 0.2.0 plugin in a 0.3.1 chain
            {"00-galaxy.conflist": chain("0.3.1", "galaxy-sdn", "istio-cni", name="galaxy")},
            {"galaxy-sdn": GALAXY_VERSIONS, "istio-cni": ALL_VERSIONS},
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
        (
            {"10-ptp.conflist": chain("1.0.0", "ptp", "../../bin/sh")},
            PTP_NODE,
            'failed to find plugin "../../bin/sh"',
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
        "type-is-a-path",
        "no-files",
        "only-conf",
        "invalid-json",
        "no-plugins",
        "no-version",
        "first-by-name",
    ],
)
def test_a_broken_chain_fails_the_sandbox_before_any_plugin_runs(
    tmp_path: Path,
    conflists: dict[str, Any],
    plugins: dict[str, list[str] | None],
    message: str,
) -> None:
    node = make_node(tmp_path, conflists, plugins)
    with pytest.raises(CniError, match=re.escape(message)):
        node.setup(POD, NO_NETNS, "10.244.1.7")


def test_a_sandbox_id_is_a_runtimes_64_hex_digits_stable_per_pod() -> None:
    sandbox = container_id(POD.uid)
    assert re.fullmatch(r"[0-9a-f]{64}", sandbox)
    assert sandbox == container_id(POD.uid) != container_id("another-uid")


@pytest.fixture
def netns() -> Iterator[str]:
    with pod_netns(random_pod_ip()) as ns:
        yield ns


@pytest.fixture
def record(tmp_path: Path) -> Path:
    out = tmp_path / "calls"
    out.mkdir()
    return out


def recording_node(root: Path, record: Path, *chained: dict[str, Any]) -> NodeCni:
    """A node whose chain is ``ptp`` (the primary, a VERSION-only fake: its ADD must be
    skipped) and then ``chained`` recording plugins; its ``/run`` holds ``istio-cni``."""
    conf = chain("1.0.0", "ptp")
    conf["plugins"] += chained
    node = make_node(root / "node", {"10-cmslab.conflist": conf}, {"ptp": ALL_VERSIONS})
    for plugin in chained:
        recording_plugin(node.bin_dir, plugin["type"], record)
    (node.run_dir / "istio-cni").mkdir(parents=True)
    return node


def calls(record: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem.split("-", 1)[1], json.loads(p.read_text())) for p in sorted(record.iterdir())]


@needs_netns
def test_the_chained_plugins_run_add_in_order_with_the_cni_environment(
    tmp_path: Path, record: Path, netns: str
) -> None:
    node = recording_node(tmp_path, record, {"type": "first"}, {"type": "second", "x": 1})
    ip = in_ns(netns, "ip", "-4", "-o", "addr", "show", "eth0").stdout.split()[3].split("/")[0]
    result = node.setup(POD, netns, ip)
    assert (result.conflist, result.types) == ("10-cmslab.conflist", ("ptp", "first", "second"))
    (first_call, first), (second_call, second) = calls(record)
    assert (first_call, second_call) == ("first-ADD", "second-ADD")
    assert first["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": container_id(POD.uid),
        "CNI_NETNS": f"/var/run/netns/{netns}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(node.bin_dir),
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=my-app-0;"
        f"K8S_POD_INFRA_CONTAINER_ID={container_id(POD.uid)};K8S_POD_UID={POD.uid}",
    }
    # the skipped primary's result: the pod's interface and the address kwok chose
    assert first["stdin"] == {
        "type": "first",
        "name": "kindnet",
        "cniVersion": "1.0.0",
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": f"/var/run/netns/{netns}"}],
            "ips": [{"address": f"{ip}/32", "interface": 0}],
        },
    }
    # each plugin's result is the next one's prevResult; its own keys stay
    assert second["stdin"]["x"] == 1
    assert second["stdin"]["prevResult"]["interfaces"][-1] == {"name": "first"}
    # it ran in the node's /run, with the pod's namespace behind CNI_NETNS
    assert set(first["run"]) - {"mount"} == {"istio-cni", "netns"}  # mount(8)'s own utab
    assert first["netns"] == os.stat(f"/run/netns/{netns}").st_ino


@needs_netns
def test_teardown_runs_del_last_first_with_what_each_add_was_given(
    tmp_path: Path, record: Path, netns: str
) -> None:
    node = recording_node(tmp_path, record, {"type": "first"}, {"type": "second"})
    result = node.setup(POD, netns, random_pod_ip())
    adds = dict(calls(record))
    for added in record.iterdir():
        added.unlink()
    assert node.teardown(result, POD, netns) == []
    (second_call, second), (first_call, first) = calls(record)
    assert (second_call, first_call) == ("second-DEL", "first-DEL")
    assert first["env"]["CNI_COMMAND"] == "DEL"
    assert first["stdin"] == adds["first-ADD"]["stdin"]
    assert second["stdin"] == adds["second-ADD"]["stdin"]


@needs_netns
def test_a_plugin_that_fails_add_fails_the_sandbox_with_its_cni_error(
    tmp_path: Path, record: Path, netns: str
) -> None:
    node = recording_node(tmp_path, record, {"type": "refusing", "fail": "no pod found"})
    with pytest.raises(CniError, match=re.escape('plugin type="refusing" failed (add): no pod')):
        node.setup(POD, netns, random_pod_ip())


@needs_netns
def test_an_add_in_flight_is_cancelled_and_its_plugin_killed(
    tmp_path: Path, record: Path, netns: str
) -> None:
    """The pod was deleted while its plugin ran: the kubelet cancels the sync, and the
    runtime's plugin process with it."""
    node = recording_node(tmp_path, record, {"type": "waiting", "hang": True})
    cancelled = threading.Event()
    failed: list[BaseException] = []

    def set_up() -> None:
        try:
            node.setup(POD, netns, random_pod_ip(), cancelled)
        except CniError as exc:
            failed.append(exc)

    worker = threading.Thread(target=set_up)
    worker.start()
    pid_file = Path(f"{record}.pid")
    for _ in range(300):  # the plugin is running once it wrote its pid
        if pid_file.exists() and pid_file.read_text():
            break
        worker.join(0.05)
    pid = int(pid_file.read_text())
    cancelled.set()
    worker.join(30)
    assert not worker.is_alive()
    assert [str(e) for e in failed] == [
        'plugin type="waiting" failed (add): cancelled, the pod is being deleted'
    ]
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left waiting
        os.kill(pid, 0)


@needs_netns
def test_teardown_goes_on_past_a_failing_del_and_reports_it(
    tmp_path: Path, record: Path, netns: str
) -> None:
    node = recording_node(tmp_path, record, {"type": "first"}, {"type": "second"})
    result = node.setup(POD, netns, random_pod_ip())
    (node.bin_dir / "second").unlink()  # its binary is gone by teardown
    failures = node.teardown(result, POD, netns)
    assert failures == [f'failed to find plugin "second" in path [{node.bin_dir}]']
    assert [c for c, _ in calls(record)][-1] == "first-DEL"


@needs_netns
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_istio_validation_exits_with_the_repair_code_until_the_capture_is_in(
    netns: str, pilot_agent: Path
) -> None:
    """The ``istio-validation`` init container's check, run as its uid 1337: 126 (what
    istio-cni's repair controller acts on) until Istio's capture is in the namespace."""
    as_proxy = ["setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups"]
    istio_iptables = [str(pilot_agent), "istio-iptables", *ISTIO_CAPTURE]
    validation = [*as_proxy, *istio_iptables, "--run-validation", "--skip-rule-apply"]
    validation += ["--probe-timeout", "1s"]
    assert in_ns(netns, *validation, check=False).returncode == 126
    in_ns(netns, *istio_iptables, timeout=60)
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
    # what istio-cni's repair controller reads: the validation's last exit code
    assert (ended.exit_code, ended.reason, ended.message) == (126, "Error", "no redirect")
    assert ended.started_at == STARTED_AT <= ended.finished_at
    for status in pod.status.container_statuses:
        assert status.state.waiting.reason == "PodInitializing"


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
