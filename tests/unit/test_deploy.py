"""deploy/: the runner's RBAC is exactly deploy/permissions.yaml, which is exactly the code's
API calls; the CronJob, the image and the kustomization keep their promises. Files only."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import chaosk8s
import pytest
import yaml
from kubernetes import client as k8s

from chaosmesh_sec import _run
from chaosmesh_sec import gameday as gd
from chaosmesh_sec.lab.nodes import fault_namespace_manifest
from tests import deploy_permissions as dp

CODE_DIRS = ("chaosmesh_sec/faults", "chaosmesh_sec/probes", "chaosmesh_sec/controls")
CODE_FILES = ("chaosmesh_sec/client.py", "chaosmesh_sec/_kube.py", "chaosmesh_sec/_lease.py")
REST = re.compile(r"(list|read|create|delete|patch|replace|connect|get)_[a-z0-9_]+$")
COMPONENT_NAMES = sorted(p.name for p in dp.COMPONENTS.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return dp.load()


def _diff(want: set[dp.Grant], have: set[dp.Grant]) -> str:
    missing = "\n  ".join(sorted(map(str, want - have)))
    extra = "\n  ".join(sorted(map(str, have - want)))
    return (
        f"in permissions.yaml, not granted:\n  {missing}\n"
        f"granted, not in permissions.yaml:\n  {extra}"
    )


@pytest.mark.parametrize(
    "components", [(), tuple(COMPONENT_NAMES)], ids=["base", "with-components"]
)
def test_rbac_grants_exactly_the_permissions(
    data: dict[str, Any], components: tuple[str, ...]
) -> None:
    want = dp.expected(data, components)
    have = dp.granted(dp.rbac_documents(components), dp.subject(data))
    assert want == have, _diff(want, have)


def test_every_component_has_permissions(data: dict[str, Any]) -> None:
    named = {e["component"] for e in data["permissions"] if e.get("component")}
    assert named == set(COMPONENT_NAMES)


def test_rbac_header_is_generated_from_the_permissions(data: dict[str, Any]) -> None:
    assert dp.rbac_header_in_file() == dp.header(data), (
        "deploy/rbac.yaml's header is stale: run .venv/bin/python -m tests.deploy_permissions"
    )


def _rbac_objects() -> list[dict[str, Any]]:
    return [
        d
        for d in dp.documents(sorted(dp.DEPLOY.rglob("*.yaml")))
        if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("rbac.")
    ]


def test_no_rule_grants_what_the_runner_must_never_have() -> None:
    objects = _rbac_objects()
    assert objects
    for obj in objects:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        for rule in obj.get("rules") or []:
            assert "nonResourceURLs" not in rule, where
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(key) or []), f"{where}: wildcard in {key}"
            resources = set(rule.get("resources") or [])
            verbs = set(rule.get("verbs") or [])
            assert "secrets" not in resources, f"{where}: secrets"
            assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}, where
            if "namespaces" in resources:
                assert verbs <= {"get", "list"}, f"{where}: namespaces {verbs}"  # read only
            assert not resources & {"roles", "clusterroles", "rolebindings", "clusterrolebindings"}
        if obj["kind"].endswith("Binding"):
            assert obj["roleRef"]["name"].startswith("chaosmesh-sec-runner"), where
            assert [s["name"] for s in obj["subjects"]] == ["chaosmesh-sec-runner"], where


def _calls(data: dict[str, Any]) -> set[tuple[str, str]]:
    out = set()
    for entry in [*data["permissions"], *(data.get("not_granted") or [])]:
        for call in entry["calls"]:
            path, _, method = call.partition("::")
            out.add((path, method))
    return out


def _source(path: str) -> str:
    if path.startswith("chaosk8s/"):
        return (Path(inspect.getfile(chaosk8s)).parent / path.removeprefix("chaosk8s/")).read_text()
    return (dp.ROOT / path).read_text()


def test_every_listed_call_is_in_the_code(data: dict[str, Any]) -> None:
    for path, method in sorted(_calls(data)):
        assert re.search(rf"\b{method}\b", _source(path)), f"{path} does not call {method}"


def _api_methods() -> set[str]:
    """Every method of the Kubernetes client's API classes (CoreV1Api, AppsV1Api, ...)."""
    names: set[str] = set()
    for attr in dir(k8s):
        cls = getattr(k8s, attr)
        if isinstance(cls, type) and attr.endswith("Api") and attr != "ApiClient":
            names |= {m.removesuffix("_with_http_info") for m in dir(cls) if REST.match(m)}
    return names


