"""The safety net's preflight, and the stop of a method whose fault action failed.

The preflight's checks are the activities' own (``_validate.checks``); these tests show
that each public activity declares one, that the shipped experiments pass it as they
are, that a bad value is refused naming the activity and the input, and, through
``chaos run`` against a recording API server (``tests/recorder.py``: every request is
answered 403 and remembered), that a refused run makes no request at all and exits 1,
and that a fault action that fails stops the method while the rollbacks still run.
"""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chaoslib.configuration import load_configuration
from chaoslib.exceptions import InterruptExecution

import chaosmesh_sec
from chaosmesh_sec import _validate
from chaosmesh_sec._lease import LEASE_NAME
from chaosmesh_sec._run import FAULT_NAMESPACE, HOLDER_ENV
from chaosmesh_sec.controls import _preflight, _stops
from chaosmesh_sec.gameday.verdict import EXIT_NOT_APPLIED, journal_exit_code
from chaosmesh_sec.journal import safety_net_records
from tests.chaos_runs import EXPERIMENTS, chaos_run
from tests.recorder import Recorder

SAFETY_NET = {
    "name": "chaosmesh-sec-safety-net",
    "provider": {"type": "python", "module": "chaosmesh_sec.controls.safety_net"},
}


def _activities() -> list[tuple[str, Any]]:
    found = []
    for item in chaosmesh_sec.discover()["activities"]:
        module = __import__(item["mod"], fromlist=[item["name"]])
        found.append((item["name"], getattr(module, item["name"])))
    return found


@pytest.mark.parametrize(("name", "func"), _activities(), ids=lambda x: str(x)[:40])
def test_every_public_activity_declares_its_input_check(name: str, func: Any) -> None:
    check = _validate.check_of(func)
    assert check is not None, f"{name} declares no input check (_validate.checks)"
    inputs = [
        p for p in inspect.signature(func).parameters if p not in ("configuration", "secrets")
    ]
    params = inspect.signature(check).parameters
    named = [p for p, v in params.items() if v.kind is not inspect.Parameter.VAR_KEYWORD]
    if len(named) == len(params):
        assert named == inputs, f"{name}: its check takes {named}, the activity {inputs}"
    else:  # the rest by name (**shared)
        assert set(named) <= set(inputs), f"{name}: its check takes {named} not all its own"


def _configuration(experiment: dict[str, Any], **given: Any) -> dict[str, Any]:
    return dict(load_configuration(experiment.get("configuration", {}), given or None))


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.json")), ids=lambda p: p.stem)
def test_each_shipped_experiment_passes_the_preflight_as_it_is(path: Path) -> None:
    experiment = json.loads(path.read_text())
    assert list(_preflight.pack_activities(experiment)), "no pack activity found"
    assert _preflight.refusals(experiment, _configuration(experiment), None) == []


@pytest.mark.parametrize(
    ("experiment", "var", "value", "activity", "input_name"),
    [
        (
            "istiod-kill",
            "recovery_timeout_seconds",
            "abc",
            "kill-istiod-replicas",
            "timeout_seconds",
        ),
        ("istiod-kill", "istiod_min_ready", -5, "istiod-replicas-ready", "min_ready"),
        (
            "apiserver-partition",
            "partition_seconds",
            0,
            "partition-node-from-apiserver",
            "duration_seconds",
        ),
        (
            "apiserver-partition",
            "fault_namespace",
            "Bad_NS",
            "partition-node-from-apiserver",
            "fault_namespace",
        ),
        ("workload-churn", "churn_replicas", "yes", "scale-workload", "replicas"),
        (
            "apiserver-partition",
            "hold_seconds",
            "abc",
            "partition-node-from-apiserver",
            "pauses.after",
        ),
    ],
)
def test_a_bad_var_is_refused_naming_the_activity_and_the_input(
    experiment: str, var: str, value: Any, activity: str, input_name: str
) -> None:
    loaded = json.loads((EXPERIMENTS / f"{experiment}.json").read_text())
    found = _preflight.refusals(loaded, _configuration(loaded, **{var: value}), None)
    assert found, "the bad value was let through"
    assert (found[0].activity, found[0].input) == (activity, input_name), found
    assert activity in found[0].message() and input_name in found[0].message()


def test_every_phase_is_checked_and_a_reference_is_resolved() -> None:
    bad_ready = {"min_ready": "two"}
    experiment = {
        "steady-state-hypothesis": {
            "title": "t",
            "probes": [_probe("ready-before", bad_ready)],
        },
        "method": [_kill("kill", {"count": 0}), _probe("ready-during", bad_ready)],
        "rollbacks": [{"ref": "kill"}],
    }
    found = _preflight.refusals(experiment, {}, None)
    assert [(r.phase, r.activity, r.input) for r in found] == [
        ("steady-state-hypothesis", "ready-before", "min_ready"),
        ("method", "kill", "count"),
        ("method", "ready-during", "min_ready"),
        ("rollbacks", "kill", "count"),
    ]


def test_an_argument_the_activity_does_not_take_is_refused() -> None:
    found = _preflight.refusals({"method": [_kill("kill", {"cuont": 1})]}, {}, None)
    assert [(r.activity, r.input) for r in found] == [("kill", "cuont")]


