"""The pack's own pods (partition fault pod, inspection pods) as their builders make them,
and deploy/admission-policy.yaml kept in step with them. Pure: no cluster.

The API server's verdict on these pods is tests/integration/test_deploy.py's."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec import _pack_pods, _run
from chaosmesh_sec.faults import apiserver_partition
from chaosmesh_sec.faults._partition_rules import Endpoint, new_run_id, plan
from chaosmesh_sec.probes import _node_pod, cni_chain, redirection

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "admission-policy.yaml"
NODE_LOSS = {
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/not-ready", "NoExecute"),
}
CONTROL_PLANE = {
    ("node-role.kubernetes.io/control-plane", "NoSchedule"),
    ("node-role.kubernetes.io/control-plane", "NoExecute"),
}


def _partition(control_plane: bool = False) -> client.V1Pod:
    p = plan(new_run_id(), "host", [Endpoint("10.0.0.1", 6443)], 60)
    return apiserver_partition._fault_pod(p, "n1", _pack_pods.DEFAULT_IMAGE, control_plane)


def _inspection(purpose: str, control_plane: bool = False) -> client.V1Pod:
    return _node_pod._manifest("n1", "ns", _pack_pods.DEFAULT_IMAGE, purpose, control_plane)


def _tolerated(pod: client.V1Pod) -> set[tuple[str, str]]:
    found = set()
    for t in pod.spec.tolerations:
        assert t.key and t.operator == "Exists", f"a wildcard toleration: {t}"
        found.add((t.key, t.effect))
    return found


PODS = {
    "partition": _partition,
    "cni-chain": lambda cp=False: _inspection("cni-chain", cp),
    "redirection": lambda cp=False: _inspection("redirection", cp),
}


@pytest.mark.parametrize("kind", sorted(PODS))
def test_no_token_no_privilege_and_only_the_node_loss_taints(kind: str) -> None:
    pod = PODS[kind]()
    assert pod.spec.automount_service_account_token is False
    assert not pod.spec.service_account_name
    assert pod.spec.node_name == "n1"
    (container,) = pod.spec.containers
    assert container.security_context.privileged is False
    assert container.image == _pack_pods.DEFAULT_IMAGE
    assert _tolerated(pod) == NODE_LOSS


@pytest.mark.parametrize("kind", sorted(PODS))
def test_the_control_plane_taints_only_when_asked(kind: str) -> None:
    assert _tolerated(PODS[kind](True)) == NODE_LOSS | CONTROL_PLANE


def test_the_partition_pod_has_net_admin_and_host_network_only() -> None:
    pod = _partition()
    assert pod.spec.host_network is True
    assert not pod.spec.host_pid and not pod.spec.volumes
    caps = pod.spec.containers[0].security_context.capabilities
    assert sorted(caps.add) == ["NET_ADMIN", "NET_RAW"]


def test_inspection_pods_mount_the_cni_directories_read_only() -> None:
    for purpose in _node_pod.ACCESS:
        pod = _inspection(purpose)
        paths = sorted(v.host_path.path for v in pod.spec.volumes)
        assert paths == ["/etc/cni/net.d", "/opt/cni/bin"]
        assert all(m.read_only for m in pod.spec.containers[0].volume_mounts)
    cni = _inspection("cni-chain")
    assert not cni.spec.host_pid and not cni.spec.containers[0].security_context.capabilities.add
    redir = _inspection("redirection")
    assert redir.spec.host_pid is True
    assert sorted(redir.spec.containers[0].security_context.capabilities.add) == [
        "NET_ADMIN",
        "NET_RAW",
        "SYS_ADMIN",
        "SYS_PTRACE",
    ]


def _policies() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(POLICY.read_text()) if d]
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}


def test_the_policy_allows_what_the_builders_make() -> None:
    """The allow-list holds the default image; every capability and host path the
    builders use is in the policy's lists (the lab's API server checks the rest)."""
    pods = _policies()["chaosmesh-sec-runner-pods"]
    variables = {v["name"]: v["expression"] for v in pods["spec"]["variables"]}
    assert f"'{_pack_pods.DEFAULT_IMAGE}'" in variables["images"]
    for purpose in _node_pod.ACCESS:
        pod = _inspection(purpose)
        for cap in pod.spec.containers[0].security_context.capabilities.add:
            assert f"'{cap}'" in variables["capabilities"]
        for volume in pod.spec.volumes:
            assert f"'{volume.host_path.path}'" in variables["hostPaths"]
    for cap in _partition().spec.containers[0].security_context.capabilities.add:
        assert f"'{cap}'" in variables["capabilities"]
    assert f"'{_node_pod.NODE_PROBE_LABEL}'" in variables["inspection"]


def test_the_policies_need_no_params_object() -> None:
    """With a paramKind, a missing params object denies every matching request before
    the matchConditions are read: every pod of every user (seen in the lab)."""
    for name, policy in _policies().items():
        assert "paramKind" not in policy["spec"], name
        assert policy["spec"]["matchConditions"], name


def test_the_image_is_pinned_by_digest_everywhere_by_default() -> None:
    assert "@sha256:" in _pack_pods.DEFAULT_IMAGE
    for activity in (
        apiserver_partition.partition_node_from_apiserver,
        cni_chain.cni_chain_intact,
        redirection.redirection_in_place,
    ):
        params = inspect.signature(activity).parameters
        assert params["image"].default == _pack_pods.DEFAULT_IMAGE, activity.__name__
        assert params["tolerate_control_plane"].default is False, activity.__name__
    declaring = []
    for path in sorted((ROOT / "experiments").glob("*.json")):
        text = path.read_text()
        image = json.loads(text).get("configuration", {}).get("fault_image")
        if image:
            declaring.append(path.name)
            assert image["default"] == _pack_pods.DEFAULT_IMAGE, path.name
        if "probe_namespace" in text or "fault_namespace}" in text:
            assert image, f"{path.name} starts the pack's pods: it declares fault_image"
            assert text.count('"image": "${fault_image}"') >= 1, path.name
    assert len(declaring) >= 5, declaring


def test_no_pod_of_the_pack_defaults_to_namespace_default() -> None:
    for activity, name in (
        (apiserver_partition.partition_node_from_apiserver, "fault_namespace"),
        (apiserver_partition.heal_apiserver_partition, "fault_namespace"),
        (cni_chain.cni_chain_intact, "probe_namespace"),
        (redirection.redirection_in_place, "probe_namespace"),
    ):
        default = inspect.signature(activity).parameters[name].default
        assert default == _run.FAULT_NAMESPACE, activity.__name__