def test_every_api_call_in_the_code_is_listed(data: dict[str, Any]) -> None:
    """Reading every API call, mechanically: a new one fails here until permissions.yaml
    says whether the runner gets it (and rbac.yaml follows)."""
    methods = _api_methods()
    assert {"list_namespaced_pod", "create_namespaced_service_account_token"} <= methods
    files = [p for d in CODE_DIRS for p in sorted((dp.ROOT / d).glob("*.py"))]
    files += [dp.ROOT / f for f in CODE_FILES]
    found = set()
    for path in files:
        rel = str(path.relative_to(dp.ROOT))
        for name in set(re.findall(r"\b([a-z][a-z0-9_]+)\b", path.read_text())) & methods:
            found.add((rel, name))
    assert found, "no API call found: the scan is broken"
    listed = {c for c in _calls(data) if not c[0].startswith("chaosk8s/")}
    unlisted = "\n  ".join(f"{p}::{m}" for p, m in sorted(found - listed))
    assert not found - listed, f"API calls missing from deploy/permissions.yaml:\n  {unlisted}"
    assert listed <= found


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((dp.DEPLOY / name).read_text()) if d]


def test_kustomization_ships_every_experiment_and_its_resources() -> None:
    kz = yaml.safe_load((dp.DEPLOY / "kustomization.yaml").read_text())
    for resource in kz["resources"]:
        assert (dp.DEPLOY / resource).is_file(), resource
    generators = {g["name"]: g for g in kz["configMapGenerator"]}
    shipped = [Path(f).name for f in generators["chaosmesh-sec-experiments"]["files"]]
    assert shipped == sorted(p.name for p in (dp.ROOT / "experiments").glob("*.json"))
    for g in generators.values():
        assert g["namespace"] == "chaosmesh-sec"
        for f in g["files"]:
            assert (dp.DEPLOY / f).is_file(), f
    assert "namespace" not in kz, "RBAC spans namespaces: no kustomization-wide namespace"


def test_example_var_file(data: dict[str, Any]) -> None:
    path = dp.DEPLOY / "vars" / "cluster.yaml"
    gd.check_var_file("vars/cluster.yaml", path)
    plan = gd.load_plan(dp.ROOT / "experiments")
    declared = frozenset().union(*(e.config_keys for e in plan.entries))
    config = yaml.safe_load(path.read_text())["configuration"]
    assert set(config) <= declared  # every key takes effect somewhere
    caller = next(e for e in data["permissions"] if e["resource"] == "serviceaccounts/token")
    assert caller["resourceNames"] == [config["caller_service_account"]]
    assert caller["bound"] == [config["caller_namespace"]]
    fault_pods = next(
        e for e in data["permissions"] if e["role"] == "chaosmesh-sec-runner-fault-pods"
    )
    assert fault_pods["bound"] == [config["fault_namespace"]]


def test_namespaces_and_service_accounts(data: dict[str, Any]) -> None:
    namespaces = {d["metadata"]["name"]: d["metadata"]["labels"] for d in _docs("namespace.yaml")}
    assert namespaces["chaosmesh-sec"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["chaosmesh-sec-faults"]["pod-security.kubernetes.io/enforce"] == "privileged"
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in _docs("serviceaccount.yaml")
    }
    runner = data["runner"]
    assert (runner["namespace"], runner["serviceAccount"]) in accounts
    assert ("default", "chaosmesh-sec-caller") in accounts


def test_fault_namespace_is_the_pack_default_the_lab_makes_and_deploy_applies() -> None:
    [applied] = [
        d for d in _docs("namespace.yaml") if d["metadata"]["name"] == _run.FAULT_NAMESPACE
    ]
    assert fault_namespace_manifest() == applied  # the lab's, made at lab up: the same
    for path in sorted((dp.ROOT / "experiments").glob("*.json")):
        declared = json.loads(path.read_text())["configuration"].get("fault_namespace")
        if declared is not None:
            assert declared["default"] == _run.FAULT_NAMESPACE, path.name


def test_cronjob_runs_unprivileged_and_fails_loudly() -> None:
    (cron,) = _docs("cronjob.yaml")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    assert job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == "chaosmesh-sec-runner"
    assert pod["automountServiceAccountToken"] is True
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "limits" in container["resources"] and "requests" in container["resources"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert (
        volumes[mounts["/results"]]["persistentVolumeClaim"]["claimName"] == "chaosmesh-sec-results"
    )
    assert volumes[mounts["/experiments"]]["configMap"]["name"] == "chaosmesh-sec-experiments"
    assert volumes[mounts["/vars"]]["configMap"]["name"] == "chaosmesh-sec-vars"
    assert container["args"] == ["--var-file", "/vars/cluster.yaml"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["CHAOSTOOLKIT_IN_POD"] == "true" and env["KUBERNETES_VERIFY_SSL"] == "true"
    (pvc,) = _docs("pvc.yaml")
    assert pvc["metadata"]["name"] == "chaosmesh-sec-results"


def test_dockerfile() -> None:
    text = (dp.DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^USER 10001(:10001)?$", text, re.M)
    assert '["chaosmesh-sec", "gameday", "/experiments", "--out", "/results", "--yes"]' in text
    assert not re.search(r"^(ENV|ARG)\b.*(TOKEN|SECRET|PASSWORD|KUBECONFIG)", text, re.M | re.I)
    assert not re.search(r"^(COPY|ADD)\b.*(kubeconfig|\.kube|\.pem|\.key)\b", text, re.M | re.I)
