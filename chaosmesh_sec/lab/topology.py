"""The lab's shape: node names, addresses, CIDRs and ports. Pure data, no I/O.

All addresses live on a bridge and in network namespaces the lab creates itself;
nodes and pods have no default route, so nothing the lab runs can send a packet
beyond this machine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["DEFAULT", "Node", "Topology"]

LAB_MARKER_ENV = "CHAOSMESH_LAB"
"""Environment variable set on every process the lab starts; ``lab down`` finds them by it."""


@dataclass(frozen=True)
class Node:
    name: str
    index: int
    ip: str
    pod_cidr: str

    @property
    def netns(self) -> str:
        return f"cmslab-n{self.index}"

    @property
    def host_veth(self) -> str:
        """The bridge side of the node's veth pair."""
        return f"cmslab-n{self.index}h"


@dataclass(frozen=True)
class Topology:
    bridge: str = "cmslab0"
    bridge_cidr: str = "10.77.0.0/24"
    apiserver_ip: str = "10.77.0.1"
    apiserver_port: int = 6443
    etcd_client_port: int = 23791
    etcd_peer_port: int = 23792
    service_cidr: str = "10.96.0.0/16"
    cluster_cidr: str = "10.78.0.0/16"
    kubelet_port: int = 10250
    node_count: int = 3
    nodes: tuple[Node, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.nodes:
            built = tuple(
                Node(
                    name=f"lab-node-{i}",
                    index=i,
                    ip=f"10.77.0.{10 + i}",
                    pod_cidr=f"10.78.{i}.0/24",
                )
                for i in range(1, self.node_count + 1)
            )
            object.__setattr__(self, "nodes", built)

    @property
    def bridge_prefix(self) -> int:
        return ipaddress.ip_network(self.bridge_cidr).prefixlen

    @property
    def kubernetes_service_ip(self) -> str:
        """The ``kubernetes`` Service ClusterIP: the first address of the service CIDR."""
        return str(ipaddress.ip_network(self.service_cidr).network_address + 1)

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.apiserver_ip}:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_client_port}"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def host_ports(self) -> tuple[int, ...]:
        """TCP ports the lab binds in the host namespace (checked free before ``up``)."""
        return (
            self.apiserver_port,
            self.etcd_client_port,
            self.etcd_peer_port,
            10257,  # kube-controller-manager secure port
            10259,  # kube-scheduler secure port
        )


DEFAULT = Topology()
