"""One run at a time, through ``chaos run`` as a user runs it, with the lab's API server.

A run that finds the Lease held stops before its steady state (journal ``interrupted``,
exit 1, the holder named); a run SIGKILLed mid-fault leaves its Lease, which refuses the
next run until it expires on its own, and then the next run starts. Waits are on the
Lease's and the pods' state, never on a clock.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec import _lease, _run
from chaosmesh_sec.faults._ledger import FAULT_LABEL, OWNER_LABEL
from chaosmesh_sec.journal import SAFETY_NET_EXTENSION, safety_net_records
from tests.chaos_runs import BIN, EXPERIMENTS, chaos_run
from tests.lab_fixtures import eventually

pytestmark = pytest.mark.e2e

FAULTS = _run.FAULT_NAMESPACE  # the shipped experiments' default fault_namespace
# The cheapest shipped experiment that declares the safety net (no fault: probes only).
# smoke.json declares none: it changes nothing, so it takes no Lease.
POSTURE = EXPERIMENTS / "posture.json"


def _lease_now(api: client.ApiClient) -> Any:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(_lease.LEASE_NAME, FAULTS)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _record(run: dict[str, Any]) -> dict[str, Any]:
    [record] = safety_net_records(run)
    assert record["name"] == SAFETY_NET_EXTENSION
    return dict(record)


def _partition_run_in_force(
    lab: Path,
    api: client.ApiClient,
    core: client.CoreV1Api,
    journal: Path,
    variables: dict[str, Any],
) -> tuple[subprocess.Popen[bytes], str]:
    """``chaos run`` the partition experiment in the background with ``variables``; once
    it holds the Lease and its fault pod is there: the process and the run's id."""
    var_file = journal.with_suffix(".vars.json")
    var_file.write_text(json.dumps({"configuration": variables}))
    proc = subprocess.Popen(
        [str(BIN / "chaos"), "--no-version-check", "run", "--journal-path", str(journal),
         "--var-file", str(var_file), str(EXPERIMENTS / "apiserver-partition.json")],
        env={**os.environ, "KUBECONFIG": str(lab)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        lease = eventually(
            lambda: (
                (now := _lease_now(api)) is not None
                and now.metadata.annotations.get(_lease.PID) == str(proc.pid)
                and now
            ),
            120,
            "the run to take the Lease",
        )
        run_id = str(lease.metadata.annotations[_lease.RUN_ID])
        eventually(
            lambda: (
                core.list_namespaced_pod(
                    FAULTS, label_selector=f"{FAULT_LABEL},{OWNER_LABEL}={run_id}"
                ).items
            ),
            120,
            "the run's partition fault pod",
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, run_id


def test_a_second_run_is_refused_before_its_steady_state_naming_the_holder(
    lab: Path, api: client.ApiClient, tmp_path: Path
) -> None:
    holder = _lease.Holder.this_process("0123456789ab", "game day someone-else")
    held = _lease.take(api, FAULTS, holder)
    try:
        run = chaos_run(POSTURE, lab, tmp_path / "refused.json")
    finally:
        _lease.release(api, held)
    assert run["_exit_code"] == 1 and run["status"] == "interrupted"
    assert run["steady_states"]["before"] is None and run["run"] == []  # nothing probed
    refused = _record(run)["lease"]["refused"]
    for part in ("run 0123456789ab", f"pid {os.getpid()}", "game day someone-else", "took it"):
        assert part in refused
    assert "another run holds" in run["_stderr"] or "may not start" in run["_stderr"]

    free = chaos_run(POSTURE, lab, tmp_path / "free.json")  # released: the next run starts
    assert free["_exit_code"] == 0, free["_stderr"][-2000:]
    lease = _record(free)["lease"]
    assert lease["holder"].startswith(_record(free)["run_id"]) and lease["release"] == "released"
    assert _lease_now(api) is None


def test_after_a_sigkill_the_lease_expires_and_a_new_run_starts(
    lab: Path, api: client.ApiClient, core: client.CoreV1Api, tmp_path: Path
) -> None:
    killed, killed_run = _partition_run_in_force(
        lab, api, core, tmp_path / "killed.json", {"partition_seconds": 8, "hold_seconds": 4}
    )
    killed.kill()  # SIGKILL: no rollback, no safety net, no release
    killed.wait()
    try:
        left = _lease_now(api)  # as the killed run left it: no renewal after this
        assert left is not None and left.spec.holder_identity.startswith(killed_run)
        ends = _lease._expires_at(left)
        assert ends is not None
        refused = chaos_run(POSTURE, lab, tmp_path / "refused.json")
        if refused["status"] == "interrupted":  # asked while the Lease was live: by name
            assert refused["_exit_code"] == 1
            assert f"run {killed_run}" in _record(refused)["lease"]["refused"]
        else:  # it took the Lease over: only once it had expired (this machine's clock)
            taken = datetime.fromisoformat(_record(refused)["lease"]["acquired"])
            assert taken >= ends

        def expired() -> bool:
            now = _lease_now(api)
            if now is None:
                return True
            ends = _lease._expires_at(now)
            return ends is None or ends < datetime.now(UTC)

        eventually(expired, _lease.LEASE_SECONDS * 3, "the killed run's Lease to expire")
        started = chaos_run(POSTURE, lab, tmp_path / "started.json")
        assert started["_exit_code"] == 0, started["_stderr"][-2000:]
        record = _record(started)
        assert record["lease"]["release"] == "released" and record["run_id"] != killed_run
    finally:  # the killed run's fault pod (its rules removed themselves): every run's heal
        subprocess.run(
            [str(BIN / "chaosmesh-sec"), "rollback", "--kubeconfig", str(lab),
             "--fault-namespace", FAULTS],
            capture_output=True, check=False, timeout=180,
        )  # fmt: skip
    assert _lease_now(api) is None


def test_two_partition_runs_on_two_nodes_the_second_is_refused_and_the_first_keeps_its_cut(
    lab: Path, api: client.ApiClient, core: client.CoreV1Api, tmp_path: Path
) -> None:
    """The issue's case: two runs on two nodes at once. The second is refused before its
    steady state, naming the first; the first's partition is still in force when its own
    rollback heals it (nobody else healed it), and the first run completes."""
    first_journal = tmp_path / "first.json"
    first, first_run = _partition_run_in_force(
        lab,
        api,
        core,
        first_journal,
        {"target_node": "lab-node-2", "partition_seconds": 60, "hold_seconds": 6},
    )
    try:
        second = chaos_run(
            EXPERIMENTS / "apiserver-partition.json",
            lab,
            tmp_path / "second.json",
            {"target_node": "lab-node-3", "partition_seconds": 5, "hold_seconds": 2},
        )
        assert second["_exit_code"] == 1 and second["status"] == "interrupted"
        assert second["run"] == [] and second["steady_states"]["before"] is None
        assert f"run {first_run}" in _record(second)["lease"]["refused"]
        assert first.wait(timeout=240) == 0
    finally:
        if first.poll() is None:
            first.terminate()  # its safety net heals and releases
            first.wait(timeout=120)
    done = json.loads(first_journal.read_text())
    assert done["status"] == "completed"
    [heal] = [r for r in done["rollbacks"] if r["activity"]["name"] == "heal-apiserver-partition"]
    healed = heal["output"]["healed"]
    assert [h["owner_run"] for h in healed] == [first_run]  # still in force: its own heal
    assert _record(done)["run_id"] == first_run
    assert _lease_now(api) is None
