"""A real 403 from the lab's API server: the exception (and so the journal) carries its
status and reason, never the response's body or headers, nor the caller's token."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from kubernetes import client

from chaosmesh_sec.errors import ApiError
from chaosmesh_sec.probes import control_plane
from tests.identities import service_account


def test_a_forbidden_request_leaks_no_body_header_or_token(
    lab: Path, core: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    with (
        service_account(lab, core, namespace, tmp_path / "kubeconfig") as nobody,
        pytest.raises(ApiError) as info,
    ):
        config = {"kubeconfig_path": str(nobody.kubeconfig)}
        control_plane.istiod_replicas_ready(configuration=config)
    token = nobody.token
    assert info.value.status == 403
    text = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert "403" in text
    # The API server's body names the user and the verb it refused; the headers carry
    # Audit-Id and the like. None of it, and not the token, is in what a journal keeps.
    for leaked in (token, token[-20:], nobody.username, "Audit-Id"):
        assert leaked not in text
