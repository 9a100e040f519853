"""Each fault's experiment, run with ``chaos run --var-file`` against the lab.

Workloads are pause pods in a namespace of the test's own; the CNI and istiod
experiments act on the lab's istio-cni-node and istiod. Journals are checked for
keys and tokens by :func:`tests.chaos_runs.chaos_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from tests.chaos_runs import EXPERIMENTS, assert_caught_or_redirected, chaos_run, outputs
from tests.lab_fixtures import deploy_pause, eventually

NODE = "lab-node-1"


def _completed(run: dict[str, object]) -> None:
    assert run["_exit_code"] == 0, str(run["_stderr"])[-3000:]
    assert run["status"] == "completed", run["status"]
    assert run["deviated"] is False


def _available(api: client.ApiClient, namespace: str, name: str, replicas: int) -> bool:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return bool(dep.spec.replicas == replicas and (dep.status.ready_replicas or 0) == replicas)


def test_istiod_kill_experiment(lab: Path, tmp_path: Path, three_ready: list[Any]) -> None:
    run = chaos_run(
        EXPERIMENTS / "istiod-kill.json",
        lab,
        tmp_path / "journal.json",
        {"istiod_kill_count": 2, "istiod_min_ready": 1, "recovery_timeout_seconds": 90},
    )
    _completed(run)
    kill = outputs(run)["kill-istiod-replicas"]
    assert len(kill["killed"]) == 2 and kill["recovered"] is True, kill
    print(f"istiod 2 of 3 killed: recovered in {kill['recovery_seconds']}s")


def test_cni_restart_experiment(lab: Path, tmp_path: Path) -> None:
    """The race window opens on the canaries' node and the probes say how it went.

    istio-cni-node restarts on lab-node-2 (with lab-node-3, which has no canaries);
    canary sidecar pods are scaled up there meanwhile. The real agent is back within
    about a second, so whether a canary is set up inside the window is the race
    itself: one that is gets no ISTIO_* rules, its istio-validation exits 126 and the
    repair controller (in place, the chart's default) writes them once the agent is
    back. Whichever way each one went, none runs its app without capture, and the
    identity matrix holds throughout.
    """
    run = chaos_run(
        EXPERIMENTS / "cni-restart.json",
        lab,
        tmp_path / "journal.json",
        {"cni_nodes": "lab-node-2,lab-node-3", "recovery_timeout_seconds": 60},
    )
    _completed(run)
    out = outputs(run)
    restart = out["restart-cni-pods"]
    assert [n["node"] for n in restart["nodes"]] == ["lab-node-2", "lab-node-3"]
    assert restart["recovered"] is True
    before = run["steady_states"]["before"]["probes"]
    redirected = next(p for p in before if p["activity"]["name"] == "redirection-in-place")
    assert redirected["output"]["counts"]["caught"] == 0
    during = out["canaries-redirected-or-caught"]
    assert during["holds"] is True and during["counts"]["unredirected"] == 0, during
    assert len(during["pods"]) == 2
    for pod in during["pods"]:
        assert_caught_or_redirected(pod)
    assert out["identity-matrix-during-the-restart"]["holds"] is True
    [rollback] = run["rollbacks"]
    assert rollback["output"]["replicas"] == 0
    print(
        "cni restart: window on lab-node-2 "
        f"{restart['nodes'][0]['seconds_to_ready']}s; canaries: "
        + ", ".join(f"{p['pod']} {p['verdict']} ({p['detail']})" for p in during["pods"])
    )


def test_workload_churn_experiment(
    lab: Path, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    deploy_pause(api, namespace, "web", 2)
    eventually(lambda: _available(api, namespace, "web", 2), 60, "web available")
    run = chaos_run(
        EXPERIMENTS / "workload-churn.json",
        lab,
        tmp_path / "journal.json",
        {
            "workload": "web",
            "workload_namespace": namespace,
            "churn_replicas": 0,
            "restart_cycles": 2,
            "rollout_timeout_seconds": 60,
        },
    )
    _completed(run)
    for phase in ("before", "after"):  # the pack's probe, not chaosk8s's
        [probe] = run["steady_states"][phase]["probes"]
        assert probe["output"]["available"] is True, probe["output"]
        assert probe["output"]["available_replicas"] == 2
    out = outputs(run)
    assert out["scale-workload"]["restore_to"] == 2
    assert out["restore-workload-replicas"]["replicas"] == 2
    assert out["rollout-restart-workload"]["completed_cycles"] == 2
    [rollback] = run["rollbacks"]
    assert rollback["output"]["restored"] is False  # the method restored it already
    assert _available(api, namespace, "web", 2)


def test_ip_recycle_experiment(
    lab: Path, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    deploy_pause(api, namespace, "victim", 2, node=NODE)
    deploy_pause(api, namespace, "hunter", 2, node=NODE)
    for name in ("victim", "hunter"):
        eventually(lambda name=name: _available(api, namespace, name, 2), 60, f"{name} up")
    run = chaos_run(
        EXPERIMENTS / "ip-recycle.json",
        lab,
        tmp_path / "journal.json",
        {
            "victim": "victim",
            "hunter": "hunter",
            "workload_namespace": namespace,
            "hunt_rounds": 10,
            "hunt_timeout_seconds": 120,
        },
    )
    _completed(run)
    hunt = outputs(run)["hunt-recycled-ip"]
    assert hunt["found"] is True, hunt["reason"]
    assert hunt["recycled_ip"] in hunt["victim_ips"]
    print(f"recycled {hunt['recycled_ip']} after {hunt['rounds']} round(s)")
    eventually(lambda: _available(api, namespace, "victim", 2), 60, "victim restored")
