"""The heal recognises only the pack's own fault pods (pure), validates its inputs before
any API call, and the safety net records any failure so that the game day exits 3."""

from typing import Any

import pytest
from kubernetes import client as k8s

from chaosmesh_sec.controls import safety_net
from chaosmesh_sec.errors import InvalidInput, RollbackFailed
from chaosmesh_sec.faults import apiserver_partition as ap
from chaosmesh_sec.faults._ledger import FAULT_LABEL, RUN_LABEL
from chaosmesh_sec.faults._partition_pod import run_id_of
from chaosmesh_sec.faults._partition_rules import Endpoint, plan
from chaosmesh_sec.gameday.verdict import EXIT_HELD, EXIT_ROLLBACK_FAILED, journal_exit_code
from chaosmesh_sec.journal import SAFETY_NET_EXTENSION


def _real() -> k8s.V1Pod:
    return ap._fault_pod(plan("0123abcd", "host", [Endpoint("10.0.0.1", 443)], 30), "n1", "img")


def test_a_fault_pod_the_pack_made_is_recognised_and_carries_no_script() -> None:
    pod = _real()
    assert run_id_of(pod) == ("0123abcd", "")
    assert not (pod.metadata.annotations or {})  # nothing for a heal to read back and run


def _with(change: Any) -> k8s.V1Pod:
    pod = _real()
    change(pod)
    return pod


@pytest.mark.parametrize(
    ("pod", "why"),
    [
        (_with(lambda p: p.metadata.labels.pop(RUN_LABEL)), RUN_LABEL),
        (_with(lambda p: p.metadata.labels.update({RUN_LABEL: "$(id)"})), RUN_LABEL),
        (_with(lambda p: p.metadata.labels.update({FAULT_LABEL: "scale"})), FAULT_LABEL),
        (_with(lambda p: p.metadata.labels.pop("app.kubernetes.io/name")), FAULT_LABEL),
        (_with(lambda p: setattr(p.metadata, "name", "cms-partition-other")), "name"),
        (_with(lambda p: setattr(p.spec, "host_network", False)), "hostNetwork"),
        (_with(lambda p: p.spec.containers.append(k8s.V1Container(name="x"))), "container"),
        (_with(lambda p: setattr(p.metadata, "labels", None)), RUN_LABEL),
    ],
    ids=["no-run-id", "bad-run-id", "kind", "name-label", "name", "host", "containers", "none"],
)
def test_a_pod_not_of_the_packs_shape_is_a_stranger(pod: k8s.V1Pod, why: str) -> None:
    run_id, reason = run_id_of(pod)
    assert run_id == "" and why in reason


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"node": "Bad_Node"}, "node"),
        ({"node": 3}, "node"),
        ({"run_id": "0123abc"}, "run_id"),
        ({"run_id": "x; touch /tmp/p"}, "run_id"),
        ({"run_id": 12345678}, "run_id"),
        ({"fault_namespace": ""}, "fault_namespace"),
        ({"fault_namespace": "Bad"}, "fault_namespace"),
    ],
)
def test_heal_apiserver_partition_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        ap.heal_apiserver_partition(**kwargs)
    assert info.value.name == bad_input


