"""The mesh's own decisions, made by the real Envoy that the real istiod configures.

Each test builds a small mesh in a fresh namespace from the team-isolation kit's own
workloads (go-httpbin and curl, each with its sidecar written out as the kit writes
it: pilot-agent and Envoy), applies Istio policies and asks the identity matrix. Each
would fail if the sidecar were a pass-through: a DENY that wins over an ALLOW, a port
an ALLOW does not name, a plaintext client under STRICT and a policy change are all
decided inside Envoy (its RBAC filter, its TLS inspector), and the evidence says
Envoy answered (``server: envoy``, no ``x-envoy-upstream-service-time``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec.probes import matrix
from tests.lab_fixtures import curl_pod, eventually, kit_deployment, matrix_holding

pytestmark = pytest.mark.usefixtures("istiod_current")  # see its docstring

HTTPBIN_PORTS = {"http-a": (8000, 8080), "http-b": (8001, 8081)}  # Service port -> target


def _relabel(dep: dict[str, Any], app: str) -> dict[str, Any]:
    dep["metadata"]["name"] = app
    dep["metadata"]["labels"] = {"app": app}
    dep["spec"]["selector"] = {"matchLabels": {"app": app}}
    labels = dep["spec"]["template"]["metadata"]["labels"]
    labels["app"] = labels["service.istio.io/canonical-name"] = app
    return dep


def _httpbin(namespace: str) -> dict[str, Any]:
    """go-httpbin on 8080 and, in a second container of the same pod, on 8081."""
    dep = kit_deployment("team-isolation", "httpbin", namespace, "httpbin")
    containers = dep["spec"]["template"]["spec"]["containers"]
    first = next(c for c in containers if c["name"] == "httpbin")
    second = {**first, "name": "httpbin-alt", "env": [{"name": "PORT", "value": "8081"}]}
    second["ports"] = [{"containerPort": 8081}]
    containers.insert(1, second)
    return dep


def _service(namespace: str) -> client.V1Service:
    ports = [
        client.V1ServicePort(name=name, port=port, target_port=target)
        for name, (port, target) in HTTPBIN_PORTS.items()
    ]
    return client.V1Service(
        metadata=client.V1ObjectMeta(name="httpbin"),
        spec=client.V1ServiceSpec(selector={"app": "httpbin"}, ports=ports),
    )


def _mesh(api: client.ApiClient, namespace: str, clients: tuple[str, ...]) -> None:
    """httpbin and one meshed curl client per name (ServiceAccount = the name), Ready."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for account in ("httpbin", *clients):
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
        )
    core.create_namespaced_service(namespace, _service(namespace))
    deployments = [_httpbin(namespace)]
    for name in clients:
        dep = kit_deployment("team-isolation", "curl", namespace, name)
        deployments.append(_relabel(dep, name))
    for dep in deployments:
        apps.create_namespaced_deployment(namespace, dep)

    def available() -> bool:
        listed = apps.list_namespaced_deployment(namespace).items
        return len(listed) == len(deployments) and all(
            (d.status.available_replicas or 0) >= 1 for d in listed
        )

    eventually(available, 120, "the test mesh's Deployments to be available")


def _policy(
    custom: client.CustomObjectsApi, namespace: str, kind: str, name: str, spec: dict[str, Any]
) -> None:
    plural = {"AuthorizationPolicy": "authorizationpolicies"}.get(kind, "peerauthentications")
    body = {
        "apiVersion": "security.istio.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    custom.create_namespaced_custom_object("security.istio.io", "v1", namespace, plural, body)


def _matrix(
    tmp_path: Path,
    namespace: str,
    sources: dict[str, tuple[str, str]],
    destinations: dict[str, str],
    expect: dict[str, dict[str, str]],
) -> str:
    """A matrix file: ``sources`` maps a name to its pods' selector and container."""
    doc = {
        "name": "mesh-policy",
        "timeout_seconds": 3,
        "sources": {
            name: {"namespace": namespace, "selector": selector, "container": container}
            for name, (selector, container) in sources.items()
        },
        "destinations": {name: {"url": url} for name, url in destinations.items()},
        "expect": expect,
    }
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _cells(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["source"], c["destination"]): c for c in result["cells"]}


def _envoy_denied(cell: dict[str, Any]) -> None:
    """The cell was refused by Envoy's RBAC filter itself, not by an application."""
    evidence = cell["evidence"]
    assert cell["verdict"] == "denied_by_mesh", cell
    assert (evidence["http_code"], evidence["body"].strip()) == ("403", "RBAC: access denied")
    assert evidence["responder"]["server"] == "envoy", evidence
    assert evidence["answered_by"] == "envoy", evidence


