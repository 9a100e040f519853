"""``lab up``, ``lab down`` and ``lab status``: the lab's lifecycle, all or nothing.

``up`` cleans up what a crashed lab left, checks its ports, then starts everything;
if any step fails it tears down what it started and raises a LabError naming the
step and the log to read. ``down`` leaves no process, namespace, bridge, iptables
rule or mount behind.
"""

from __future__ import annotations

import errno
import json
import shutil
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab import hostdeps, kubeconfig, network, nodes, pki, procs
from chaosmesh_sec.lab.build import Binaries, build_all
from chaosmesh_sec.lab.controlplane import AUDIT_POLICY, control_plane
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.topology import DEFAULT, Topology

__all__ = ["LabStatus", "down", "status", "up"]

Progress = Callable[[str], None]


def _port_busy(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _check_ports(topo: Topology) -> None:
    busy = [p for p in topo.host_ports if _port_busy(p)]
    if busy:
        raise LabError(
            f"port(s) {', '.join(map(str, busy))} already in use on this machine; the lab "
            "needs them for its control plane. Stop what listens there (`ss -ltnp`) and retry."
        )


def _wait_http_ok(
    url: str, ctx: ssl.SSLContext | None, timeout: float, what: str, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = str(exc)
        time.sleep(0.5)
    raise LabError(f"{what} did not become ready within {timeout:.0f}s ({last})", log_path=log)


def _admin_ssl(lab_pki: pki.LabPKI) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(lab_pki.ca.cert))
    admin = lab_pki.pair("admin")
    ctx.load_cert_chain(str(admin.cert), str(admin.key))
    return ctx


def _write_kubeconfigs(paths: LabPaths, lab_pki: pki.LabPKI, topo: Topology) -> None:
    server = topo.apiserver_url
    kubeconfig.write(
        paths.admin_kubeconfig, server, lab_pki.ca.cert, "lab-admin", lab_pki.pair("admin")
    )
    for user in ("kube-controller-manager", "kube-scheduler", *(n.name for n in topo.nodes)):
        kubeconfig.write(paths.kubeconfig(user), server, lab_pki.ca.cert, user, lab_pki.pair(user))


def _start_control_plane(
    bins: Binaries, paths: LabPaths, lab_pki: pki.LabPKI, topo: Topology, progress: Progress
) -> None:
    marker = str(paths.state)
    ctx = _admin_ssl(lab_pki)
    paths.audit_policy.write_text(AUDIT_POLICY)
    for spec in control_plane(bins, paths, lab_pki, topo):
        log = paths.component_log(spec.name)
        progress(f"starting {spec.name}")
        procs.start(
            spec.name, spec.cmd, log=log, pidfile=paths.run / f"{spec.name}.pid", marker=marker
        )
        if spec.name == "etcd":
            _wait_http_ok(f"{topo.etcd_url}/health", None, 60, "etcd", log)
        elif spec.name == "kube-apiserver":
            _wait_http_ok(f"{topo.apiserver_url}/readyz", ctx, 120, "kube-apiserver", log)


# Top-level directories the chart's pods mount under (istio-cni-node: /host/opt/cni/bin,
# /host/etc/cni/net.d, /host/proc). A container's mounts are made in its own mount
# namespace, over an overlay of the target's nearest existing ancestor, never on the
# machine's tree; a missing top-level directory has no ancestor but `/`, so the lab
# makes these empty directories at up (the one mark it leaves outside its state,
# removed at down when it made them and they are still empty).
MOUNT_ROOTS = ("/host",)


def _made_roots_file(paths: LabPaths) -> Path:
    return paths.state / "mount-roots"


def _make_mount_roots(paths: LabPaths) -> None:
    made = [root for root in MOUNT_ROOTS if not Path(root).exists()]
    for root in made:
        Path(root).mkdir(mode=0o755)
    _made_roots_file(paths).write_text("".join(f"{root}\n" for root in made))


def _remove_mount_roots(paths: LabPaths) -> list[str]:
    record = _made_roots_file(paths)
    if not record.exists():
        return []
    removed = []
    for root in record.read_text().split():
        if root in MOUNT_ROOTS and Path(root).is_dir() and not any(Path(root).iterdir()):
            Path(root).rmdir()
            removed.append(f"directory {root}")
    return removed


def up(paths: LabPaths | None = None, topo: Topology = DEFAULT, progress: Progress = print) -> Path:
    """Bring the lab up; return the admin kubeconfig path."""
    paths = paths or LabPaths.default()
    hostdeps.ensure(progress)
    bins = build_all(paths, progress)
    if procs.lab_pids(str(paths.state)) or network.lab_netns():
        progress("a previous lab is still (partly) here: cleaning it up first")
        down(paths, topo, progress)
    _check_ports(topo)
    started = time.monotonic()
    try:
        for d in (paths.state, paths.logs, paths.run, paths.pods):
            d.mkdir(parents=True, exist_ok=True)
        paths.state.chmod(0o700)
        _make_mount_roots(paths)
        progress("generating the lab PKI")
        lab_pki = pki.generate(paths.pki, topo)
        _write_kubeconfigs(paths, lab_pki, topo)
        progress("creating the network: bridge and node namespaces")
        network.setup(topo)
        _start_control_plane(bins, paths, lab_pki, topo, progress)
        nodes.start(bins, paths, lab_pki, topo, progress)
    except BaseException:
        progress("lab up failed: tearing down what was started")
        down(paths, topo, lambda _msg: None, keep_logs=True)
        raise
    progress(f"lab is up in {time.monotonic() - started:.0f}s")
    return paths.admin_kubeconfig


def down(
    paths: LabPaths | None = None,
    topo: Topology = DEFAULT,
    progress: Progress = print,
    *,
    keep_logs: bool = False,
) -> list[str]:
    """Stop every lab process and remove namespaces, bridge and state; return what was removed."""
    paths = paths or LabPaths.default()
    removed = [f"process {pid}" for pid in procs.stop_all(str(paths.state))]
    removed += network.teardown(topo)
    removed += _remove_mount_roots(paths)
    if paths.state.exists():
        if keep_logs:
            for child in paths.state.iterdir():
                if child != paths.logs and child.name != "pods":
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(paths.state, ignore_errors=True)
        removed.append(f"state {paths.state}")
    progress(f"lab down: removed {len(removed)} item(s)")
    return removed


@dataclass(frozen=True)
class LabStatus:
    running: bool
    processes: int
    netns: list[str]
    kubeconfig: str
    nodes: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def status(paths: LabPaths | None = None) -> LabStatus:
    paths = paths or LabPaths.default()
    pids = procs.lab_pids(str(paths.state))
    node_state: dict[str, str] = {}
    if pids and paths.admin_kubeconfig.exists():
        node_state = nodes.ready_states(paths)
    return LabStatus(
        running=bool(pids),
        processes=len(pids),
        netns=network.lab_netns(),
        kubeconfig=str(paths.admin_kubeconfig) if paths.admin_kubeconfig.exists() else "",
        nodes=node_state,
    )
