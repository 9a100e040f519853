"""deploy/ against the lab's API server.

1. ``kubectl kustomize`` (the lab's kubectl) renders deploy/, and a server-side dry run
   of the whole rendering is accepted;
2. the Namespaces, ServiceAccounts and RBAC are applied for real; then, asked as the
   runner's ServiceAccount (SubjectAccessReview), the API server allows every
   permission in deploy/permissions.yaml and denies what the runner must never do.

Everything this module applied is deleted at the end (Namespaces only if it created
them: the lab makes the fault namespace at ``lab up``, and it stays); if deploy/ is
already applied in the cluster (the runner's namespace is there), the module is skipped
rather than touching it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec import _run
from chaosmesh_sec.lab.build import locate
from chaosmesh_sec.lab.paths import LabPaths
from tests import deploy_permissions as dp
from tests.lab_fixtures import eventually

FIELD_MANAGER = "chaosmesh-sec-test-deploy"
APPLIED_KINDS = (
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
)
OUR_NAMESPACES = ("chaosmesh-sec", _run.FAULT_NAMESPACE)
RUNNER_NAMESPACE = "chaosmesh-sec"  # deploy/ only: the lab makes the fault namespace alone


def _grant(
    verb: str, resource: str, namespace: str = dp.CLUSTER, name: str = "", group: str = ""
) -> dp.Grant:
    res, _, sub = resource.partition("/")
    return dp.Grant(verb, group, res, sub, namespace, name)


# What the runner must never be able to do (the brief's three first).
DENIED = [
    _grant("get", "secrets", "kube-system"),
    _grant("list", "secrets"),
    _grant("delete", "namespaces", name="default"),
    _grant("delete", "namespaces"),
    _grant("list", "secrets", "chaosmesh-sec-faults"),
    _grant("watch", "secrets", "default"),
    _grant("create", "pods", "default"),  # fault pods only in chaosmesh-sec-faults
    _grant("create", "pods", "kube-system"),
    _grant("delete", "pods", "kube-system"),
    _grant("create", "pods/exec", "kube-system"),
    _grant("create", "pods/exec", "istio-system"),
    _grant("create", "pods/portforward", "istio-system"),
    _grant("create", "serviceaccounts/token", "default", "default"),
    _grant("create", "serviceaccounts/token", "kube-system", "chaosmesh-sec-caller"),
    _grant("get", "configmaps", "kube-system", "kube-proxy"),
    _grant("patch", "daemonsets", "kube-system", group="apps"),
    _grant("patch", "deployments", "kube-system", group="apps"),
    _grant("update", "deployments", "default", group="apps"),
    _grant("create", "clusterrolebindings", group="rbac.authorization.k8s.io"),
    _grant("escalate", "clusterroles", group="rbac.authorization.k8s.io"),
    _grant("impersonate", "serviceaccounts", "default"),
    _grant("create", "namespaces"),
]


def _run(
    kubectl: Path, kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(kubectl), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        timeout=180,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def kubectl(lab: Path) -> Path:
    return locate(LabPaths.default())["kubectl"]


@pytest.fixture(scope="module")
def rendered(kubectl: Path, lab: Path) -> list[dict[str, Any]]:
    """deploy/ rendered by kustomize (the experiments live outside deploy/)."""
    out = _run(
        kubectl, lab, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(dp.DEPLOY)
    )
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"CronJob", "ConfigMap", "PersistentVolumeClaim", "ClusterRole", "Namespace"} <= kinds
    return docs


def _gone_or_absent(core: client.CoreV1Api, name: str) -> bool:
    try:
        ns = core.read_namespace(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return ns.status.phase != "Terminating"


@pytest.fixture(scope="module")
def applied(
    kubectl: Path, lab: Path, core: client.CoreV1Api, rendered: list[dict[str, Any]]
) -> Iterator[list[dict[str, Any]]]:
    """The rendering's Namespaces, ServiceAccounts and RBAC, applied for real; deleted after."""
    for name in OUR_NAMESPACES:  # a previous run's namespace may still be terminating
        eventually(lambda name=name: _gone_or_absent(core, name), 120, f"namespace {name} gone")
    existing = {ns.metadata.name for ns in core.list_namespace().items}
    if RUNNER_NAMESPACE in existing:
        pytest.skip(f"deploy/ is already applied here ({RUNNER_NAMESPACE}): not touching it")
    ours = [d for d in rendered if d["kind"] in APPLIED_KINDS]
    made = [  # what the teardown deletes: not a Namespace that was there before (the lab's)
        d for d in ours if d["kind"] != "Namespace" or d["metadata"]["name"] not in existing
    ]
    # Namespaces first: the rest lives in them
    ours.sort(key=lambda d: d["kind"] != "Namespace")
    stream = yaml.safe_dump_all(ours)
    try:
        _run(
            kubectl,
            lab,
            "apply",
            "--server-side",
            f"--field-manager={FIELD_MANAGER}",
            "-f",
            "-",
            stdin=stream,
        )
        yield ours
    finally:
        # everything applied, Namespaces last (those this module created)
        made.sort(key=lambda d: d["kind"] == "Namespace")
        _run(
            kubectl,
            lab,
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(made),
            check=False,
        )


def test_server_side_dry_run_accepts_the_rendering(
    kubectl: Path, lab: Path, rendered: list[dict[str, Any]], applied: list[dict[str, Any]]
) -> None:
    out = _run(
        kubectl,
        lab,
        "apply",
        "--server-side",
        "--dry-run=server",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(rendered),
    )
    assert "cronjob.batch/chaosmesh-sec-gameday serverside-applied (server dry run)" in out.stdout
    assert "persistentvolumeclaim/chaosmesh-sec-results" in out.stdout


def _allowed(authz: client.AuthorizationV1Api, user: str, grant: dp.Grant) -> bool:
    namespace = user.split(":")[2]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            # the groups a ServiceAccount token carries: group-wide bindings count too
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
            resource_attributes=client.V1ResourceAttributes(
                verb=grant.verb,
                group=grant.group,
                resource=grant.resource,
                subresource=grant.subresource or None,
                namespace=None if grant.namespace == dp.CLUSTER else grant.namespace,
                name=grant.name or None,
            ),
        )
    )
    return bool(authz.create_subject_access_review(review).status.allowed)


@pytest.fixture(scope="module")
def authz(api: client.ApiClient) -> client.AuthorizationV1Api:
    return client.AuthorizationV1Api(api)


def test_the_runner_may_do_what_the_experiments_need(
    authz: client.AuthorizationV1Api, applied: list[dict[str, Any]]
) -> None:
    data = dp.load()
    user = dp.subject(data)
    grants = sorted(dp.expected(data))  # components (team-isolation) are not applied here
    assert grants
    # RBAC reaches the authorizer through its informers: wait for the first one
    eventually(lambda: _allowed(authz, user, grants[0]), 60, f"{grants[0]} allowed")
    refused = [str(g) for g in grants if not _allowed(authz, user, g)]
    assert not refused, "denied to the runner:\n  " + "\n  ".join(refused)


def test_the_runner_is_denied_the_rest(
    authz: client.AuthorizationV1Api, applied: list[dict[str, Any]]
) -> None:
    data = dp.load()
    user = dp.subject(data)
    granted = sorted(dp.expected(data))
    # not vacuous: the runner's RBAC is in effect
    eventually(lambda: _allowed(authz, user, granted[0]), 60, f"{granted[0]} allowed")
    assert not set(DENIED) & set(granted)
    allowed = [str(g) for g in DENIED if _allowed(authz, user, g)]
    assert not allowed, "allowed to the runner:\n  " + "\n  ".join(allowed)
