"""The lab's processes: started detached with a marker, found again by that marker.

Every process the lab starts (and every child of those) carries
``CHAOSMESH_LAB=<state dir>`` in its environment, so ``lab down`` finds them all in
/proc, whoever started them and whatever happened to their pid files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from chaosmesh_sec.lab.topology import LAB_MARKER_ENV

__all__ = ["lab_pids", "pid_alive", "start", "stop_all"]

logger = logging.getLogger("chaostoolkit")


def start(
    name: str,
    cmd: Sequence[str],
    *,
    log: Path,
    pidfile: Path,
    marker: str,
    netns: str = "",
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``cmd`` in its own session, output to ``log``; return its pid."""
    # nsenter, not `ip netns exec`: that would also give the process a mount namespace
    # of its own, and pod namespaces the node agent names must be visible to all. It is
    # resolved with this process's PATH, since ``env`` may put the exec shims first.
    nsenter = shutil.which("nsenter") or "nsenter"
    full = [nsenter, f"--net=/run/netns/{netns}", "--", *cmd] if netns else list(cmd)
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ)
    environ.update(env or {})
    environ[LAB_MARKER_ENV] = marker
    with log.open("ab") as out:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=cwd,
            start_new_session=True,
        )
    pidfile.write_text(str(proc.pid))
    logger.debug("lab: started %s (pid %d): %s", name, proc.pid, " ".join(full))
    return proc.pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def lab_pids(marker: str) -> list[int]:
    """Pids of live processes carrying the lab's marker."""
    needle = f"{LAB_MARKER_ENV}={marker}".encode()
    me = os.getpid()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def stop_all(marker: str, grace: float = 5.0) -> list[int]:
    """SIGTERM every lab process, SIGKILL what is left after ``grace`` seconds."""
    pids = lab_pids(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in lab_pids(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and lab_pids(marker):
        time.sleep(0.1)
    return pids