def test_activities_of_other_extensions_are_left_to_them() -> None:
    other = {
        "type": "probe",
        "name": "k8s",
        "provider": {"type": "python", "module": "chaosk8s.pod.probes", "func": "pods_in_phase"},
    }
    assert list(_preflight.pack_activities({"method": [other]})) == []


def test_what_counts_as_a_fault_action() -> None:
    assert _stops.is_fault_action(_kill("kill", {}))
    assert not _stops.is_fault_action(_probe("ready", {}))
    process = {"type": "action", "name": "p", "provider": {"type": "process", "path": "true"}}
    assert not _stops.is_fault_action(process)


# ---------------------------------------------------------------- through chaos run

GAME_DAY = "0123456789ab@recorder/1 game day"


def _game_days_lease() -> bytes:
    """A live run Lease held by :data:`GAME_DAY`, as the API server would return it."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": FAULT_NAMESPACE, "resourceVersion": "7"},
        "spec": {
            "holderIdentity": GAME_DAY,
            "leaseDurationSeconds": 30,
            "acquireTime": now,
            "renewTime": now,
        },
    }
    return json.dumps(lease).encode()


def test_chaos_run_with_a_bad_var_stops_before_the_steady_state_with_no_request(
    tmp_path: Path,
) -> None:
    """The shipped istiod-kill experiment, a duration "abc": exit 1, interrupted, no
    probe run, and the recording API server saw no request at all."""
    with Recorder(tmp_path) as rec:
        run = chaos_run(
            EXPERIMENTS / "istiod-kill.json",
            rec.kubeconfig,
            tmp_path / "journal.json",
            {"recovery_timeout_seconds": "abc"},
        )
        assert rec.seen == [], f"requests were made: {rec.seen[:5]}"
    assert run["_exit_code"] == 1
    assert run["status"] == "interrupted"
    assert run["steady_states"]["before"] is None
    assert run["run"] == [] and run["rollbacks"] == []
    (record,) = safety_net_records(run)
    (refusal,) = record["preflight"]["refused"]
    assert refusal["activity"] == "kill-istiod-replicas"
    assert refusal["input"] == "timeout_seconds"
    assert record["healed"] is None  # nothing was changed: no heal
    assert journal_exit_code(run) == EXIT_NOT_APPLIED  # the game day: not applied
    assert "timeout_seconds" in run["_stderr"] and "kill-istiod-replicas" in run["_stderr"]


def test_a_failed_fault_action_stops_the_method_and_the_rollbacks_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault action the API refuses (the recorder answers 403) fails: the method's next
    activity is not run, the rollbacks are, the run is aborted and exits 1.

    The run Lease is answered as a game day's the run joins (a read, no write), so that
    the run begins; the lab e2e (tests/e2e/test_stops.py) shows the same with a real
    Lease and a real fault failing."""
    monkeypatch.setenv(HOLDER_ENV, GAME_DAY)
    after, rolled_back = tmp_path / "after-the-fault", tmp_path / "rolled-back"
    experiment = {
        "version": "1.0.0",
        "title": "a fault that fails",
        "description": "d",
        "controls": [SAFETY_NET],
        "method": [
            _kill("kill", {"count": 1}),
            _touch("next-activity", after),
        ],
        "rollbacks": [_touch("rollback", rolled_back)],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{FAULT_NAMESPACE}/leases/{LEASE_NAME}"
    with Recorder(tmp_path, answers={("GET", lease): (200, _game_days_lease())}) as rec:
        run = chaos_run(path, rec.kubeconfig, tmp_path / "journal.json")
    assert run["_exit_code"] == 1
    assert run["status"] == "aborted"
    assert [r["activity"]["name"] for r in run["run"]] == ["kill"]
    assert run["run"][0]["status"] == "failed"
    assert not after.exists(), "a method activity ran after the failed fault"
    assert rolled_back.exists(), "the rollbacks did not run"
    assert [r["activity"]["name"] for r in run["rollbacks"]] == ["rollback"]
    (record,) = safety_net_records(run)
    assert record["stopped"] == {"phase": "method", "activity": "kill", "status": "aborted"}
    assert journal_exit_code(run) >= EXIT_NOT_APPLIED


def _probe(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": name,
        "tolerance": True,
        "provider": {
            "type": "python",
            "module": "chaosmesh_sec.probes.control_plane",
            "func": "istiod_replicas_ready",
            "arguments": arguments,
        },
    }


def _kill(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {
            "type": "python",
            "module": "chaosmesh_sec.faults.istiod",
            "func": "kill_istiod_replicas",
            "arguments": arguments,
        },
    }


def _touch(name: str, path: Path) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {"type": "process", "path": "touch", "arguments": str(path)},
    }


def test_an_experiment_the_preflight_cannot_read_stops_the_run_too() -> None:
    with pytest.raises(InterruptExecution, match="preflight"):
        _preflight.preflight({"steady-state-hypothesis": ["not", "a", "mapping"]}, {}, None)
    assert _preflight.refused()[0].phase == "experiment"
