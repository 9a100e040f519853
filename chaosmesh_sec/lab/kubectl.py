"""The lab's own kubectl, as the lab admin: for bootstrap only (the pack uses the API)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab.build import Binaries
from chaosmesh_sec.lab.paths import LabPaths

__all__ = ["Kubectl"]


@dataclass(frozen=True)
class Kubectl:
    paths: LabPaths
    bins: Binaries

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        cmd = [str(self.bins["kubectl"]), f"--kubeconfig={self.paths.admin_kubeconfig}", *args]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LabError(f"`kubectl {' '.join(args)}` failed: {done.stderr.strip()}")
        return done.stdout
