"""Run a host command; failures become LabError with the command and its stderr."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from chaosmesh_sec.errors import LabError

__all__ = ["run", "run_ok"]

logger = logging.getLogger("chaostoolkit")


def run(cmd: Sequence[str], *, netns: str = "", stdin: str | None = None) -> str:
    """Run ``cmd`` (inside network namespace ``netns`` if given); return stdout."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    logger.debug("lab: %s", " ".join(full))
    done = subprocess.run(full, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"`{' '.join(full)}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def run_ok(cmd: Sequence[str], *, netns: str = "") -> bool:
    """Run ``cmd`` for its side effect; True when it succeeded (teardown paths)."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    done = subprocess.run(full, capture_output=True, text=True, check=False)
    return done.returncode == 0
