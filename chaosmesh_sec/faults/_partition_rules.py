"""Pure builders for the node <-> API server partition: the rules and the fault pod's script.

Private to :mod:`chaosmesh_sec.faults` (not an activity module). No I/O here. The
script runs in a privileged hostNetwork pod on the target node; it installs DROP rules
in chains of its own (mangle table, tagged with the run id), removes them when its
duration ends or when it is told to stop (SIGTERM: pod deletion), and the same removal
is what the rollback runs through ``exec``.
"""

import ipaddress
import re
import shlex
import uuid
from dataclasses import dataclass

__all__ = [
    "RUN_ID",
    "SCOPES",
    "Endpoint",
    "PartitionPlan",
    "is_run_id",
    "new_run_id",
    "plan",
    "removal_script",
    "verify_script",
]

RUN_ID = re.compile(r"[0-9a-f]{8}")
"""A partition's run id: 8 lowercase hex digits (what :func:`new_run_id` makes)."""

SCOPES = ("host", "pods", "node")
"""``host``: the node's own traffic (kubelet, hostNetwork agents) - mangle OUTPUT/INPUT.
``pods``: traffic of pods behind the node - mangle FORWARD, both directions.
``node``: both: everything on the node loses the API server, as in the seeds."""

APPLIED_MARK = "chaosmesh-sec: partition applied"
HEALED_MARK = "chaosmesh-sec: partition removed"


@dataclass(frozen=True)
class Endpoint:
    """One address of the API server, and the TCP port it serves on there (0: all ports)."""

    ip: str
    port: int

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.ip)  # raises ValueError on a bad address


@dataclass(frozen=True)
class PartitionPlan:
    run_id: str
    scope: str
    endpoints: tuple[Endpoint, ...]
    duration_seconds: int

    @property
    def chain_out(self) -> str:
        return f"CMS-{self.run_id}-OUT"

    @property
    def chain_in(self) -> str:
        return f"CMS-{self.run_id}-IN"

    @property
    def comment(self) -> str:
        return f"chaosmesh-sec partition {self.run_id}"

    def _hooks(self) -> tuple[tuple[str, str], ...]:
        """(built-in chain, our chain) pairs: where our chains are jumped to from."""
        host = (("OUTPUT", self.chain_out), ("INPUT", self.chain_in))
        pods = (("FORWARD", self.chain_out), ("FORWARD", self.chain_in))
        return {"host": host, "pods": pods, "node": host + pods}[self.scope]

    def _drops(self) -> list[list[str]]:
        rules: list[list[str]] = []
        for ep in self.endpoints:
            to_server = ["-A", self.chain_out, "-d", f"{ep.ip}/32", "-p", "tcp"]
            from_server = ["-A", self.chain_in, "-s", f"{ep.ip}/32", "-p", "tcp"]
            if ep.port:
                to_server += ["--dport", str(ep.port)]
                from_server += ["--sport", str(ep.port)]
            rules += [[*to_server, "-j", "DROP"], [*from_server, "-j", "DROP"]]
        return rules

    def _jump(self, op: str, hook: str, chain: str) -> list[str]:
        return [op, hook, "-m", "comment", "--comment", self.comment, "-j", chain]

    def apply_commands(self) -> list[list[str]]:
        """iptables argument lists (after ``iptables -t mangle``) that install the partition."""
        cmds = [["-N", self.chain_out], ["-N", self.chain_in], *self._drops()]
        cmds += [self._jump("-I", hook, chain) for hook, chain in self._hooks()]
        return cmds

    def remove_commands(self) -> list[list[str]]:
        """The exact inverse of :meth:`apply_commands` (jumps first, then the chains)."""
        cmds = [self._jump("-D", hook, chain) for hook, chain in self._hooks()]
        for chain in (self.chain_out, self.chain_in):
            cmds += [["-F", chain], ["-X", chain]]
        return cmds

    def remove_script(self) -> str:
        """Shell that removes the rules (each step tolerated: it may run twice)."""
        lines = [
            f"iptables -t mangle {shlex.join(c)} 2>/dev/null || true"
            for c in self.remove_commands()
        ]
        lines.append(f"echo {shlex.quote(HEALED_MARK)}")
        return "\n".join(lines)

    def pod_script(self) -> str:
        """The fault pod's command: apply, wait out the duration, remove - also on SIGTERM."""
        apply = "\n".join(f"iptables -t mangle {shlex.join(c)}" for c in self.apply_commands())
        return "\n".join(
            [
                "set -u",
                "heal() {",
                self.remove_script(),
                "}",
                "trap 'heal; exit 0' TERM INT",
                "if ! (set -e",
                apply,
                "); then heal; echo 'chaosmesh-sec: could not apply the partition' >&2; exit 1; fi",
                f"echo {shlex.quote(APPLIED_MARK)}",
                f"sleep {self.duration_seconds} &",
                "wait $!",
                "heal",
            ]
        )


def is_run_id(value: object) -> bool:
    """Whether ``value`` is a run id this pack makes (8 lowercase hex digits)."""
    return isinstance(value, str) and RUN_ID.fullmatch(value) is not None


def new_run_id() -> str:
    """A fresh run id (8 hex digits of a random UUID)."""
    return uuid.uuid4().hex[:8]


def _checked(run_id: str) -> str:
    if not is_run_id(run_id):
        raise ValueError(f"{run_id!r} is not a partition run id (8 hex digits)")
    return run_id


def removal_script(run_id: str) -> str:
    """Shell that removes every rule and chain a partition of ``run_id`` can have installed.

    Built from the run id alone (never read from the cluster): the jumps of every scope,
    then the chains; each step tolerated, so a jump the partition's scope never made is
    skipped. The chains are all it needs: the DROP rules go with them.
    """
    return PartitionPlan(_checked(run_id), "node", (), 0).remove_script()


def verify_script(run_id: str) -> str:
    """Shell that prints how many rules or chains of ``run_id`` remain (0 when healed)."""
    return f"iptables-save -t mangle | grep -c -- {shlex.quote('CMS-' + _checked(run_id))} || true"


def plan(
    run_id: str, scope: str, endpoints: list[Endpoint], duration_seconds: int
) -> PartitionPlan:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    if not endpoints:
        raise ValueError("no API server address to cut")
    ipv6 = [e.ip for e in endpoints if ipaddress.ip_address(e.ip).version != 4]
    if ipv6:
        raise ValueError(f"IPv6 addresses {ipv6} cannot be cut: the rules are iptables (IPv4)")
    unique = tuple(dict.fromkeys(endpoints))
    return PartitionPlan(run_id, scope, unique, duration_seconds)
