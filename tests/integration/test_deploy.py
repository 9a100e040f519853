"""deploy/ against the lab's API server.

1. ``kubectl kustomize`` (the lab's kubectl) renders deploy/, and a server-side dry run
   of the whole rendering is accepted;
2. the Namespaces, ServiceAccounts, RBAC and admission policies are applied for real;
   then, asked as the runner's ServiceAccount (SubjectAccessReview), the API server
   allows every permission in deploy/permissions.yaml and denies what the runner must
   never do;
3. the admission policies (deploy/admission-policy.yaml), through server-side dry runs
   impersonating the runner: the pack's own pods, built by the pack's own code, are
   admitted; a privileged pod, a ``hostPath: /`` pod, an image off the allow-list, a
   partition pod with an extra capability, a rewritten pod template are refused with
   the policy's message; the same pods from another user are untouched.

Everything this module applied is deleted at the end (Namespaces only if it created
them: the lab makes the fault namespace at ``lab up``, and it stays); if deploy/ is
already applied in the cluster (the runner's namespace is there), the module is skipped
rather than touching it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec._pack_pods import DEFAULT_IMAGE
from chaosmesh_sec._run import FAULT_NAMESPACE
from chaosmesh_sec.faults._partition_rules import Endpoint, new_run_id, plan
from chaosmesh_sec.faults.apiserver_partition import _fault_pod
from chaosmesh_sec.faults.churn import RESTARTED_AT
from chaosmesh_sec.lab.build import locate
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.probes._node_pod import _manifest
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
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)
RUNNER_NAMESPACE = "chaosmesh-sec"
OUR_NAMESPACES = (RUNNER_NAMESPACE, FAULT_NAMESPACE)


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
    # resourceNames: only the kit's named workloads
    _grant("patch", "deployments", "default", "helloworld-v1", group="apps"),
    _grant("patch", "deployments/scale", "default", "helloworld-v1", group="apps"),
    _grant("patch", "deployments", "cni-canary", "other", group="apps"),
    _grant("patch", "daemonsets", "istio-system", "ztunnel", group="apps"),
    _grant("get", "daemonsets", "istio-system", "ztunnel", group="apps"),
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


# ---------------------------------------------------------------- the admission policies

FAULTS = FAULT_NAMESPACE
POD_POLICY = "ValidatingAdmissionPolicy 'chaosmesh-sec-runner-pods'"
WORKLOAD_POLICY = "ValidatingAdmissionPolicy 'chaosmesh-sec-runner-workloads'"
OFF_LIST = "docker.io/library/busybox:1.36"


@pytest.fixture(scope="module")
def runner_api(api: client.ApiClient) -> Iterator[client.ApiClient]:
    """The lab's admin credentials, impersonating the runner's ServiceAccount."""
    runner = client.ApiClient(api.configuration)
    runner.set_default_header("Impersonate-User", dp.subject())
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def node(core: client.CoreV1Api) -> str:
    return str(sorted(n.metadata.name for n in core.list_node().items)[0])


def _partition(node: str, **changes: Any) -> client.V1Pod:
    """The partition's fault pod, as the fault builds it."""
    p = plan(new_run_id(), "host", [Endpoint("10.77.0.1", 6443)], 60)
    return _fault_pod(p, node, DEFAULT_IMAGE, **changes)


def _inspection(node: str, purpose: str, tolerate_control_plane: bool = False) -> client.V1Pod:
    """A posture probe's inspection pod, as the probe builds it."""
    return _manifest(node, FAULTS, DEFAULT_IMAGE, purpose, tolerate_control_plane)


def _refusal(request: Callable[[], object]) -> str:
    """ "" if the API server accepts ``request`` (a dry run), else its message."""
    try:
        request()
    except client.ApiException as exc:
        if exc.status not in (400, 403, 422):
            raise
        return str(json.loads(exc.body or "{}").get("message", exc.reason))
    return ""


def _dry_run_create(core: client.CoreV1Api, body: client.V1Pod) -> str:
    """ "" if the API server would create ``body`` in the fault namespace, else its message."""
    return _refusal(lambda: core.create_namespaced_pod(FAULTS, body, dry_run="All"))


def _policy_in_force(runner: client.CoreV1Api, node: str) -> None:
    """Wait until the runner's RBAC and the pod policy are in force: the API server
    takes both through informers."""
    off_list = _partition(node)
    off_list.spec.containers[0].image = OFF_LIST
    eventually(
        lambda: (
            POD_POLICY in _dry_run_create(runner, off_list)
            and OFF_LIST in _dry_run_create(runner, off_list)
        ),
        60,
        "the pod policy refusing an image off the list",
    )


