"""Kubeconfig files for the lab's users (paths to PKI files; nothing embedded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chaosmesh_sec.lab.pki import CertPair

__all__ = ["render", "write"]


def render(server: str, ca: Path, user: str, creds: CertPair) -> dict[str, Any]:
    """A kubeconfig document for ``user`` authenticating with ``creds`` (pure)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "chaosmesh-lab",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(creds.cert),
                    "client-key": str(creds.key),
                },
            }
        ],
        "contexts": [
            {"name": "chaosmesh-lab", "context": {"cluster": "chaosmesh-lab", "user": user}}
        ],
        "current-context": "chaosmesh-lab",
    }


def write(path: Path, server: str, ca: Path, user: str, creds: CertPair) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(render(server, ca, user, creds), sort_keys=False))
    path.chmod(0o600)
    return path
