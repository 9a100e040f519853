"""client.py error paths. No cluster is involved: every case fails before a request."""

import json
from pathlib import Path

import pytest

from chaosmesh_sec import client
from chaosmesh_sec.errors import ClusterUnreachable, InvalidInput


def _kubeconfig(path: Path, *, insecure: bool = False) -> Path:
    cluster: dict[str, object] = {"server": "https://127.0.0.1:6443"}
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_missing_kubeconfig_path_in_configuration_is_invalid_input(clean_kube_env: Path) -> None:
    missing = clean_kube_env / "nope" / "kubeconfig"
    with pytest.raises(InvalidInput) as info:
        client.api_client({"kubeconfig_path": str(missing)}, None)
    assert info.value.name == "configuration.kubeconfig_path"
    assert str(missing) in str(info.value)


def test_secrets_take_precedence_over_configuration(clean_kube_env: Path) -> None:
    good = _kubeconfig(clean_kube_env / "good")
    with pytest.raises(InvalidInput) as info:
        client.api_client({"kubeconfig_path": str(good)}, {"kubeconfig_path": "/no/such/file"})
    assert info.value.name == "secrets.kubeconfig_path"
    assert "/no/such/file" in str(info.value)


def test_missing_kubeconfig_env_is_invalid_input(
    clean_kube_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(clean_kube_env / "absent"))
    with pytest.raises(InvalidInput) as info:
        client.api_client(None, None)
    assert info.value.name == "KUBECONFIG"
    assert "absent" in str(info.value)


def test_non_string_kubeconfig_path_is_invalid_input(clean_kube_env: Path) -> None:
    with pytest.raises(InvalidInput, match=r"configuration\.kubeconfig_path.*string"):
        client.api_client({"kubeconfig_path": 42}, None)


@pytest.mark.parametrize(
    "content", ["this: [is not yaml", "- a list, not a kubeconfig", "clusters: 3", ""]
)
def test_garbage_kubeconfig_is_invalid_input_naming_the_path(
    clean_kube_env: Path, content: str
) -> None:
    path = clean_kube_env / "garbage"
    path.write_text(content)
    with pytest.raises(InvalidInput) as info:
        client.api_client({"kubeconfig_path": str(path)}, None)
    assert str(path) in str(info.value)


def test_unknown_context_is_invalid_input_naming_the_context(clean_kube_env: Path) -> None:
    path = _kubeconfig(clean_kube_env / "kc")
    with pytest.raises(InvalidInput) as info:
        client.api_client({"kubeconfig_path": str(path), "kubernetes_context": "elsewhere"}, None)
    assert info.value.name == "configuration.kubernetes_context"
    assert "elsewhere" in str(info.value)


def test_insecure_skip_tls_verify_is_refused(clean_kube_env: Path) -> None:
    path = _kubeconfig(clean_kube_env / "kc", insecure=True)
    with pytest.raises(InvalidInput, match="insecure-skip-tls-verify"):
        client.api_client({"kubeconfig_path": str(path)}, None)


def test_valid_kubeconfig_builds_a_verifying_client(clean_kube_env: Path) -> None:
    """Building a client sends no request; the token stays out of the error-free path."""
    path = _kubeconfig(clean_kube_env / "kc")
    api = client.api_client({"kubeconfig_path": str(path)}, None)
    assert api.configuration.host == "https://127.0.0.1:6443"
    assert api.configuration.verify_ssl is True


def test_empty_kubeconfig_path_falls_through_to_next_source(clean_kube_env: Path) -> None:
    """ "" (an unset env var with default "") is not a path: with nothing else, no config."""
    with pytest.raises(ClusterUnreachable, match="KUBECONFIG"):
        client.api_client({"kubeconfig_path": ""}, None)


def test_context_without_any_kubeconfig_is_invalid_input(clean_kube_env: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        client.api_client({"kubernetes_context": "lab"}, None)
    assert info.value.name == "configuration.kubernetes_context"