def _journal(record: dict[str, Any]) -> dict[str, Any]:
    return {"status": "completed", "deviated": False, "run": [], "extensions": [record]}


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("boom"),
        KeyError("chaosmesh-sec.io/run-id"),
        RollbackFailed("partition heal: x: not deleted", result={"failed": ["x"]}),
    ],
    ids=["runtime", "keyerror", "rollback-failed"],
)
def test_the_safety_net_records_any_failure_and_the_game_day_exits_3(
    monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    """A mock: heal_leftovers raising something other than the pack's errors is not a state
    the lab can be put in on purpose."""

    def failing(**kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(safety_net, "heal_leftovers", failing)
    state: dict[str, Any] = {}
    safety_net.after_experiment_control(None, state)
    [record] = state["extensions"]
    assert record["name"] == SAFETY_NET_EXTENSION and record["error"]
    if isinstance(exc, RollbackFailed):
        assert record["healed"] == {"failed": ["x"]}
    assert journal_exit_code(_journal(record)) == EXIT_ROLLBACK_FAILED


def test_the_safety_net_heals_in_the_experiments_fault_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def heal(**kwargs: Any) -> Any:
        seen.append(kwargs["fault_namespace"])
        return {"nothing_left": True}

    monkeypatch.setattr(safety_net, "heal_leftovers", heal)
    state: dict[str, Any] = {}
    safety_net.after_experiment_control(None, state, configuration={"fault_namespace": "lab"})
    safety_net.after_experiment_control(None, state, configuration={})
    safety_net.after_experiment_control(None, state, fault_namespace="given")
    assert seen == ["lab", "chaosmesh-sec-faults", "given"]
    assert journal_exit_code(_journal(state["extensions"][0])) == EXIT_HELD


def test_an_expired_partition_is_not_counted_as_left_in_effect() -> None:
    from chaosmesh_sec.faults.leftovers import _still_in_effect

    expired = {"healed": [], "ended": [], "failed": [], "expired": [{"run_id": "0123abcd"}]}
    assert not _still_in_effect(expired)
    assert _still_in_effect({**expired, "healed": [{"run_id": "0123abcd"}]})
    assert not _still_in_effect(None)


def test_heal_leftovers_tries_every_entry_and_records_any_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mock: the lab cannot make a heal raise a non-pack exception on demand."""
    from chaosmesh_sec.faults import leftovers

    def partition(**kwargs: Any) -> Any:
        raise RuntimeError("not the pack's")

    entries = [
        {"name": n, "namespace": "a", "changed_by": "t", "changed_at": "t", "run_id": None}
        for n in ("x", "y")
    ]
    restored: list[str] = []

    def restore(name: str, **kwargs: Any) -> Any:
        if name == "x":
            raise ValueError("bad")
        restored.append(name)
        return {"replicas": 1, "previous_replicas": 0}

    monkeypatch.setattr(leftovers, "heal_apiserver_partition", partition)
    monkeypatch.setattr(leftovers, "apps_v1", lambda *a: None)
    monkeypatch.setattr(leftovers._ledger, "pending_replicas", lambda *a: entries)
    monkeypatch.setattr(leftovers, "restore_replicas", restore)
    monkeypatch.setattr(leftovers, "_clear_recycled", lambda *a: None)
    with pytest.raises(RollbackFailed) as info:
        leftovers.heal_leftovers()
    assert restored == ["y"]
    assert "RuntimeError" in str(info.value) and "a/x: ValueError" in str(info.value)
    assert info.value.result is not None and len(info.value.result["failed"]) == 2


def _matrix_run(fail_open: bool) -> dict[str, Any]:
    return {
        "activity": {
            "type": "probe",
            "provider": {"module": "chaosmesh_sec.probes.matrix", "func": "identity_matrix"},
        },
        "status": "succeeded",
        "output": {"holds": not fail_open, "cells": [{"fail_open": fail_open}]},
    }


@pytest.mark.parametrize("phase", ["method", "rollbacks", "after"])
def test_a_fail_open_in_any_phase_marks_the_run_deviated(
    monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    """``chaos run`` exits non-zero on ``deviated``; the safety net sets it from the journal
    chaoslib hands its after-experiment control (the heal itself is a stand-in here)."""
    monkeypatch.setattr(safety_net, "heal_leftovers", lambda **kw: {"nothing_left": True})
    journal: dict[str, Any] = {"status": "completed", "deviated": False, "run": [], "rollbacks": []}
    if phase == "after":
        journal["steady_states"] = {"after": {"probes": [_matrix_run(True)]}}
    else:
        journal[phase if phase == "rollbacks" else "run"] = [_matrix_run(True)]
    safety_net.after_experiment_control(None, journal)
    assert journal["deviated"] is True
    assert journal["extensions"][0]["fail_open_cells"] == 1

    clean: dict[str, Any] = {"status": "completed", "deviated": False, "run": [_matrix_run(False)]}
    safety_net.after_experiment_control(None, clean)
    assert clean["deviated"] is False


def test_heal_leftovers_with_no_reachable_api_server_says_so(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosmesh_sec.errors import ClusterUnreachable
    from chaosmesh_sec.faults import leftovers
    from tests.recorder import Recorder

    monkeypatch.delenv("KUBECONFIG", raising=False)
    with Recorder(tmp_path) as rec:  # only its kubeconfig, pointed where nothing listens
        dead = tmp_path / "dead"
        dead.write_text(rec.kubeconfig.read_text().replace(rec.server_url, "https://127.0.0.1:1"))
    with pytest.raises(ClusterUnreachable, match=r"127\.0\.0\.1:1"):
        leftovers.heal_leftovers(configuration={"kubeconfig_path": str(dead)})
