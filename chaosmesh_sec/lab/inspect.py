"""Read-only views of the running lab from this machine (for ``lab status`` and tests)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_sec.lab.hostcmd import run
from chaosmesh_sec.lab.procs import pid_alive

__all__ = ["ContainerProc", "container_processes", "iptables_save", "netns_of"]

_COUNTERS = re.compile(r"\[\d+:\d+\]")


@dataclass(frozen=True)
class ContainerProc:
    pid: int
    pod_uid: str
    container: str
    netns_inode: int
    argv0: str


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


SANDBOX = "POD"
"""``CMSLAB_CONTAINER`` of a pod's sandbox process (its "pause", holding the netns)."""


def container_processes(pod_uid: str = "", sandboxes: bool = False) -> list[ContainerProc]:
    """Live processes the node agents run for pods' containers (optionally one pod's);
    with ``sandboxes``, the pods' sandbox processes too."""
    found: list[ContainerProc] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            env = _environ(pid)
            uid = env.get("CMSLAB_POD_UID", "")
            if not uid or (pod_uid and uid != pod_uid) or not pid_alive(pid):
                continue
            inode = os.stat(f"/proc/{pid}/ns/net").st_ino
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        container = env.get("CMSLAB_CONTAINER", "")
        if container == SANDBOX and not sandboxes:
            continue
        found.append(ContainerProc(pid, uid, container, inode, argv0))
    return found


def netns_of(name: str) -> int:
    """The inode of the named network namespace (compare with ContainerProc.netns_inode)."""
    return os.stat(f"/run/netns/{name}").st_ino


def iptables_save(netns: str) -> str:
    """``iptables-save`` of a lab namespace, without its volatile comments and counters."""
    out = run(["iptables-save"], netns=netns)
    lines = (_COUNTERS.sub("[0:0]", line) for line in out.splitlines())
    return "\n".join(line for line in lines if not line.startswith("#")) + "\n"


def http_status_from(netns: str, url: str, timeout: float = 2.0) -> str:
    """The HTTP status curl gets for ``url`` from inside ``netns`` ("000": no connection)."""
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "curl",
            "-sk",
            "--max-time",
            str(timeout),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout or "000"
