"""Every activity, given a kubeconfig whose API server does not answer, says so.

The kubeconfig is the lab's, with the server moved to a port nothing listens on:
a real refused connection, no mock. The error is ``ClusterUnreachable`` naming the
server, raised before anything could change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_sec.errors import ClusterUnreachable
from chaosmesh_sec.faults import apiserver_partition, churn, cni, ip_recycle, istiod, leftovers
from chaosmesh_sec.lab.topology import DEFAULT
from chaosmesh_sec.probes import control_plane

DEAD = "https://127.0.0.1:1"

CALLS: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (
        apiserver_partition.partition_node_from_apiserver,
        {"node": "lab-node-2", "fault_namespace": "default"},
    ),
    (apiserver_partition.heal_apiserver_partition, {"fault_namespace": "default"}),
    (istiod.kill_istiod_replicas, {"count": 1}),
    (churn.scale_deployment, {"name": "web", "replicas": 0}),
    (churn.restore_replicas, {"name": "web"}),
    (churn.rollout_restart, {"name": "web"}),
    (ip_recycle.hunt_recycled_ip, {"victim": "a", "hunter": "b"}),
    (cni.restart_cni_pods, {"nodes": "lab-node-1"}),
    (leftovers.heal_leftovers, {}),
    (control_plane.istiod_replicas_ready, {}),
    (control_plane.root_cert_published, {}),
]


@pytest.fixture
def dead_kubeconfig(lab: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "kubeconfig"
    bad.write_text(lab.read_text().replace(DEFAULT.apiserver_url, DEAD))
    return bad


@pytest.mark.parametrize(("activity", "kwargs"), CALLS, ids=lambda v: getattr(v, "__name__", ""))
def test_an_unreachable_api_server_is_reported_as_such(
    dead_kubeconfig: Path, activity: Callable[..., Any], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ClusterUnreachable) as info:
        activity(configuration={"kubeconfig_path": str(dead_kubeconfig)}, **kwargs)
    assert "127.0.0.1:1" in str(info.value)
