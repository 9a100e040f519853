"""The sidecar stand-in's settings, from its container environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ADMIN_PORT",
    "INBOUND_PORT",
    "OUTBOUND_PORT",
    "READINESS_PORT",
    "SIDECAR_MARK",
    "Settings",
]

OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
ADMIN_PORT = 15000
READINESS_PORT = 15021
STATUS_PORT = 15020
SIDECAR_MARK = 0x539
"""``SO_MARK`` of the stand-in's own upstream sockets: the capture rules let them through."""

ALWAYS_EXCLUDED_INBOUND = (OUTBOUND_PORT, INBOUND_PORT, ADMIN_PORT, STATUS_PORT, READINESS_PORT)


def _ports(name: str, raw: str) -> tuple[int, ...]:
    ports: list[int] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ValueError(f"{name}: {part!r} is not a TCP port")
        if int(part) not in ports:
            ports.append(int(part))
    return tuple(ports)


def _cidrs(name: str, raw: str) -> tuple[str, ...]:
    found: list[str] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        try:
            found.append(str(ipaddress.IPv4Network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not an IPv4 address or CIDR") from None
    return tuple(found)


def _positive(name: str, raw: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise ValueError(f"{name}: {raw!r} is not a positive number of seconds")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Everything the stand-in reads from its environment (see :meth:`from_env`)."""

    token_path: str = "/var/run/secrets/tokens/istio-token"  # noqa: S105 - a path
    root_path: str = "/var/run/secrets/istio/root-cert.pem"
    ca_addr: str = "istiod.istio-system.svc:15012"
    ca_server_name: str = "istiod.istio-system.svc"
    cluster_id: str = "Kubernetes"
    cert_validity_seconds: int = 3600
    trust_domain: str = "cluster.local"
    pod_name: str = ""
    pod_namespace: str = "default"
    root_namespace: str = "istio-system"
    policy_file: str = ""
    exclude_inbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = (15012, 443, 6443)
    exclude_outbound_ip_ranges: tuple[str, ...] = ()
    iptables: str = "iptables"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings; ValueError names the variable that is wrong."""
        base = cls()

        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        return cls(
            token_path=get("ISTIO_TOKEN_PATH", base.token_path),
            root_path=get("ISTIO_ROOT_PATH", base.root_path),
            ca_addr=get("CA_ADDR", base.ca_addr),
            ca_server_name=get("CA_SERVER_NAME", base.ca_server_name),
            cluster_id=get("ISTIO_META_CLUSTER_ID", base.cluster_id),
            cert_validity_seconds=_positive(
                "CERT_VALIDITY_SECONDS", get("CERT_VALIDITY_SECONDS", "3600")
            ),
            trust_domain=get("TRUST_DOMAIN", base.trust_domain),
            pod_name=get("POD_NAME", base.pod_name),
            pod_namespace=get("POD_NAMESPACE", base.pod_namespace),
            policy_file=get("CMSLAB_SIDECAR_POLICY_FILE", ""),
            exclude_inbound_ports=_ports(
                "EXCLUDE_INBOUND_PORTS", env.get("EXCLUDE_INBOUND_PORTS", "")
            ),
            exclude_outbound_ports=_ports(
                "EXCLUDE_OUTBOUND_PORTS", env.get("EXCLUDE_OUTBOUND_PORTS", "15012,443,6443")
            ),
            exclude_outbound_ip_ranges=_cidrs(
                "EXCLUDE_OUTBOUND_IP_RANGES", env.get("EXCLUDE_OUTBOUND_IP_RANGES", "")
            ),
            iptables=get("CMSLAB_SIDECAR_IPTABLES", base.iptables),
        )

    @property
    def inbound_excluded(self) -> tuple[int, ...]:
        """Inbound ports never redirected: the stand-in's own, then the configured ones."""
        extra = tuple(p for p in self.exclude_inbound_ports if p not in ALWAYS_EXCLUDED_INBOUND)
        return ALWAYS_EXCLUDED_INBOUND + extra
