"""Traffic capture: the pod's ``nat`` rules that send its TCP through the stand-in.

What ``istio-iptables`` (the ``istio-init`` container) installs, reduced to what the
lab needs, in chains of the same names:

- ``PREROUTING -> ISTIO_INBOUND``: inbound TCP, except to the sidecar's own ports
  (15001, 15006, 15000, 15020, 15021) and ``EXCLUDE_INBOUND_PORTS``, jumps to
  ``ISTIO_IN_REDIRECT``, which redirects it to the inbound listener (15006);
- ``OUTPUT -> ISTIO_OUTPUT``: TCP the pod sends, except the stand-in's own
  (``SO_MARK`` :data:`~.config.SIDECAR_MARK`), to ``127.0.0.1/32``, to
  ``EXCLUDE_OUTBOUND_PORTS`` (default 15012, 443, 6443: istiod's CA and the API
  server stay reachable directly) and to ``EXCLUDE_OUTBOUND_IP_RANGES``, jumps to
  ``ISTIO_REDIRECT``, which redirects it to the outbound listener (15001).

Istio lets Envoy's own traffic out by its uid (``-m owner --uid-owner 1337``). Every
container of a lab pod runs as root, so a uid says nothing about which process
sent a packet: the stand-in marks its upstream sockets instead and the rules let
that mark through. What is left out: IPv6 (``ip6tables``), the ``mangle``/TPROXY
mode, the loopback rules for a pod calling itself through its own Service, DNS
capture, and ``--uid-owner``/``--gid-owner`` exclusions.

Installing is idempotent: existing jumps and chains of these names are removed
first, and the jumps from ``PREROUTING``/``OUTPUT`` are added last, so nothing is
redirected through a half-built chain.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence

from chaosmesh_sec.lab.standins.sidecar.config import (
    INBOUND_PORT,
    OUTBOUND_PORT,
    SIDECAR_MARK,
    Settings,
)

__all__ = [
    "CHAINS",
    "JUMPS",
    "Runner",
    "install",
    "install_commands",
    "remove",
    "subprocess_runner",
]

logger = logging.getLogger("chaostoolkit")

INBOUND, IN_REDIRECT, OUTPUT, REDIRECT = (
    "ISTIO_INBOUND",
    "ISTIO_IN_REDIRECT",
    "ISTIO_OUTPUT",
    "ISTIO_REDIRECT",
)
CHAINS = (INBOUND, IN_REDIRECT, OUTPUT, REDIRECT)
JUMPS = (
    ("PREROUTING", ["-p", "tcp", "-j", INBOUND]),
    ("OUTPUT", ["-p", "tcp", "-j", OUTPUT]),
)

Runner = Callable[[Sequence[str]], tuple[int, str]]
"""Runs one iptables command (argv after the binary); returns exit code and stderr."""


def subprocess_runner(binary: str = "iptables") -> Runner:
    def run(args: Sequence[str]) -> tuple[int, str]:
        done = subprocess.run(
            [binary, "-w", "5", *args], capture_output=True, text=True, check=False
        )
        return done.returncode, done.stderr.strip()

    return run


def install_commands(settings: Settings) -> list[list[str]]:
    """The ``iptables -t nat`` commands, in order, once nothing of ours is present."""
    nat = ["-t", "nat"]
    cmds: list[list[str]] = [[*nat, "-N", chain] for chain in CHAINS]
    for chain, port in ((IN_REDIRECT, INBOUND_PORT), (REDIRECT, OUTBOUND_PORT)):
        cmds.append([*nat, "-A", chain, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(port)])
    for port in settings.inbound_excluded:
        cmds.append([*nat, "-A", INBOUND, "-p", "tcp", "--dport", str(port), "-j", "RETURN"])
    cmds.append([*nat, "-A", INBOUND, "-p", "tcp", "-j", IN_REDIRECT])
    cmds.append([*nat, "-A", OUTPUT, "-m", "mark", "--mark", hex(SIDECAR_MARK), "-j", "RETURN"])
    cmds.append([*nat, "-A", OUTPUT, "-d", "127.0.0.1/32", "-j", "RETURN"])
    for port in settings.exclude_outbound_ports:
        cmds.append([*nat, "-A", OUTPUT, "-p", "tcp", "--dport", str(port), "-j", "RETURN"])
    for cidr in settings.exclude_outbound_ip_ranges:
        cmds.append([*nat, "-A", OUTPUT, "-d", cidr, "-j", "RETURN"])
    cmds.append([*nat, "-A", OUTPUT, "-p", "tcp", "-j", REDIRECT])
    for parent, spec in JUMPS:
        cmds.append([*nat, "-A", parent, *spec])
    return cmds


def remove(run: Runner) -> None:
    """Remove the jumps (every copy) and the chains; what is absent is skipped."""
    for parent, spec in JUMPS:
        for _ in range(32):  # bounded: each pass removes one copy
            code, _err = run(["-t", "nat", "-D", parent, *spec])
            if code != 0:
                break
    for chain in CHAINS:
        run(["-t", "nat", "-F", chain])
    for chain in CHAINS:
        run(["-t", "nat", "-X", chain])


def install(settings: Settings, run: Runner) -> None:
    """Install the capture rules afresh; RuntimeError (with iptables' words) on failure."""
    remove(run)
    for cmd in install_commands(settings):
        code, err = run(cmd)
        if code != 0:
            remove(run)
            raise RuntimeError(f"`iptables {' '.join(cmd)}` failed (exit {code}): {err}")
    logger.info(
        "sidecar: capture installed: inbound TCP -> :%d (except %s), outbound TCP -> :%d "
        "(except mark %s, 127.0.0.1, ports %s%s)",
        INBOUND_PORT,
        ",".join(map(str, settings.inbound_excluded)),
        OUTBOUND_PORT,
        hex(SIDECAR_MARK),
        ",".join(map(str, settings.exclude_outbound_ports)) or "none",
        f", ranges {','.join(settings.exclude_outbound_ip_ranges)}"
        if settings.exclude_outbound_ip_ranges
        else "",
    )
