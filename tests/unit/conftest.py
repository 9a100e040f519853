"""Unit tests: no cluster, no root, no network.

Every test under this folder is marked ``unit``. Where a test needs to show that
code stops *before* talking to Kubernetes, the ``no_cluster`` fixture replaces
the pack's one client factory and the client's request method with functions
that fail the test if called: the fake stops there, and nothing else is faked.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

import chaosmesh_sec.client


@pytest.hookimpl(tryfirst=True)  # before `-m unit` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make any attempt to build a client or send an API request fail the test."""

    def _refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the Kubernetes API was reached; input validation should have stopped first")

    monkeypatch.setattr(chaosmesh_sec.client, "api_client", _refuse)
    monkeypatch.setattr(k8s.ApiClient, "call_api", _refuse)
    yield


@pytest.fixture
def clean_kube_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KUBECONFIG, a HOME without ~/.kube/config, and not in a pod."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path
