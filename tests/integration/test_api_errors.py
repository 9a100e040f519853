"""A real 403 from the lab's API server: the exception (and so the journal) carries its
status and reason, never the response's body or headers, nor the caller's token."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec.errors import ApiError
from chaosmesh_sec.probes import control_plane


def _kubeconfig_as(lab: Path, token: str, out: Path) -> Path:
    """The lab's cluster (server and CA), as a ServiceAccount with no rights."""
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
    return out


def test_a_forbidden_request_leaks_no_body_header_or_token(
    lab: Path, core: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token
    kubeconfig = _kubeconfig_as(lab, token, tmp_path / "kubeconfig")
    with pytest.raises(ApiError) as info:
        control_plane.istiod_replicas_ready(configuration={"kubeconfig_path": str(kubeconfig)})
    assert info.value.status == 403
    text = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert "403" in text
    # The API server's body names the user and the verb it refused; the headers carry
    # Audit-Id and the like. None of it, and not the token, is in what a journal keeps.
    for leaked in (token, token[-20:], f"system:serviceaccount:{namespace}:nobody", "Audit-Id"):
        assert leaked not in text
