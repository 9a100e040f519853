"""Stand-in for istio-cni's ``install-cni`` container (DaemonSet ``istio-cni-node``).

What it does, as istio-cni in chained mode does on a node: on start, insert the
``istio-cni`` plugin into the node's primary CNI conflist (in place, atomically) and
then answer ``/readyz`` on port 8000 with 200; on SIGTERM, take the plugin out
again and exit 0. Pods the node sets up while the plugin is missing from the
conflist get no traffic redirection: the restart race of the seeds.

The plugin "binary" it installs in ``$CNI_BIN_DIR`` is a small script that answers
``CNI_COMMAND=VERSION`` as the real plugin does; the node agent does the plugin's
``ADD`` itself (see :mod:`chaosmesh_sec.lab.agent.cni`). ``CMSLAB_START_DELAY_SECONDS``
holds the start back, as pulling and starting the real image would.

With ``NODE_NAME`` set it also runs the agent's pod watch (:mod:`.cni_repair`):
repair labels and ambient enrolment annotations.

What it leaves out: no kubeconfig is written, no ztunnel. The conflist
directory is the pod's hostPath volume mounted at ``$CNI_NET_DIR`` (default
``/etc/cni/net.d``), the plugin directory the one at ``$CNI_BIN_DIR`` (default
``/opt/cni/bin``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client, config

from chaosmesh_sec.lab.standins.cni_repair import PodWatch

__all__ = [
    "PLUGIN_TYPE",
    "SUPPORTED_VERSIONS",
    "install",
    "install_binary",
    "main",
    "primary_conflist",
    "uninstall",
]

logger = logging.getLogger("chaostoolkit")

PLUGIN_TYPE = "istio-cni"
READY_PORT = 8000
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")

_PLUGIN_SCRIPT = """#!/bin/sh
# istio-cni plugin stand-in (chaosmesh-sec lab): answers VERSION; the node agent adds.
if [ "$CNI_COMMAND" = VERSION ]; then
  printf '%s\\n' '{VERSION_JSON}'
  exit 0
fi
printf '%s\\n' '{"code": 4, "msg": "the lab node agent runs this plugin"}'
exit 1
"""


def primary_conflist(net_dir: Path) -> Path | None:
    """The conflist the container runtime would use: the first by name, as libcni picks."""
    found = sorted(p for p in net_dir.glob("*.conflist") if p.is_file())
    return found[0] if found else None


def install_binary(bin_dir: Path) -> Path:
    """Put the plugin's executable in ``bin_dir`` (atomically); return its path."""
    answer = json.dumps({"cniVersion": "1.0.0", "supportedVersions": list(SUPPORTED_VERSIONS)})
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / PLUGIN_TYPE
    tmp = bin_dir / f".{PLUGIN_TYPE}.tmp"
    tmp.write_text(_PLUGIN_SCRIPT.replace("{VERSION_JSON}", answer))
    tmp.chmod(0o755)
    tmp.replace(path)
    return path


def _plugin() -> dict[str, Any]:
    return {
        "type": PLUGIN_TYPE,
        "log_level": "info",
        "kubernetes": {"cni_bin_dir": "/opt/cni/bin", "exclude_namespaces": ["kube-system"]},
    }


def _rewrite(path: Path, change: Any) -> bool:
    """Apply ``change`` to the conflist's plugin list, write it atomically; True if changed."""
    conf = json.loads(path.read_text())
    plugins = list(conf.get("plugins", []))
    changed = change(plugins)
    if changed is None:
        return False
    conf["plugins"] = changed
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(conf, indent=2) + "\n")
    tmp.replace(path)
    return True


def install(net_dir: Path) -> Path:
    """Chain the istio-cni plugin into the primary conflist (once); return its path."""
    path = primary_conflist(net_dir)
    if path is None:
        raise SystemExit(f"install-cni stand-in: no CNI conflist in {net_dir}: is the node up?")

    def add(plugins: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        if any(p.get("type") == PLUGIN_TYPE for p in plugins):
            return None
        return [*plugins, _plugin()]

    if _rewrite(path, add):
        logger.info("install-cni: istio-cni chained into %s", path.name)
    return path


def uninstall(net_dir: Path) -> None:
    """Take the istio-cni plugin out of the primary conflist."""
    path = primary_conflist(net_dir)
    if path is None:
        return

    def remove(plugins: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        kept = [p for p in plugins if p.get("type") != PLUGIN_TYPE]
        return kept if len(kept) != len(plugins) else None

    if _rewrite(path, remove):
        logger.info("install-cni: istio-cni removed from %s", path.name)


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/readyz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    net_dir = Path(os.environ.get("CNI_NET_DIR", "/etc/cni/net.d"))
    stop = threading.Event()

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    delay = float(os.environ.get("CMSLAB_START_DELAY_SECONDS", "0") or 0)
    if delay > 0 and stop.wait(delay):
        return
    install_binary(Path(os.environ.get("CNI_BIN_DIR", "/opt/cni/bin")))
    install(net_dir)
    pods = None
    if os.environ.get("NODE_NAME"):  # the agent's pod watch (repair, ambient enrolment)
        config.load_incluster_config()
        pods = PodWatch(os.environ["NODE_NAME"], client.ApiClient())
        pods.start()
    server = ThreadingHTTPServer(("0.0.0.0", READY_PORT), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    logger.info("install-cni: ready on :%d/readyz", READY_PORT)
    stop.wait()
    if pods is not None:
        pods.stop.set()
    server.shutdown()
    uninstall(net_dir)
    logger.info("install-cni: stopped")


if __name__ == "__main__":
    main()
