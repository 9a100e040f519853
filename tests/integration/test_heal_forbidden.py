"""A heal refused on one fault pod still heals the others, and the game day exits 3.

The refusal is the real API server's: the heal runs as a ServiceAccount whose Role lets
it list and exec into the fault pods, and delete only one of them (``resourceNames``).
Deleting the other gets a real 403. The rules of both are removed all the same (through
exec), the refused pod is reported ``failed``, and the safety net's record of the same
state gives the game day's exit 3 (the verdict the game day computes from the journal).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec.controls import safety_net
from chaosmesh_sec.errors import RollbackFailed
from chaosmesh_sec.faults.apiserver_partition import (
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.gameday.verdict import EXIT_ROLLBACK_FAILED, journal_exit_code
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually, wait_lease_renewed

NODE2, NODE3 = DEFAULT.nodes[1], DEFAULT.nodes[2]
HEALER = "cms-test-healer"


def _reaches_apiserver(netns: str) -> bool:
    return inspect.http_status_from(netns, f"{DEFAULT.apiserver_url}/healthz") != "000"


def _healer_kubeconfig(
    core: client.CoreV1Api,
    api: client.ApiClient,
    lab: Path,
    namespace: str,
    deletable: str,
    out: Path,
) -> Path:
    """A kubeconfig for a ServiceAccount that may list and exec into the fault pods of
    `namespace`, list its Deployments, and delete only the pod `deletable`."""
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=HEALER))
    )
    rules = [
        client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"]),
        client.V1PolicyRule(api_groups=[""], resources=["pods/exec"], verbs=["create", "get"]),
        client.V1PolicyRule(
            api_groups=[""], resources=["pods"], verbs=["delete"], resource_names=[deletable]
        ),
        client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["list"]),
    ]
    meta = client.V1ObjectMeta(name=HEALER)
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=meta, rules=rules))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=meta,
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=HEALER
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=HEALER, namespace=namespace)
            ],
        ),
    )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    token = core.create_namespaced_service_account_token(HEALER, namespace, request).status.token
    admin: dict[str, Any] = yaml.safe_load(lab.read_text())
    admin["users"] = [{"name": HEALER, "user": {"token": token}}]
    for context in admin["contexts"]:
        context["context"]["user"] = HEALER
    out.write_text(yaml.safe_dump(admin))
    out.chmod(0o600)
    return out


@pytest.fixture
def two_partitions(
    core: client.CoreV1Api, api: client.ApiClient, lab: Path, namespace: str
) -> Iterator[list[dict[str, Any]]]:
    """Real partitions of NODE2 and NODE3, fault pods in `namespace`; healed by the admin
    afterwards whatever the test did."""
    admin = {"kubeconfig_path": str(lab)}
    done: list[dict[str, Any]] = []
    try:
        for node in (NODE2, NODE3):
            done.append(
                partition_node_from_apiserver(
                    node=node.name,
                    duration_seconds=120,
                    fault_namespace=namespace,
                    configuration=admin,
                )
            )
        yield done
    finally:
        heal_apiserver_partition(fault_namespace=namespace, configuration=admin)
        for node in (NODE2, NODE3):
            wait_lease_renewed(api, node.name)


def test_a_heal_refused_on_one_pod_heals_the_others_and_the_game_day_exits_3(
    core: client.CoreV1Api,
    api: client.ApiClient,
    lab: Path,
    namespace: str,
    tmp_path: Path,
    two_partitions: list[dict[str, Any]],
) -> None:
    allowed, refused = two_partitions
    assert not _reaches_apiserver(NODE2.netns) and not _reaches_apiserver(NODE3.netns)
    healer = {
        "kubeconfig_path": str(
            _healer_kubeconfig(
                core, api, lab, namespace, allowed["fault_pod"]["name"], tmp_path / "healer"
            )
        )
    }

    with pytest.raises(RollbackFailed) as info:
        heal_apiserver_partition(fault_namespace=namespace, configuration=healer)
    result = info.value.result
    assert result is not None
    assert result["healed"] == [
        {"run_id": allowed["run_id"], "owner_run": allowed["owner_run"], "node": NODE2.name}
    ]
    [failed] = result["failed"]
    assert (failed["run_id"], failed["node"]) == (refused["run_id"], NODE3.name)
    assert [p for p in failed["problems"] if p.startswith("not deleted") and "403" in p]
    assert result["fault_pods_deleted"] == [f"{namespace}/{allowed['fault_pod']['name']}"]
    # Both cuts are over: the refused pod's rules were removed through exec all the same.
    for node, run in ((NODE2, allowed), (NODE3, refused)):
        assert f"CMS-{run['run_id']}" not in inspect.iptables_save(node.netns)
        assert _reaches_apiserver(node.netns)
    refused_pod = core.read_namespaced_pod(refused["fault_pod"]["name"], namespace)
    assert refused_pod.metadata.deletion_timestamp is None  # the 403 was real
    eventually(
        lambda: not [p for p in core.list_namespaced_pod(namespace).items
                     if p.metadata.name == allowed["fault_pod"]["name"]],
        60,
        "the allowed fault pod to be gone",
    )  # fmt: skip

    # The safety net meets the same refusal at the end of a run: its record makes exit 3.
    state: dict[str, Any] = {"status": "completed", "deviated": False, "run": []}
    safety_net.after_experiment_control(
        None, state, configuration=healer, namespace=namespace, fault_namespace=namespace
    )
    [record] = state["extensions"]
    assert "403" in record["error"]
    assert record["healed"]["replicas"] == []  # the Deployments were listed: only the pod failed
    assert [f["run_id"] for f in record["healed"]["apiserver_partition"]["failed"]] == [
        refused["run_id"]
    ]
    assert journal_exit_code(state) == EXIT_ROLLBACK_FAILED