def test_the_policy_admits_the_packs_own_pods(
    applied: list[dict[str, Any]], runner_api: client.ApiClient, node: str
) -> None:
    runner = client.CoreV1Api(runner_api)
    _policy_in_force(runner, node)
    own = {
        "partition": _partition(node),
        "partition, control-plane taints": _partition(node, tolerate_control_plane=True),
        "cni-chain inspection": _inspection(node, "cni-chain"),
        "redirection inspection": _inspection(node, "redirection"),
        "redirection inspection, control-plane taints": _inspection(node, "redirection", True),
    }
    refused = {what: msg for what, body in own.items() if (msg := _dry_run_create(runner, body))}
    assert not refused, refused


def _host_path(name: str, path: str) -> client.V1Volume:
    return client.V1Volume(name=name, host_path=client.V1HostPathVolumeSource(path=path))


def _root_shell() -> client.V1Pod:
    """Not the pack's: a privileged pod with the node's / mounted."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="root-shell"),
        spec=client.V1PodSpec(
            automount_service_account_token=False,
            host_pid=True,
            containers=[
                client.V1Container(
                    name="shell",
                    image=DEFAULT_IMAGE,
                    command=["sleep", "300"],
                    security_context=client.V1SecurityContext(privileged=True),
                    volume_mounts=[client.V1VolumeMount(name="root", mount_path="/host")],
                )
            ],
            volumes=[_host_path("root", "/")],
        ),
    )


def _changed(body: client.V1Pod, change: Callable[[client.V1Pod], None]) -> client.V1Pod:
    """``body`` (freshly built by the pack's code) with one ``change``."""
    change(body)
    return body


def _privileged(pod: client.V1Pod) -> None:
    pod.spec.containers[0].security_context = client.V1SecurityContext(privileged=True)


def _host_root(pod: client.V1Pod) -> None:
    pod.spec.volumes.append(
        client.V1Volume(name="root", host_path=client.V1HostPathVolumeSource(path="/"))
    )
    mount = client.V1VolumeMount(name="root", mount_path="/host", read_only=True)
    pod.spec.containers[0].volume_mounts.append(mount)


def _off_list(pod: client.V1Pod) -> None:
    pod.spec.containers[0].image = OFF_LIST


def _sys_admin(pod: client.V1Pod) -> None:
    pod.spec.containers[0].security_context.capabilities.add.append("SYS_ADMIN")


def _writable(pod: client.V1Pod) -> None:
    pod.spec.containers[0].volume_mounts[0].read_only = False


def _host_pid(pod: client.V1Pod) -> None:
    pod.spec.host_pid = True


def _token(pod: client.V1Pod) -> None:
    pod.spec.automount_service_account_token = True


def _everything_tolerated(pod: client.V1Pod) -> None:
    pod.spec.tolerations = [client.V1Toleration(operator="Exists")]


@pytest.mark.parametrize(
    ("what", "build", "message"),
    [
        ("a privileged hostPath / pod", lambda n: _root_shell(), "only the pack's own pods"),
        (
            "a privileged inspection pod",
            lambda n: _changed(_inspection(n, "cni-chain"), _privileged),
            "no privileged container",
        ),
        (
            "an inspection pod with / mounted",
            lambda n: _changed(_inspection(n, "cni-chain"), _host_root),
            "only hostPath volumes of /etc/cni/net.d, /opt/cni/bin, /proc for this pod, got "
            "/etc/cni/net.d, /opt/cni/bin, /",
        ),
        (
            "an inspection pod writing the CNI directory",
            lambda n: _changed(_inspection(n, "cni-chain"), _writable),
            "every volume mount read-only",
        ),
        (
            "a cni-chain inspection pod with hostPID",
            lambda n: _changed(_inspection(n, "cni-chain"), _host_pid),
            "no hostIPC; hostPID only for the redirection inspection",
        ),
        (
            "a partition pod with an image off the list",
            lambda n: _changed(_partition(n), _off_list),
            f"image {OFF_LIST} is not on the allow-list",
        ),
        (
            "a partition pod with an extra capability",
            lambda n: _changed(_partition(n), _sys_admin),
            "capabilities beyond NET_ADMIN, NET_RAW for this pod",
        ),
        (
            "a partition pod with a ServiceAccount token",
            lambda n: _changed(_partition(n), _token),
            "only hostPath volumes of none for this pod, got kube-api-access-",
        ),
        (
            "a partition pod tolerating everything",
            lambda n: _changed(_partition(n), _everything_tolerated),
            "tolerations only of",
        ),
    ],
)
def test_the_policy_refuses_what_is_not_the_packs(
    applied: list[dict[str, Any]],
    runner_api: client.ApiClient,
    node: str,
    what: str,
    build: Callable[[str], client.V1Pod],
    message: str,
) -> None:
    runner = client.CoreV1Api(runner_api)
    _policy_in_force(runner, node)
    refused = _dry_run_create(runner, build(node))
    assert POD_POLICY in refused, f"{what}: {refused or 'admitted'}"
    assert f"chaosmesh-sec runner: {message}" in refused, f"{what}: {refused}"


def test_pods_by_other_users_are_untouched(
    applied: list[dict[str, Any]], runner_api: client.ApiClient, core: client.CoreV1Api, node: str
) -> None:
    _policy_in_force(client.CoreV1Api(runner_api), node)
    assert _dry_run_create(core, _root_shell()) == ""  # the lab's admin
    assert _dry_run_create(core, _changed(_partition(node), _off_list)) == ""


def _dry_run_patch(apps: client.AppsV1Api, name: str, patch: dict[str, Any]) -> str:
    return _refusal(lambda: apps.patch_namespaced_deployment(name, "default", patch, dry_run="All"))


def test_a_runner_patch_cannot_rewrite_what_a_workload_runs(
    applied: list[dict[str, Any]], runner_api: client.ApiClient, api: client.ApiClient
) -> None:
    admin = client.AppsV1Api(api)
    name = "sleep-v1"  # a workload the runner may patch (rbac.yaml names it)
    dep = admin.read_namespaced_deployment(name, "default")
    swap = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": dep.spec.template.spec.containers[0].name, "image": OFF_LIST}
                    ]
                }
            }
        }
    }
    restart = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "now"}}}}}
    runner = client.AppsV1Api(runner_api)
    refused = eventually(
        lambda: WORKLOAD_POLICY in (msg := _dry_run_patch(runner, name, swap)) and msg,
        60,
        "the workload policy refusing an image swap",
    )
    assert "not what its pods run" in refused
    assert _dry_run_patch(runner, name, restart) == ""  # a rollout restart, as churn does it
    assert _dry_run_patch(admin, name, swap) == ""  # the admin is not the runner


