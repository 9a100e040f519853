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
node inherits its rights here. That is the seeds' bug, reproduced on purpose. Once
the node hears from the API server again, its watches resume from where they were
and the missed events land (see ``_watch``).

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
CONNECT_TIMEOUT = 3.0
READ_IDLE = 5.0  # seconds a watch may hear nothing before it counts as broken


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
    """List, then watch from the list's resourceVersion (as plain dicts), forever.

    As client-go's reflector: a watch that breaks is reopened from the last version
    it saw, so the events missed meanwhile still arrive; a list happens again only
    when that version is gone (410), and replaces what was seen. A watch that hears
    nothing for ``READ_IDLE`` seconds counts as broken (client-go's HTTP/2 health
    check finds a dead connection after 30 s idle plus a 15 s ping; the lab checks
    sooner so that its short faults heal within an experiment's settle time). While
    the node is cut off nothing can be reopened: the last state is kept.
    """
    version = ""  # none yet: list first
    seen: dict[str, Any] = {}  # namespace/name -> the object as last seen
    while True:
        try:
            if not version:
                body = json.loads(lister(_preload_content=False).data)
                listed = {_key(item): item for item in body.get("items", [])}
                with state.lock:
                    for key in set(seen) - set(listed):
                        handle("DELETED", seen[key])
                    for item in listed.values():
                        handle("ADDED", item)
                    state.synced.add(name)
                seen = listed
                changed.set()
                version = body["metadata"]["resourceVersion"]
            stream = watch.Watch().stream(
                lister,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=60,
                _request_timeout=(CONNECT_TIMEOUT, READ_IDLE),
            )
            for event in stream:
                obj = event["raw_object"]
                version = obj["metadata"].get("resourceVersion") or version
                if event["type"] == "BOOKMARK":
                    continue
                if event["type"] == "DELETED":
                    seen.pop(_key(obj), None)
                else:
                    seen[_key(obj)] = obj
                with state.lock:
                    handle(event["type"], obj)
                changed.set()
        except client.ApiException as exc:
            if exc.status == 410:  # too old: list again
                version = ""
                continue
            logger.warning("cilium stand-in: %s watch failed (%s); keeping what I saw", name, exc)
            time.sleep(RETRY_SECONDS)
        except Exception as exc:  # noqa: BLE001 - partitioned, or a quiet watch: keep the state
            quiet = "timed out" in str(exc)
            (logger.debug if quiet else logger.warning)(
                "cilium stand-in: %s watch broke (%s); reopening it", name, exc
            )
            if not quiet:
                time.sleep(RETRY_SECONDS)


def _key(obj: Any) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def _keyed(store: dict[str, Any]) -> Callable[[str, Any], None]:
    def handle(kind: str, obj: Any) -> None:
        key = _key(obj)
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
