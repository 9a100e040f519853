"""Lab nodes are network namespaces with their own iptables; hostNetwork pods run there."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.hostcmd import run_ok
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually


def test_host_network_pod_command_changes_only_its_nodes_iptables(
    core: client.CoreV1Api, namespace: str, request: pytest.FixtureRequest
) -> None:
    tag = f"cms-test-{uuid.uuid4().hex[:8]}"
    node1, node2 = DEFAULT.nodes[0], DEFAULT.nodes[1]
    script = f"iptables -A INPUT -m comment --comment {tag} -j ACCEPT && sleep 300"
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="rule-writer"),
            spec=client.V1PodSpec(
                node_name=node2.name,
                host_network=True,
                restart_policy="Never",
                containers=[
                    client.V1Container(
                        name="writer",
                        image="docker.io/library/alpine:3.20",
                        command=["sh", "-c", script],
                        security_context=client.V1SecurityContext(privileged=True),
                    )
                ],
            ),
        ),
    )
    request.addfinalizer(
        lambda: run_ok(
            ["iptables", "-D", "INPUT", "-m", "comment", "--comment", tag, "-j", "ACCEPT"],
            netns=node2.netns,
        )
    )
    eventually(
        lambda: tag in inspect.iptables_save(node2.netns),
        60,
        f"the rule tagged {tag} in {node2.name}'s namespace",
    )
    assert tag not in inspect.iptables_save(node1.netns)
    assert tag not in inspect.iptables_save(DEFAULT.nodes[2].netns)
    # Deleting the pod stops its process (the rule stays: the command added it for real).
    pod = core.read_namespaced_pod("rule-writer", namespace)
    core.delete_namespaced_pod("rule-writer", namespace)
    eventually(lambda: not inspect.container_processes(pod.metadata.uid), 30, "the process to exit")
