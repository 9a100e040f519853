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
  does what that plugin does: it writes the ``ISTIO_*`` nat rules into the pod's
  namespace before any container starts, with the exclusions the pod's
  ``traffic.sidecar.istio.io/*`` annotations ask for. A pod set up while the plugin
  is missing from the chain (istio-cni-node restarting) gets no rules: the race.

What it leaves out: the agent addresses pods itself (the primary plugins' ``ADD`` is
not run: kwok has already chosen the pod's IP), CHECK and DEL, ``*.conf`` files,
runtime config and capabilities.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmesh_sec.lab.standins.cni_node import PLUGIN_TYPE, primary_conflist
from chaosmesh_sec.lab.standins.sidecar import capture
from chaosmesh_sec.lab.standins.sidecar.config import Settings

__all__ = ["CniError", "NodeCni", "capture_settings", "wants_capture"]

PROXY_CONTAINER = "istio-proxy"
ANNOTATION_ENV = {
    "traffic.sidecar.istio.io/excludeInboundPorts": "EXCLUDE_INBOUND_PORTS",
    "traffic.sidecar.istio.io/excludeOutboundPorts": "EXCLUDE_OUTBOUND_PORTS",
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": "EXCLUDE_OUTBOUND_IP_RANGES",
}


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


def capture_settings(pod: Any) -> Settings:
    """The capture the plugin installs for ``pod``: defaults plus its annotations."""
    annotations = pod.metadata.annotations or {}
    env = {var: annotations[key] for key, var in ANNOTATION_ENV.items() if key in annotations}
    defaults = ",".join(map(str, Settings().exclude_outbound_ports))
    extra = env.get("EXCLUDE_OUTBOUND_PORTS", "")
    env["EXCLUDE_OUTBOUND_PORTS"] = f"{defaults},{extra}" if extra else defaults
    try:
        return Settings.from_env(env)
    except ValueError as exc:
        raise CniError(f"plugin type={PLUGIN_TYPE!r} failed (add): {exc}") from None


def _netns_runner(netns: str) -> capture.Runner:
    def run(args: Sequence[str]) -> tuple[int, str]:
        done = subprocess.run(
            ["ip", "netns", "exec", netns, "iptables", "-w", "5", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, done.stderr.strip()

    return run


class NodeCni:
    """One node's CNI config and plugin binaries, read at each pod set-up."""

    def __init__(self, node_root: Path) -> None:
        self.net_dir = node_root / "etc/cni/net.d"
        self.bin_dir = node_root / "opt/cni/bin"

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
                try:
                    capture.install(capture_settings(pod), _netns_runner(netns))
                except RuntimeError as exc:
                    raise CniError(f'plugin type="{PLUGIN_TYPE}" failed (add): {exc}') from None
                captured = True
        return ChainResult(path.name, tuple(str(p.get("type")) for p in plugins), captured)
