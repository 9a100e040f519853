"""Services in the lab: what kube-proxy and cluster DNS do, kept by each node agent.

- **ClusterIPs:** nat rules in the node's namespace (chain ``CMSLAB-SERVICES``, jumped
  to from PREROUTING and OUTPUT) DNAT each Service port to one of its Ready
  endpoints, picked at random per connection, as kube-proxy's iptables mode does.
  Pod traffic crosses the node, so every pod behind it is served.
- **Names:** each pod's ``/etc/hosts`` (a file the agent bind-mounts into the
  container's mount namespace) lists every Service as ``name``, ``name.ns``,
  ``name.ns.svc`` and ``name.ns.svc.cluster.local``, instead of a DNS server.

Both are rebuilt from a list of Services and EndpointSlices whenever a watch sees a
change. When the node is cut off from the API server they stay as they were, as
kube-proxy's rules do. Leaves out: NodePorts, session affinity, headless Services,
topology hints, UDP, rejecting connections to a Service without endpoints.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from chaosmesh_sec.lab.hostcmd import run

__all__ = ["CHAIN", "ServiceTable", "hosts_text", "nat_restore_text", "service_table"]

logger = logging.getLogger("chaostoolkit")

CHAIN = "CMSLAB-SERVICES"
DOMAIN = "cluster.local"
ServiceTable = Mapping[tuple[str, str], dict[str, Any]]
"""(namespace, name) -> {"ip": ClusterIP, "ports": [(port, protocol, target)],
"endpoints": [(ip, {port name or number: target port})]}."""


def service_table(services: Iterable[Any], slices: Iterable[Any]) -> dict[tuple[str, str], Any]:
    """Services with a ClusterIP and their Ready endpoints (pure)."""
    table: dict[tuple[str, str], Any] = {}
    for svc in services:
        ip = svc.spec.cluster_ip
        if not ip or ip == "None":
            continue
        ports = [(p.port, p.protocol or "TCP", p.name or "") for p in svc.spec.ports or []]
        table[(svc.metadata.namespace, svc.metadata.name)] = {"ip": ip, "ports": ports, "eps": []}
    for es in slices:
        service = (es.metadata.labels or {}).get("kubernetes.io/service-name", "")
        entry = table.get((es.metadata.namespace, service))
        if entry is None:
            continue
        by_name = {p.name or "": p.port for p in es.ports or []}
        for ep in es.endpoints or []:
            if ep.conditions is not None and ep.conditions.ready is False:
                continue
            for address in ep.addresses or []:
                entry["eps"].append((address, by_name))
    return table


def nat_restore_text(table: ServiceTable, chain: str = CHAIN) -> str:
    """An ``iptables-restore --noflush`` payload replacing ``chain`` (pure, sorted)."""
    lines = ["*nat", f":{chain} - [0:0]"]
    for (namespace, name), svc in sorted(table.items()):
        for port, protocol, port_name in svc["ports"]:
            targets = sorted(
                (ip, by_name[port_name]) for ip, by_name in svc["eps"] if port_name in by_name
            )
            match = f"-A {chain} -d {svc['ip']}/32 -p {protocol.lower()} --dport {port}"
            comment = f'-m comment --comment "{namespace}/{name}:{port}"'
            for i, (ip, target) in enumerate(targets):
                left = len(targets) - i
                pick = (
                    f"-m statistic --mode random --probability {1 / left:.5f} " if left > 1 else ""
                )
                lines.append(f"{match} {comment} {pick}-j DNAT --to-destination {ip}:{target}")
            # no endpoint: no rule (kube-proxy rejects in the filter table; here the
            # connection goes unanswered and times out)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def hosts_text(table: ServiceTable, namespace: str, pod_name: str, pod_ip: str) -> str:
    """The ``/etc/hosts`` of a pod in ``namespace`` (pure)."""
    lines = ["127.0.0.1\tlocalhost", f"{pod_ip}\t{pod_name}"]
    for (ns, name), svc in sorted(table.items()):
        names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{DOMAIN}"]
        if ns == namespace:
            names.insert(0, name)
        lines.append(f"{svc['ip']}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def install_hooks(chain: str = CHAIN) -> None:
    """Create ``chain`` in the node's nat table and jump to it (run once, in the node)."""
    run(["iptables", "-t", "nat", "-N", chain])
    for hook in ("PREROUTING", "OUTPUT"):
        run(["iptables", "-t", "nat", "-I", hook, "-j", chain])


class ServiceProxy:
    """Keeps the node's Service rules and its pods' hosts files current."""

    def __init__(
        self,
        api: client.ApiClient,
        hosts_files: Callable[[], Sequence[tuple[Path, str, str, str]]],
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.hosts_files = hosts_files  # (file, namespace, pod name, pod IP) of each pod
        self.table: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()
        self._last_rules = ""

    def start(self) -> None:
        install_hooks()
        threading.Thread(target=self._loop, name="service-proxy", daemon=True).start()

    def write_hosts(self, path: Path, namespace: str, pod_name: str, pod_ip: str) -> None:
        """Write one pod's hosts file in place (the bind mount follows the inode)."""
        with self.lock:
            text = hosts_text(self.table, namespace, pod_name, pod_ip)
        with path.open("w") as out:
            out.write(text)

    def _sync(self) -> str:
        services = self.core.list_service_for_all_namespaces()
        slices: Any = self.discovery.list_endpoint_slice_for_all_namespaces()
        table = service_table(services.items, slices.items)
        rules = nat_restore_text(table)
        if rules != self._last_rules:
            run(["iptables-restore", "--noflush"], stdin=rules)
            self._last_rules = rules
        with self.lock:
            self.table = table
        for path, namespace, name, ip in self.hosts_files():
            if path.exists():
                self.write_hosts(path, namespace, name, ip)
        return str(slices.metadata.resource_version)

    def _loop(self) -> None:
        while True:
            try:
                version = self._sync()
                stream = watch.Watch().stream(
                    self.discovery.list_endpoint_slice_for_all_namespaces,
                    resource_version=version,
                    timeout_seconds=20,
                )
                for _event in stream:
                    self._sync()
            except Exception as exc:  # noqa: BLE001 - the API may be unreachable (a partition)
                logger.warning("lab service proxy: %s; keeping the last rules", exc)
                time.sleep(2)
