"""Network namespaces for unit tests that run real iptables: commands, a pod's sandbox,
the lab's real ``pilot-agent``.

The namespaces are ``cmstest-<random>``, each with its own veth pair when it holds a
pod IP, and are removed at the end whatever happened. The ``pilot_agent`` fixture
(a plugin of ``tests/conftest.py``) gives the lab's own build of Istio's
``pilot-agent``, whose ``istio-iptables`` installs the capture; tests that ask for
it are skipped when the lab's binaries are not built.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab.build import locate
from chaosmesh_sec.lab.paths import LabPaths

__all__ = [
    "ISTIO_CAPTURE",
    "in_ns",
    "needs_netns",
    "pilot_agent",
    "pod_netns",
    "random_pod_ip",
    "sh",
]

# The ``istio-iptables`` arguments of Istio's sidecar capture with no annotations:
# REDIRECT mode to Envoy's ports, its uid and gid let out, every inbound port but
# Envoy's metrics and readiness and pilot-agent's status captured (what the istio-cni
# plugin and istio-init install; tests that need the capture without an API server).
ISTIO_CAPTURE = (
    *("-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT"),
    *("-i", "*", "-b", "*", "-d", "15090,15021,15020"),
)

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0
    or not all(shutil.which(t) for t in ("ip", "iptables", "iptables-save", "nsenter")),
    reason="needs root, ip, iptables, iptables-save and nsenter (network namespaces)",
)


def sh(
    *cmd: str, check: bool = True, timeout: float = 15, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return done


def in_ns(
    ns: str, *cmd: str, check: bool = True, timeout: float = 15, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout, env=env)


def random_pod_ip() -> str:
    """An address of the benchmarking range (198.18.0.0/15), which no real pod holds."""
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def _wait_inside(holder: subprocess.Popen[bytes], ns: str) -> None:
    """Until ``holder`` is inside ``ns``: a scan of the processes' namespaces (as the
    redirection probe's script makes) finds the namespace only once a process holds it,
    and ``ip netns exec`` enters it some time after Popen returns."""
    want = os.stat(f"/run/netns/{ns}").st_ino
    for _ in range(600):
        if holder.poll() is not None:
            raise AssertionError(f"the holder of {ns} exited ({holder.returncode})")
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino == want:
                return
        time.sleep(0.05)
    raise AssertionError(f"the holder never entered {ns}")


@contextlib.contextmanager
def pod_netns(ip: str = "") -> Iterator[str]:
    """A network namespace held by a process, as a pod's sandbox holds it (``ip``: its IP).

    ``istio-iptables`` needs the IP: it refuses a namespace without a local address
    other than loopback ("no valid local IP address found").
    """
    tag = secrets.token_hex(3)
    ns = f"cmstest-{tag}"
    sh("ip", "netns", "add", ns)
    holder: subprocess.Popen[bytes] | None = None
    try:
        in_ns(ns, "ip", "link", "set", "lo", "up")
        if ip:  # the pod's end of a veth pair; the host's end stays down, without address
            sh("ip", "link", "add", f"cmst{tag}", "type", "veth", "peer", "eth0", "netns", ns)
            in_ns(ns, "ip", "addr", "add", f"{ip}/32", "dev", "eth0")
            in_ns(ns, "ip", "link", "set", "eth0", "up")
        holder = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "3600"])
        _wait_inside(holder, ns)
        yield ns
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        sh("ip", "netns", "delete", ns, check=False)  # takes the veth pair with it


@pytest.fixture(scope="session")
def pilot_agent() -> Path:
    """The lab's build of Istio's pilot-agent (CI builds it before the tests run)."""
    try:
        return locate(LabPaths.default())["pilot-agent"]
    except LabError as exc:
        pytest.skip(f"needs the lab's real pilot-agent; `chaosmesh-sec lab build` builds it: {exc}")
