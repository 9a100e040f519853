"""Stand-in for cilium-agent (DaemonSet ``cilium``): L4 ingress policy from an IP cache.

One per node, in the node's network namespace (hostNetwork), with the ``cilium``
ServiceAccount. It keeps, from watches of the API:

- the **IP -> identity cache**: every pod's IP with its namespace and labels, as
  Cilium's ipcache maps IPs to security identities. An entry changes only when an
  event about that pod arrives;
- the NetworkPolicies, CiliumNetworkPolicies and namespaces' labels;

and turns them into iptables rules in its node (filter chain ``CMSLAB-L4``, jumped to
from FORWARD; see :mod:`chaosmesh_sec.lab.standins.l4policy`) for the ingress of the
node's own pods. A drop is silent, so a denied client's connection times out.

When the node is cut off from the API server no event arrives: the cache keeps
mapping a freed IP to the pod that had it, and a pod that gets the IP on another
node inherits its rights here. That is the seeds' bug, reproduced on purpose.

Leaves out: egress policy, L7 rules, BPF, identities as numbers, the health and
endpoint APIs. ``/healthz`` on :9879 answers 200 once the first rules are in place.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from kubernetes import client, config, watch

from chaosmesh_sec.lab.standins import l4policy

__all__ = ["main"]

logger = logging.getLogger("chaostoolkit")

HEALTH_PORT = 9879
RETRY_SECONDS = 2.0


class _State:
    """What the agent has seen, and the rules it last installed."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.pods: dict[str, Any] = {}  # uid -> pod, every namespace
        self.ipcache: dict[str, tuple[str, l4policy.Identity]] = {}  # ip -> (uid, identity)
        self.network_policies: dict[str, Any] = {}
        self.cilium_policies: dict[str, Any] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self.installed = ""
        self.synced: set[str] = set()

    def on_pod(self, kind: str, pod: Any) -> None:
        uid, ip = pod["metadata"]["uid"], (pod.get("status") or {}).get("podIP")
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            # A terminating pod's endpoint goes (Cilium drops it when the sandbox is torn
            # down): its late updates must not take back an IP handed to a new pod.
            self.pods.pop(uid, None)
            if ip and self.ipcache.get(ip, ("",))[0] == uid:
                del self.ipcache[ip]
            return
        self.pods[uid] = pod
        if ip and not (pod.get("spec") or {}).get("hostNetwork"):
            meta = pod["metadata"]
            identity = l4policy.Identity(meta["namespace"], dict(meta.get("labels") or {}))
            self.ipcache[ip] = (uid, identity)

    def rules_text(self) -> str:
        local = [
            l4policy.LocalPod(
                p["status"]["podIP"], p["metadata"]["namespace"], p["metadata"].get("labels") or {}
            )
            for p in self.pods.values()
            if (p.get("spec") or {}).get("nodeName") == self.node
            and (p.get("status") or {}).get("podIP")
            and not (p.get("spec") or {}).get("hostNetwork")
        ]
        rules = l4policy.ingress_rules(
            local,
            {ip: identity for ip, (_uid, identity) in self.ipcache.items()},
            list(self.network_policies.values()),
            list(self.cilium_policies.values()),
            namespace_labels=self.namespaces,
        )
        return l4policy.restore_text(rules)


def _install(text: str) -> None:
    subprocess.run(["iptables-restore", "--noflush"], input=text, text=True, check=True)


def _hook() -> None:
    """Create the chain if it is missing (a restart keeps its rules) and jump to it."""
    subprocess.run(
        ["iptables", "-t", "filter", "-N", l4policy.CHAIN], capture_output=True, check=False
    )
    rule = l4policy.hook_rule()
    check = ["iptables", "-t", "filter", "-C", *rule[1:]]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        subprocess.run(["iptables", "-t", "filter", *rule], check=True)


def _watch(
    name: str,
    lister: Callable[..., Any],
    handle: Callable[[str, Any], None],
    state: _State,
    changed: threading.Event,
) -> None:
    """List then watch (as plain dicts) forever; on failure keep what was seen and retry."""
    while True:
        try:
            body = json.loads(lister(_preload_content=False).data)
            with state.lock:
                for item in body.get("items", []):
                    handle("ADDED", item)
                state.synced.add(name)
            changed.set()
            version = body["metadata"]["resourceVersion"]
            for event in watch.Watch().stream(lister, resource_version=version, timeout_seconds=60):
                obj = event["raw_object"]
                with state.lock:
                    handle(event["type"], obj)
                changed.set()
        except Exception as exc:  # noqa: BLE001 - partitioned: keep the last state
            logger.warning("cilium stand-in: %s watch failed (%s); keeping what I saw", name, exc)
            time.sleep(RETRY_SECONDS)


def _keyed(store: dict[str, Any]) -> Callable[[str, Any], None]:
    def handle(kind: str, obj: Any) -> None:
        key = f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
        if kind == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj

    return handle


class _Health(BaseHTTPRequestHandler):
    ready = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" and self.ready.is_set() else 503)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    node = os.environ["K8S_NODE_NAME"]
    config.load_incluster_config()
    core, networking, custom = (
        client.CoreV1Api(),
        client.NetworkingV1Api(),
        client.CustomObjectsApi(),
    )
    state = _State(node)
    changed = threading.Event()

    def on_namespace(kind: str, ns: Any) -> None:
        if kind == "DELETED":
            state.namespaces.pop(ns["metadata"]["name"], None)
        else:
            state.namespaces[ns["metadata"]["name"]] = dict(ns["metadata"].get("labels") or {})

    def cnp_lister(**kw: Any) -> Any:
        return custom.list_cluster_custom_object("cilium.io", "v2", "ciliumnetworkpolicies", **kw)

    watches: list[tuple[str, Callable[..., Any], Callable[[str, Any], None]]] = [
        ("pods", core.list_pod_for_all_namespaces, state.on_pod),
        ("namespaces", core.list_namespace, on_namespace),
        (
            "networkpolicies",
            networking.list_network_policy_for_all_namespaces,
            _keyed(state.network_policies),
        ),
        ("ciliumnetworkpolicies", cnp_lister, _keyed(state.cilium_policies)),
    ]
    for name, lister, handle in watches:
        threading.Thread(
            target=_watch, args=(name, lister, handle, state, changed), name=name, daemon=True
        ).start()
    server = ThreadingHTTPServer(("0.0.0.0", HEALTH_PORT), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stop.set()
        changed.set()

    signal.signal(signal.SIGTERM, on_term)
    _hook()
    while not stop.is_set():
        changed.wait()
        changed.clear()
        time.sleep(0.05)  # let a burst of events land in one program
        with state.lock:
            if len(state.synced) < len(watches):
                continue
            text = state.rules_text()
        if text != state.installed:
            _install(text)
            state.installed = text
            logger.info(
                "cilium stand-in: %d rules, %d IPs cached", text.count("\n-A "), len(state.ipcache)
            )
        _Health.ready.set()
    logger.info("cilium stand-in: stopping; the rules stay, as Cilium's datapath does")


if __name__ == "__main__":
    main()