def test_a_runner_pod_update_may_change_its_metadata_only(
    applied: list[dict[str, Any]], runner_api: client.ApiClient, core: client.CoreV1Api, node: str
) -> None:
    """As the IP hunt labels a kit pod: its labels, yes; its image, no."""
    runner = client.CoreV1Api(runner_api)
    _policy_in_force(runner, node)
    pods = [p for p in core.list_namespaced_pod("default").items if p.status.phase == "Running"]
    assert pods, "the lab's kits run pods in default"
    pod = pods[0]
    name = str(pod.metadata.name)
    label = {"metadata": {"labels": {"chaosmesh-sec.io/recycled-from": "10.0.0.1"}}}
    swap = {"spec": {"containers": [{"name": pod.spec.containers[0].name, "image": OFF_LIST}]}}

    def patch(api: client.CoreV1Api, body: dict[str, Any]) -> str:
        return _refusal(lambda: api.patch_namespaced_pod(name, "default", body, dry_run="All"))

    assert patch(runner, label) == ""
    refused = patch(runner, swap)
    assert POD_POLICY in refused and "a pod update may change its metadata only" in refused
    assert patch(core, swap) == ""  # the admin is not the runner


def test_the_policies_type_check_without_warnings(
    applied: list[dict[str, Any]], api: client.ApiClient
) -> None:
    """kube-controller-manager type-checks each policy's CEL against the types it
    matches: a misspelt field is a warning there (and an error only at admission)."""
    admission = client.AdmissionregistrationV1Api(api)
    names = [d["metadata"]["name"] for d in applied if d["kind"] == "ValidatingAdmissionPolicy"]
    assert sorted(names) == ["chaosmesh-sec-runner-pods", "chaosmesh-sec-runner-workloads"]
    for name in names:

        def checked(name: str = name) -> Any:
            policy = admission.read_validating_admission_policy(name)
            status = policy.status
            done = status and status.observed_generation == policy.metadata.generation
            return policy if done and status.type_checking is not None else None

        policy = eventually(checked, 60, f"policy {name} type-checked")
        warnings = policy.status.type_checking.expression_warnings or []
        assert not warnings, [f"{w.field_ref}: {w.warning}" for w in warnings]