def _url(namespace: str, port: str = "http-a", path: str = "/get") -> str:
    return f"http://httpbin.{namespace}:{HTTPBIN_PORTS[port][0]}{path}"


def test_a_deny_naming_one_principal_wins_over_an_allow_of_its_namespace(
    api: client.ApiClient, custom: client.CustomObjectsApi, namespace: str, tmp_path: Path
) -> None:
    _mesh(api, namespace, ("curl-a", "curl-b"))
    selector = {"matchLabels": {"app": "httpbin"}}
    _policy(custom, namespace, "AuthorizationPolicy", "allow-namespace", {
        "selector": selector, "action": "ALLOW",
        "rules": [{"from": [{"source": {"namespaces": [namespace]}}]}],
    })  # fmt: skip
    _policy(custom, namespace, "AuthorizationPolicy", "deny-b", {
        "selector": selector, "action": "DENY",
        "rules": [{"from": [{"source": {
            "principals": [f"cluster.local/ns/{namespace}/sa/curl-b"]}}]}],
    })  # fmt: skip
    path = _matrix(
        tmp_path,
        namespace,
        {"curl-a": ("app=curl-a", "curl"), "curl-b": ("app=curl-b", "curl")},
        {"httpbin": _url(namespace)},
        {"curl-a": {"httpbin": "allowed"}, "curl-b": {"httpbin": "denied_by_mesh"}},
    )
    result = matrix_holding(path, 60, "istiod to push both policies to httpbin's Envoy")
    cells = _cells(result)
    _envoy_denied(cells[("curl-b", "httpbin")])
    allowed = cells[("curl-a", "httpbin")]["evidence"]
    assert allowed["http_code"] == "200" and allowed["answered_by"] == "app", allowed


def test_an_allow_limited_to_one_port_denies_the_other(
    api: client.ApiClient, custom: client.CustomObjectsApi, namespace: str, tmp_path: Path
) -> None:
    _mesh(api, namespace, ("curl-a",))
    _policy(custom, namespace, "AuthorizationPolicy", "allow-8080", {
        "selector": {"matchLabels": {"app": "httpbin"}}, "action": "ALLOW",
        "rules": [{"to": [{"operation": {"ports": ["8080"]}}]}],
    })  # fmt: skip
    path = _matrix(
        tmp_path,
        namespace,
        {"curl-a": ("app=curl-a", "curl")},
        {"port-8080": _url(namespace, "http-a"), "port-8081": _url(namespace, "http-b")},
        {"curl-a": {"port-8080": "allowed", "port-8081": "denied_by_mesh"}},
    )
    result = matrix_holding(path, 60, "istiod to push the port-limited policy")
    _envoy_denied(_cells(result)[("curl-a", "port-8081")])


def test_a_plaintext_client_is_refused_under_strict(
    api: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    _mesh(api, namespace, ("curl-a",))
    core.create_namespaced_pod(namespace, curl_pod("plain", labels={"app": "plain"}))
    _policy(custom, namespace, "PeerAuthentication", "strict", {"mtls": {"mode": "STRICT"}})
    path = _matrix(
        tmp_path,
        namespace,
        {"curl-a": ("app=curl-a", "curl"), "plain": ("app=plain", "app")},
        {"httpbin": _url(namespace)},
        {"curl-a": {"httpbin": "allowed"}, "plain": {"httpbin": "mtls_failure"}},
    )
    result = matrix_holding(path, 60, "istiod to push STRICT to httpbin's Envoy")
    plain = _cells(result)[("plain", "httpbin")]["evidence"]
    assert plain["http_code"] == "000" and plain["exit_code"] == 56, plain


def test_a_policy_change_reaches_envoy_and_its_delay_is_measured(
    api: client.ApiClient,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    _mesh(api, namespace, ("curl-a",))
    path = _matrix(
        tmp_path,
        namespace,
        {"curl-a": ("app=curl-a", "curl")},
        {"httpbin": _url(namespace)},
        {"curl-a": {"httpbin": "allowed"}},
    )
    # the new pods' Envoys first take their config and httpbin's endpoints from istiod
    matrix_holding(path, 60, "the new namespace's mesh to answer")
    applied = time.monotonic()
    _policy(custom, namespace, "AuthorizationPolicy", "allow-nothing", {})

    def denied() -> dict[str, Any] | None:
        result = matrix.identity_matrix(matrix=path)
        [cell] = result["cells"]
        return cell if cell["verdict"] == "denied_by_mesh" else None

    cell = eventually(denied, 60, "the allow-nothing policy to reach httpbin's Envoy")
    seconds = time.monotonic() - applied
    _envoy_denied(cell)
    record_property("policy_propagation_seconds", round(seconds, 2))
    print(f"policy propagation: {seconds:.2f}s from the create to Envoy's 403")
