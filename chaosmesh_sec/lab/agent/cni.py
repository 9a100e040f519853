"""The node's CNI step of pod set-up and teardown, as a container runtime runs it through libcni.

When the agent sets a pod's network namespace up it reads the node's active CNI
config (the first ``*.conflist`` in ``/etc/cni/net.d`` of the node's filesystem, as
libcni picks it) and goes through its plugin chain:

- every plugin's binary must be in the node's ``/opt/cni/bin`` and must support the
  config's ``cniVersion``; the agent asks the binary itself (``CNI_COMMAND=VERSION``).
  A missing binary or an unsupported version fails the pod's sandbox with the
  runtime's message, and the agent tries again later, as a kubelet does;
- the first plugin is the primary, the one that makes the pod's interface and takes
  its address (the real ``ptp`` with ``host-local``). kwok has already chosen the
  pod's IP and the lab's network has already put it on the pod's ``eth0``, so its
  ``ADD`` is skipped: its result, the interface and the address, is what the agent
  hands the next plugin as ``prevResult``;
- every other plugin runs for real: its binary is executed with the CNI
  environment (``CNI_COMMAND=ADD``, ``CNI_CONTAINERID``, ``CNI_NETNS``,
  ``CNI_IFNAME``, ``CNI_PATH``, and ``CNI_ARGS`` with ``K8S_POD_NAMESPACE``,
  ``K8S_POD_NAME``, ``K8S_POD_INFRA_CONTAINER_ID`` and ``K8S_POD_UID``), the network's
  config with that plugin's own on stdin, and its result becomes the next
  ``prevResult``. With istio-cni chained that is the real ``istio-cni`` plugin: it
  reads the pod from the API server (with the kubeconfig its installer left in
  ``/var/run/istio-cni``) and, for a sidecar pod, writes Istio's ``nat`` rules into
  the pod's namespace. A plugin that fails fails the sandbox;
- at teardown the same plugins run ``DEL``, last first, with the config and result
  of their ``ADD`` (what libcni caches), before the namespace goes;
- an ``ADD`` in flight for a pod deleted meanwhile is cancelled: its plugin is
  killed, as the kubelet cancels the pod's sync and the runtime's libcni call runs
  the plugin under that context.

A plugin runs as on the node: in a private mount namespace whose ``/run`` is the
node's (``<node root>/var/run``; the pod's namespace is bound at
``/run/netns/<name>`` there, as ``ip netns`` keeps it), so the paths written into the
node's config by its installer are the paths the plugin finds.

What it leaves out: CHECK and GC, ``*.conf`` files, runtime config and capabilities.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ChainResult", "CniError", "NodeCni", "PodRef", "container_id", "primary_conflist"]

IFNAME = "eth0"
PLUGIN_TIMEOUT = 90.0  # the istio-cni plugin retries the API for its pod for up to 30 s
POLL = 0.1  # seconds between looks at a running plugin's cancellation


class CniError(Exception):
    """The pod's sandbox cannot be set up (the runtime's FailedCreatePodSandBox)."""


@dataclass(frozen=True)
class PodRef:
    """The pod a CNI call is for: what goes into ``CNI_ARGS``."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class ChainResult:
    """What a pod's ``ADD`` went through: enough for its ``DEL``."""

    conflist: str
    network: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]  # the chain's plugin configs, in order
    results: tuple[dict[str, Any] | None, ...]  # the prevResult each one was given

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(str(p.get("type", "")) for p in self.plugins)


def primary_conflist(net_dir: Path) -> Path | None:
    """The conflist the container runtime would use: the first by name, as libcni picks."""
    found = sorted(p for p in net_dir.glob("*.conflist") if p.is_file())
    return found[0] if found else None


def container_id(pod_uid: str) -> str:
    """The pod's sandbox id, as a runtime gives one: 64 hex digits (pure)."""
    return hashlib.sha256(f"cmslab-sandbox/{pod_uid}".encode()).hexdigest()


def primary_result(version: str, netns_path: str, pod_ip: str) -> dict[str, Any]:
    """The result the skipped primary plugin would have returned (pure)."""
    address = ipaddress.ip_address(pod_ip)
    return {
        "cniVersion": version,
        "interfaces": [{"name": IFNAME, "sandbox": netns_path}],
        "ips": [{"address": f"{address}/{address.max_prefixlen}", "interface": 0}],
    }


def plugin_stdin(
    network: str, version: str, plugin: dict[str, Any], prev: dict[str, Any] | None
) -> str:
    """A chained plugin's stdin: its config, with the network's name and version (pure)."""
    conf = {**plugin, "name": network, "cniVersion": version}
    if prev is not None:
        conf["prevResult"] = prev
    return json.dumps(conf)


def cni_args(pod: PodRef) -> str:
    """``CNI_ARGS`` as a kubelet's runtime passes them (pure)."""
    return ";".join(
        [
            "IgnoreUnknown=1",
            f"K8S_POD_NAMESPACE={pod.namespace}",
            f"K8S_POD_NAME={pod.name}",
            f"K8S_POD_INFRA_CONTAINER_ID={container_id(pod.uid)}",
            f"K8S_POD_UID={pod.uid}",
        ]
    )


def node_view_script(node_run: Path, netns: str, binary: Path) -> str:
    """Shell lines that give a plugin the node's ``/run`` and the pod's namespace in it,
    then run the plugin (for ``unshare --mount``)."""
    target = shlex.quote(f"/run/netns/{netns}")
    lines = [
        "set -e",
        f"exec 3< {target}",  # the pod's namespace, held open across the new /run
        "mount -t tmpfs -o mode=0755 cmslab-node-run /run",
    ]
    for entry in sorted(p for p in node_run.iterdir() if p.is_dir() and p.name != "netns"):
        dest = shlex.quote(f"/run/{entry.name}")
        lines.append(f"mkdir -p {dest} && mount --bind {shlex.quote(str(entry))} {dest}")
    lines += [
        f"mkdir -p /run/netns && touch {target}",
        # not canonicalized: mount(8) would resolve the fd's link to the path it was
        # opened by, which is now the new /run's empty file
        f"mount --no-canonicalize --bind /proc/self/fd/3 {target}",
        "exec 3<&-",
        f"exec {shlex.quote(str(binary))}",
    ]
    return "\n".join(lines)


