"""Debian packages the lab needs on the host, installed when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from chaosmesh_sec.errors import LabError

__all__ = ["REQUIRED", "ensure", "missing"]

REQUIRED: dict[str, str] = {
    # command -> Debian package that provides it
    "iptables": "iptables",
    "iptables-save": "iptables",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "socat": "socat",
    "curl": "curl",
    "ps": "procps",
    # not the lab's: the tests render the HTML report in headless Chromium (tests/browser.py)
    "chromium": "chromium",
}


def missing() -> list[str]:
    """Debian packages whose commands are not on PATH."""
    return sorted({pkg for cmd, pkg in REQUIRED.items() if shutil.which(cmd) is None})


def ensure(progress: Callable[[str], None]) -> None:
    """Install the missing packages with apt-get (the lab runs as root)."""
    packages = missing()
    if not packages:
        return
    if os.geteuid() != 0:
        raise LabError(f"the lab needs root to install {', '.join(packages)}; run it as root")
    if shutil.which("apt-get") is None:
        raise LabError(f"install these packages first (no apt-get here): {', '.join(packages)}")
    progress(f"installing Debian packages: {', '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LabError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-800:]}")
