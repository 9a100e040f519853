"""Pods' ``nat`` tables read on their node, and what they say about redirection (pure).

Private to :mod:`chaosmesh_sec.probes.redirection`. The script runs in an
inspection pod (``hostPID``): it finds every network namespace on the node through
``/proc/*/ns/net`` (one process per namespace is enough), asks each for its IPv4
addresses, and dumps the ``nat`` table of those holding one of the wanted pod IPs.
It relies on no container runtime, so it reads the same on any node.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["CHAINS", "JUMPS", "NatView", "dump_script", "parse_dumps"]

CHAINS = ("ISTIO_INBOUND", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_REDIRECT")
JUMPS = (("PREROUTING", "ISTIO_INBOUND"), ("OUTPUT", "ISTIO_OUTPUT"))
MARK, END = "==cms:netns:", "==cms:end"


@dataclass(frozen=True)
class NatView:
    """What one pod's ``nat`` table holds of Istio's capture."""

    chains: tuple[str, ...]
    jumps: tuple[str, ...]
    redirect_ports: tuple[int, ...]

    @property
    def redirected(self) -> bool:
        return set(self.chains) == set(CHAINS) and len(self.jumps) == len(JUMPS)

    def as_dict(self) -> dict[str, object]:
        return {
            "chains": list(self.chains),
            "jumps": list(self.jumps),
            "redirect_ports": list(self.redirect_ports),
            "redirected": self.redirected,
        }


def dump_script(ips: list[str]) -> str:
    """The shell script that prints the nat table of each namespace holding one of ``ips``."""
    wanted = " ".join(str(ipaddress.IPv4Address(ip)) for ip in ips)
    return (
        f'wanted=" {wanted} "; '
        "stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null | awk '!seen[$1]++ {print $2}' | "
        "while read -r ns; do "
        'for ip in $(nsenter --net="$ns" ip -4 -o addr show 2>/dev/null '
        "| awk '{split($4, a, \"/\"); print a[1]}'); do "
        'case "$wanted" in *" $ip "*) '
        f'echo "{MARK}$ip"; nsenter --net="$ns" iptables-save -t nat 2>&1; echo "{END}";; '
        "esac; done; done; true"
    )


def _view(lines: list[str]) -> NatView:
    chains = [c for c in CHAINS if any(line.startswith(f":{c} ") for line in lines)]
    jumps = [
        f"{parent} -> {target}"
        for parent, target in JUMPS
        if any(line.startswith(f"-A {parent} ") and f"-j {target}" in line for line in lines)
    ]
    ports: set[int] = set()
    for line in lines:
        if "--to-ports" in line:
            raw = line.split("--to-ports", 1)[1].split()[0]
            if raw.isdigit():
                ports.add(int(raw))
    return NatView(tuple(chains), tuple(jumps), tuple(sorted(ports)))


def parse_dumps(out: str) -> dict[str, NatView]:
    """Per pod IP, what its nat table holds (IPs not found are absent)."""
    views: dict[str, NatView] = {}
    ip, body = "", list[str]()
    for line in out.splitlines():
        if line.startswith(MARK):
            ip, body = line[len(MARK) :].strip(), []
        elif line == END and ip:
            views[ip] = _view(body)
            ip = ""
        elif ip:
            body.append(line)
    return views
