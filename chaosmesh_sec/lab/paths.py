"""Where the lab keeps its files: a build cache shared by every checkout, and run state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabPaths"]

COMPONENTS_DIR = Path(__file__).resolve().parent / "components"


@dataclass(frozen=True)
class LabPaths:
    """Every path the lab reads or writes.

    ``cache`` survives ``lab down`` (built binaries and their logs; rebuilt only when a
    pin changes). ``state`` is the running lab (PKI, etcd data, kubeconfigs, logs, pod
    directories); ``lab down`` removes it.
    """

    cache: Path
    state: Path

    @classmethod
    def default(cls) -> LabPaths:
        cache = os.environ.get("CHAOSMESH_LAB_CACHE") or str(
            Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "chaosmesh-sec"
        )
        state = os.environ.get("CHAOSMESH_LAB_STATE", "/var/lib/chaosmesh-sec-lab")
        return cls(cache=Path(cache), state=Path(state))

    @property
    def bin_root(self) -> Path:
        return self.cache / "bin"

    @property
    def build_logs(self) -> Path:
        return self.cache / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        """Pid files of the lab's processes."""
        return self.state / "run"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def pods(self) -> Path:
        """Per-pod directories kept by the node agents (logs, tokens, mounts)."""
        return self.state / "pods"

    def node_root(self, node: str) -> Path:
        """A node's own filesystem: where its pods' hostPath volumes live."""
        return self.state / "nodes" / node / "root"

    @property
    def images(self) -> Path:
        """The table of the lab's real images, for the node agents (lab/images.py)."""
        return self.state / "images.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def kubeconfig(self, user: str) -> Path:
        return self.state / "kubeconfigs" / f"{user}.kubeconfig"

    @property
    def audit_policy(self) -> Path:
        """The API server's audit policy (:data:`chaosmesh_sec.lab.controlplane.AUDIT_POLICY`)."""
        return self.state / "audit-policy.yaml"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON event per line, every write request."""
        return self.logs / "kube-apiserver-audit.log"

    def component_log(self, name: str) -> Path:
        return self.logs / f"{name}.log"
