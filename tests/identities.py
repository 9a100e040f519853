"""Acting as someone else against the lab: a ServiceAccount with no rights, its kubeconfig."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client


def kubeconfig_as(lab: Path, token: str, out: Path) -> Path:
    """The lab's cluster (server and CA), as the bearer of ``token``."""
    config = yaml.safe_load(lab.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "nobody", "user": {"token": token}}],
                "contexts": [
                    {"name": "nobody", "context": {"cluster": cluster["name"], "user": "nobody"}}
                ],
                "current-context": "nobody",
            }
        )
    )
    out.chmod(0o600)
    return out


@dataclass(frozen=True)
class Identity:
    username: str
    token: str
    kubeconfig: Path


@contextmanager
def service_account(
    lab: Path, core: client.CoreV1Api, namespace: str, out: Path, prefix: str = "nobody"
) -> Iterator[Identity]:
    """A fresh ServiceAccount (no rights: no binding names it) with a 10-minute token and a
    kubeconfig; deleted afterwards. Its name is unique, so the audit log tells its
    requests from everyone else's."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    try:
        token = core.create_namespaced_service_account_token(
            name,
            namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
            ),
        ).status.token
        yield Identity(
            f"system:serviceaccount:{namespace}:{name}", token, kubeconfig_as(lab, token, out)
        )
    finally:
        core.delete_namespaced_service_account(name, namespace)