def _failure(kind: str, command: str, done: subprocess.CompletedProcess[str]) -> str:
    """The runtime's message for a plugin that failed: the CNI error it printed, else
    the last line it wrote (pure)."""
    try:
        err = json.loads(done.stdout)
        msg = str(err["msg"]) + (f": {err['details']}" if err.get("details") else "")
    except (ValueError, KeyError, TypeError):
        lines = (done.stderr or done.stdout).strip().splitlines()
        msg = lines[-1] if lines else f"exit {done.returncode}"
    return f'plugin type="{kind}" failed ({command.lower()}): {msg[:400]}'


class NodeCni:
    """One node's CNI config and plugin binaries, read at each pod set-up."""

    def __init__(self, node_root: Path) -> None:
        self.net_dir = node_root / "etc/cni/net.d"
        self.bin_dir = node_root / "opt/cni/bin"
        self.run_dir = node_root / "var/run"

    def supported_versions(self, plugin_type: str) -> list[str]:
        """Ask the plugin binary (``CNI_COMMAND=VERSION``); CniError if it cannot say."""
        binary = self._binary(plugin_type)
        done = subprocess.run(
            [str(binary)],
            input='{"cniVersion":"0.1.0"}',
            env={"CNI_COMMAND": "VERSION"},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        try:
            return list(json.loads(done.stdout)["supportedVersions"])
        except (ValueError, KeyError, TypeError):
            raise CniError(
                f'plugin type="{plugin_type}": VERSION failed: {done.stderr.strip()[:200]}'
            ) from None

    def _binary(self, plugin_type: str) -> Path:
        binary = self.bin_dir / plugin_type
        if "/" in plugin_type or not binary.is_file():
            raise CniError(f'failed to find plugin "{plugin_type}" in path [{self.bin_dir}]')
        return binary

    def setup(
        self, pod: PodRef, netns: str, pod_ip: str, cancelled: threading.Event | None = None
    ) -> ChainResult:
        """Run the chain's ``ADD`` for ``pod`` (CniError when a plugin refuses, or when
        ``cancelled`` is set while one runs)."""
        path = primary_conflist(self.net_dir)
        if path is None:
            raise CniError(f"no networks found in {self.net_dir}")
        try:
            conf = json.loads(path.read_text())
            version = str(conf["cniVersion"])
            network = str(conf["name"])
            plugins = [dict(p) for p in conf["plugins"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CniError(f"error parsing configuration list {path.name}: {exc}") from None
        for plugin in plugins:
            kind = str(plugin.get("type", ""))
            supported = self.supported_versions(kind)
            if version not in supported:
                raise CniError(
                    f'plugin type="{kind}" failed (add): incompatible CNI versions; '
                    f'config is "{version}", plugin supports {supported}'
                )
        prev: dict[str, Any] | None = primary_result(version, f"/var/run/netns/{netns}", pod_ip)
        given: list[dict[str, Any] | None] = [None]
        for plugin in plugins[1:]:
            given.append(prev)
            stdin = plugin_stdin(network, version, plugin, prev)
            prev = self._run("ADD", plugin, stdin, pod, netns, cancelled)
        return ChainResult(path.name, network, version, tuple(plugins), tuple(given))

    def teardown(self, chain: ChainResult, pod: PodRef, netns: str) -> list[str]:
        """Run ``DEL`` for the chained plugins, last first; return the failures."""
        failures = []
        for plugin, prev in reversed(list(zip(chain.plugins, chain.results, strict=True))[1:]):
            stdin = plugin_stdin(chain.network, chain.cni_version, plugin, prev)
            try:
                self._run("DEL", plugin, stdin, pod, netns)
            except CniError as exc:
                failures.append(str(exc))
        return failures

    def _run(
        self,
        command: str,
        plugin: dict[str, Any],
        stdin: str,
        pod: PodRef,
        netns: str,
        cancelled: threading.Event | None = None,
    ) -> dict[str, Any] | None:
        kind = str(plugin.get("type", ""))
        binary = self._binary(kind)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id(pod.uid),
            "CNI_NETNS": f"/var/run/netns/{netns}",
            "CNI_IFNAME": IFNAME,
            "CNI_PATH": str(self.bin_dir),
            "CNI_ARGS": cni_args(pod),
        }
        script = node_view_script(self.run_dir, netns, binary)
        failed = f'plugin type="{kind}" failed ({command.lower()})'
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,  # its own group: a cancel kills the plugin too
        )
        deadline = time.monotonic() + PLUGIN_TIMEOUT
        given: str | None = stdin
        while True:
            try:
                out, err = proc.communicate(given, timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                given = None  # written once; communicate keeps reading
            if cancelled is not None and cancelled.is_set():
                _kill(proc)
                raise CniError(f"{failed}: cancelled, the pod is being deleted") from None
            if time.monotonic() > deadline:
                _kill(proc)
                raise CniError(f"{failed}: timed out") from None
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if done.returncode != 0:
            raise CniError(_failure(kind, command, done))
        if command != "ADD":
            return None
        try:
            result: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise CniError(
                f'plugin type="{kind}" failed (add): its result is not JSON: {done.stdout[:200]}'
            ) from None
        return result


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
