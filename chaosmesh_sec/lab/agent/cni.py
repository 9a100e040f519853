"""The node's CNI step of pod set-up, as a container runtime runs it through libcni.

When the agent sets a pod's network namespace up it reads the node's active CNI
config (the first ``*.conflist`` in ``/etc/cni/net.d`` of the node's filesystem, as
libcni picks it) and goes through its plugin chain:

- every plugin's binary must be in the node's ``/opt/cni/bin`` and must support the
  config's ``cniVersion``; the agent asks the binary itself (``CNI_COMMAND=VERSION``).
  The primary plugins there are the real ``ptp`` and ``host-local`` from
  ``github.com/containernetworking/plugins`` (the lab's ``cni-plugins`` build). A
  missing binary or an unsupported version fails the pod's sandbox, with the
  runtime's message, and the agent tries again later, as a kubelet does;
- when the chain holds the ``istio-cni`` plugin and the pod has an ``istio-proxy``
  container (and its namespace is not excluded by the plugin's config), the agent
  does what that plugin does: before any container starts it installs Istio's
  capture rules in the pod's namespace with the real ``pilot-agent istio-iptables``
  (the same rule builder the plugin links in), with the exclusions the pod's
  ``traffic.sidecar.istio.io/*`` annotations ask for. A pod set up while the plugin
  is missing from the chain (istio-cni-node restarting) gets no rules: the race.

What it leaves out: the agent addresses pods itself (the primary plugins' ``ADD`` is
not run: kwok has already chosen the pod's IP), CHECK and DEL, ``*.conf`` files,
runtime config and capabilities.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmesh_sec.lab.standins.cni_node import PLUGIN_TYPE, primary_conflist

__all__ = ["CniError", "NodeCni", "capture_args", "wants_capture"]

PROXY_CONTAINER = "istio-proxy"
PROXY_UID = "1337"
# The sidecar's own inbound ports the plugin never captures: Envoy's Prometheus
# endpoint, its readiness listener and pilot-agent's status port.
ALWAYS_EXCLUDED_INBOUND = "15090,15021,15020"
# pod annotation -> (istio-iptables flag, the plugin's default)
ANNOTATION_FLAGS = {
    "traffic.sidecar.istio.io/includeOutboundIPRanges": ("-i", "*"),
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": ("-x", ""),
    "traffic.sidecar.istio.io/includeInboundPorts": ("-b", "*"),
    "traffic.sidecar.istio.io/excludeOutboundPorts": ("-o", ""),
    "traffic.sidecar.istio.io/includeOutboundPorts": ("-q", ""),
    "traffic.sidecar.istio.io/excludeInterfaces": ("-c", ""),
}
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"


class CniError(Exception):
    """The pod's sandbox cannot be set up (the runtime's FailedCreatePodSandBox)."""


@dataclass(frozen=True)
class ChainResult:
    conflist: str
    plugins: tuple[str, ...]
    captured: bool


def wants_capture(pod: Any, plugin_conf: dict[str, Any]) -> bool:
    """Whether the istio-cni plugin would redirect ``pod``'s traffic (pure)."""
    excluded = plugin_conf.get("kubernetes", {}).get("exclude_namespaces", [])
    if pod.metadata.namespace in excluded:
        return False
    annotations = pod.metadata.annotations or {}
    if annotations.get("sidecar.istio.io/interceptionMode", "REDIRECT") == "NONE":
        return False
    return any(c.name == PROXY_CONTAINER for c in pod.spec.containers)


def capture_args(pod: Any) -> list[str]:
    """The ``istio-iptables`` arguments the plugin uses for ``pod`` (pure): Istio's
    REDIRECT mode, Envoy's uid and gid let out, the pod's annotations applied. Their
    values are checked by istio-iptables itself, which refuses a malformed one."""
    annotations = pod.metadata.annotations or {}
    args = ["-p", "15001", "-z", "15006", "-u", PROXY_UID, "-g", PROXY_UID, "-m", "REDIRECT"]
    for key, (flag, default) in ANNOTATION_FLAGS.items():
        value = annotations.get(key, default)
        if value:
            args += [flag, value]
    extra = annotations.get(EXCLUDE_INBOUND, "")
    args += ["-d", f"{ALWAYS_EXCLUDED_INBOUND},{extra}" if extra else ALWAYS_EXCLUDED_INBOUND]
    return args


class NodeCni:
    """One node's CNI config and plugin binaries, read at each pod set-up."""

    def __init__(self, node_root: Path, pilot_agent: Path | None) -> None:
        self.net_dir = node_root / "etc/cni/net.d"
        self.bin_dir = node_root / "opt/cni/bin"
        self.pilot_agent = pilot_agent  # Istio's rule builder (None: the lab has no proxyv2)

    def supported_versions(self, plugin_type: str) -> list[str]:
        """Ask the plugin binary (``CNI_COMMAND=VERSION``); CniError if it cannot say."""
        binary = self.bin_dir / plugin_type
        if not binary.is_file():
            raise CniError(f'failed to find plugin "{plugin_type}" in path [{self.bin_dir}]')
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

    def setup(self, pod: Any, netns: str) -> ChainResult:
        """Run the chain's checks for ``pod`` and, when due, install its capture."""
        path = primary_conflist(self.net_dir)
        if path is None:
            raise CniError(f"no networks found in {self.net_dir}")
        try:
            conf = json.loads(path.read_text())
            version = str(conf["cniVersion"])
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
        captured = False
        for plugin in plugins:
            if plugin.get("type") == PLUGIN_TYPE and wants_capture(pod, plugin):
                self._capture(pod, netns)
                captured = True
        return ChainResult(path.name, tuple(str(p.get("type")) for p in plugins), captured)

    def _capture(self, pod: Any, netns: str) -> None:
        """Install Istio's rules in the pod's namespace, as the plugin's ``ADD`` does."""
        if self.pilot_agent is None:
            raise CniError(f'plugin type="{PLUGIN_TYPE}" failed (add): no istio-iptables here')
        argv = [str(self.pilot_agent), "istio-iptables", *capture_args(pod)]
        done = subprocess.run(
            ["ip", "netns", "exec", netns, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise CniError(f'plugin type="{PLUGIN_TYPE}" failed (add): ' + " / ".join(tail))
