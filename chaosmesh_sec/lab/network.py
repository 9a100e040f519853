"""Nodes as network namespaces on a bridge, and pods as namespaces behind their node.

The host side of the bridge carries the API server's address. Nodes route each
other's pod CIDRs and nothing else: there is no default route out of a node, so
lab traffic cannot leave the machine. Each node DNATs the ``kubernetes`` Service
ClusterIP to the API server (what kube-proxy would do), so in-cluster clients work.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from chaosmesh_sec.lab.hostcmd import run, run_ok
from chaosmesh_sec.lab.topology import Node, Topology

__all__ = [
    "create_pod_netns",
    "delete_pod_netns",
    "lab_netns",
    "pod_netns_name",
    "readdress_pod_netns",
    "setup",
    "teardown",
]

logger = logging.getLogger("chaostoolkit")

NETNS_PREFIX = "cmslab-"
POD_NETNS_PREFIX = "cmslab-p-"
POD_GATEWAY = "169.254.1.1"
"""Every pod's next hop: held by the node side of each pod's veth pair."""


def lab_netns() -> list[str]:
    """Every network namespace the lab created (nodes and pods)."""
    netns_dir = Path("/run/netns")
    if not netns_dir.is_dir():
        return []
    return sorted(p.name for p in netns_dir.iterdir() if p.name.startswith(NETNS_PREFIX))


def _setup_node(topo: Topology, node: Node) -> None:
    ns = node.netns
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", node.host_veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", node.host_veth, "master", topo.bridge, "up"])
    run(["ip", "link", "set", "lo", "up"], netns=ns)
    run(["ip", "addr", "add", f"{node.ip}/{topo.bridge_prefix}", "dev", "eth0"], netns=ns)
    run(["ip", "link", "set", "eth0", "up"], netns=ns)
    run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=ns)
    for other in topo.nodes:
        if other.name != node.name:
            run(["ip", "route", "add", other.pod_cidr, "via", other.ip], netns=ns)
    # Service ClusterIPs route towards the host, which forwards nothing: only what the
    # DNAT below rewrites (the kubernetes Service -> API server) gets anywhere.
    run(["ip", "route", "add", topo.service_cidr, "via", topo.apiserver_ip], netns=ns)
    dnat = [
        "-d",
        f"{topo.kubernetes_service_ip}/32",
        "-p",
        "tcp",
        "--dport",
        "443",
        "-j",
        "DNAT",
        "--to-destination",
        f"{topo.apiserver_ip}:{topo.apiserver_port}",
    ]
    # Load the tables a fault may touch, so iptables-save lists them from the start
    # (a table appears in it once used): before/after comparisons then compare rules.
    for table in ("filter", "mangle"):
        run(["iptables", "-t", table, "-N", "CMSLAB-PRELOAD"], netns=ns)
        run(["iptables", "-t", table, "-X", "CMSLAB-PRELOAD"], netns=ns)
    run(["iptables", "-t", "nat", "-A", "OUTPUT", *dnat], netns=ns)
    run(["iptables", "-t", "nat", "-A", "PREROUTING", *dnat], netns=ns)


def setup(topo: Topology) -> None:
    """Create the bridge and one namespace per node."""
    run(["ip", "link", "add", topo.bridge, "type", "bridge"])
    run(["ip", "addr", "add", f"{topo.apiserver_ip}/{topo.bridge_prefix}", "dev", topo.bridge])
    run(["ip", "link", "set", topo.bridge, "up"])
    for node in topo.nodes:
        _setup_node(topo, node)
        run(["ip", "route", "add", node.pod_cidr, "via", node.ip])
    logger.info("lab network up: bridge %s, %d nodes", topo.bridge, len(topo.nodes))


def teardown(topo: Topology) -> list[str]:
    """Remove every lab namespace and the bridge; return what was removed."""
    removed: list[str] = []
    for ns in lab_netns():
        if run_ok(["ip", "netns", "delete", ns]):
            removed.append(f"netns {ns}")
    if Path(f"/sys/class/net/{topo.bridge}").exists() and run_ok(
        ["ip", "link", "delete", topo.bridge]
    ):
        removed.append(f"bridge {topo.bridge}")
    for link in Path("/sys/class/net").iterdir():
        if link.name.startswith(NETNS_PREFIX) and run_ok(["ip", "link", "delete", link.name]):
            removed.append(f"link {link.name}")
    return removed


def pod_netns_name(pod_uid: str) -> str:
    return POD_NETNS_PREFIX + re.sub(r"[^0-9a-f]", "", pod_uid.lower())[:12]


def _pod_veth(pod_uid: str) -> str:
    return "cmsp" + re.sub(r"[^0-9a-f]", "", pod_uid.lower())[:10]


def create_pod_netns(node: Node, pod_uid: str, pod_ip: str) -> str:
    """Give a pod its own namespace behind ``node`` (run inside the node namespace)."""
    ns = pod_netns_name(pod_uid)
    veth = _pod_veth(pod_uid)
    if Path("/run/netns", ns).exists():
        return ns
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "addr", "add", f"{POD_GATEWAY}/32", "dev", veth])
    run(["ip", "link", "set", veth, "up"])
    run(["ip", "route", "add", f"{pod_ip}/32", "dev", veth])
    run(["ip", "link", "set", "lo", "up"], netns=ns)
    run(["ip", "addr", "add", f"{pod_ip}/32", "dev", "eth0"], netns=ns)
    run(["ip", "link", "set", "eth0", "up"], netns=ns)
    run(["ip", "route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link"], netns=ns)
    run(["ip", "route", "add", "default", "via", POD_GATEWAY, "dev", "eth0"], netns=ns)
    logger.debug("pod netns %s (%s) on %s", ns, pod_ip, node.name)
    return ns


def readdress_pod_netns(pod_uid: str, old_ip: str, new_ip: str) -> None:
    """Move a pod's namespace to the IP its status now gives (run inside the node).

    kwok may give a pod another IP after the agent set it up (it retries its status
    update with a fresh address when the first one conflicted).
    """
    ns, veth = pod_netns_name(pod_uid), _pod_veth(pod_uid)
    run_ok(["ip", "route", "del", f"{old_ip}/32", "dev", veth])
    run(["ip", "route", "replace", f"{new_ip}/32", "dev", veth])
    run_ok(["ip", "addr", "del", f"{old_ip}/32", "dev", "eth0"], netns=ns)
    run(["ip", "addr", "add", f"{new_ip}/32", "dev", "eth0"], netns=ns)
    logger.info("pod netns %s moved from %s to %s", ns, old_ip, new_ip)


def delete_pod_netns(pod_uid: str) -> None:
    run_ok(["ip", "link", "delete", _pod_veth(pod_uid)])
    run_ok(["ip", "netns", "delete", pod_netns_name(pod_uid)])
