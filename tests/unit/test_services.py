"""The lab's Service emulation, pure parts: the table, the nat rules, the hosts file."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

from chaosmesh_sec.lab.agent.services import hosts_text, nat_restore_text, service_table


def _svc(ns: str, name: str, ip: str, ports: list[tuple[int, str]]) -> Any:
    return NS(
        metadata=NS(namespace=ns, name=name),
        spec=NS(cluster_ip=ip, ports=[NS(port=p, protocol="TCP", name=n) for p, n in ports]),
    )


def _slice(ns: str, svc: str, ports: list[tuple[str, int]], eps: list[tuple[str, bool]]) -> Any:
    return NS(
        metadata=NS(namespace=ns, labels={"kubernetes.io/service-name": svc}),
        ports=[NS(name=n, port=p) for n, p in ports],
        endpoints=[NS(addresses=[ip], conditions=NS(ready=ready)) for ip, ready in eps],
    )


SERVICES = [
    _svc("default", "helloworld-v1", "10.96.0.10", [(5000, "http")]),
    _svc("default", "headless", "None", [(80, "http")]),
    _svc("other", "api", "10.96.0.20", [(443, "https")]),
]
SLICES = [
    _slice(
        "default", "helloworld-v1", [("http", 5000)], [("10.78.1.1", True), ("10.78.2.1", True)]
    ),
    _slice("default", "helloworld-v1", [("http", 5000)], [("10.78.3.1", False)]),
    _slice("other", "api", [("https", 8443)], [("10.78.1.9", True)]),
]


def test_the_table_keeps_ready_endpoints_of_clusterip_services() -> None:
    table = service_table(SERVICES, SLICES)
    assert set(table) == {("default", "helloworld-v1"), ("other", "api")}
    eps = [ip for ip, _ in table[("default", "helloworld-v1")]["eps"]]
    assert eps == ["10.78.1.1", "10.78.2.1"]


def test_nat_rules_spread_connections_and_map_target_ports() -> None:
    text = nat_restore_text(service_table(SERVICES, SLICES))
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[1] == ":CMSLAB-SERVICES - [0:0]" and lines[-1] == "COMMIT"
    hw = [ln for ln in lines if "10.96.0.10/32" in ln]
    assert len(hw) == 2
    assert "--probability 0.50000" in hw[0] and "--to-destination 10.78.1.1:5000" in hw[0]
    assert "statistic" not in hw[1] and "--to-destination 10.78.2.1:5000" in hw[1]
    [api] = [ln for ln in lines if "10.96.0.20/32" in ln]
    assert "--dport 443" in api and "--to-destination 10.78.1.9:8443" in api
    assert text == nat_restore_text(service_table(SERVICES, list(reversed(SLICES))))


def test_hosts_file_names_services_short_in_the_pods_namespace() -> None:
    text = hosts_text(service_table(SERVICES, SLICES), "default", "sleep-1", "10.78.1.5")
    lines = text.splitlines()
    assert lines[:2] == ["127.0.0.1\tlocalhost", "10.78.1.5\tsleep-1"]
    assert (
        "10.96.0.10\thelloworld-v1 helloworld-v1.default helloworld-v1.default.svc "
        "helloworld-v1.default.svc.cluster.local"
    ) in lines
    assert "10.96.0.20\tapi.other api.other.svc api.other.svc.cluster.local" in lines
