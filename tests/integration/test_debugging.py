"""exec, logs and port-forward on lab pods go API server -> kwok -> the pod, as in a cluster."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

from kubernetes import client
from kubernetes.stream import stream

from chaosmesh_sec.lab.build import locate
from chaosmesh_sec.lab.paths import LabPaths
from tests.lab_fixtures import eventually

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _istiod(core: client.CoreV1Api) -> client.V1Pod:
    pods = core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
    return next(
        p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    )


def test_exec_runs_in_the_pods_network_namespace_with_its_token(core: client.CoreV1Api) -> None:
    pod = _istiod(core)
    out = stream(
        core.connect_get_namespaced_pod_exec,
        pod.metadata.name,
        "istio-system",
        command=["sh", "-c", f"ip -4 -o addr show eth0; cat {SA_DIR}/namespace"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert f"inet {pod.status.pod_ip}/32" in out
    assert out.strip().endswith("istio-system")


def test_logs_show_the_real_pilot_discovery_output(core: client.CoreV1Api) -> None:
    pod = _istiod(core)
    logs = eventually(
        lambda: core.read_namespaced_pod_log(
            pod.metadata.name, "istio-system", container="discovery"
        ),
        30,
        "istiod logs",
    )
    assert "starting gRPC discovery service" in logs or "CA" in logs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_forward_reaches_istiod(core: client.CoreV1Api, lab: Path) -> None:
    pod = _istiod(core)
    kubectl = locate(LabPaths.default())["kubectl"]
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(kubectl),
            f"--kubeconfig={lab}",
            "-n",
            "istio-system",
            "port-forward",
            pod.metadata.name,
            f"{port}:8080",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                return bool(r.status == 200)

        assert eventually(ready, 30, "istiod /ready through port-forward")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
