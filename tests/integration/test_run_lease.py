"""The run Lease against the lab's API server: one run at a time, decided by the server.

Each test takes the Lease in a namespace of its own (the ``namespace`` fixture), so no
real run in the lab is refused while it runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from chaosmesh_sec import _lease, _run
from chaosmesh_sec.errors import RunRefused

pytestmark = pytest.mark.integration


def _holder(what: str) -> _lease.Holder:
    return _lease.Holder.this_process(_run.new_run_id(), what)


def _lease_of(api: client.ApiClient, namespace: str) -> client.V1Lease | None:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(_lease.LEASE_NAME, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_two_runs_started_at_once_exactly_one_wins(
    lab: Path, api: client.ApiClient, namespace: str
) -> None:
    holders = [_holder(f"run {i}") for i in range(6)]
    barrier = threading.Barrier(len(holders))
    outcomes: list[object] = [None] * len(holders)

    def start(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = _lease.take(api, namespace, holders[i])
        except RunRefused as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(holders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if isinstance(o, _lease.Held)]
    refused = [o for o in outcomes if isinstance(o, RunRefused)]
    assert len(won) == 1 and len(refused) == len(holders) - 1, outcomes
    winner = won[0]
    for exc in refused:  # each names the holder: run id, host, pid, what it runs, its age
        text = str(exc)
        assert f"run {winner.holder.run_id}" in text and winner.holder.runs in text
        assert f"pid {winner.holder.pid}" in text and "took it" in text
    lease = _lease_of(api, namespace)
    assert lease is not None and lease.spec.holder_identity == winner.identity

    assert _lease.release(api, winner) == "released"
    assert _lease_of(api, namespace) is None
    after = _lease.take(api, namespace, holders[0])  # free again: the next run starts
    assert _lease.release(api, after) == "released"


def test_a_game_days_child_joins_and_leaves_the_lease_to_it(
    lab: Path, api: client.ApiClient, namespace: str
) -> None:
    gameday = _lease.take(api, namespace, _holder("game day g"))
    child = _lease.take(api, namespace, _holder("chaos run: c"), join=gameday.identity)
    assert child.joined and child.identity == gameday.identity
    with pytest.raises(RunRefused, match="game day g"):  # a stranger is still refused
        _lease.take(api, namespace, _holder("chaos run: d"), join="someone-else")
    assert _lease.release(api, child).startswith("joined")
    assert _lease_of(api, namespace) is not None  # the game day still holds it
    assert _lease.renew(api, gameday)
    assert _lease.release(api, gameday) == "released"


def test_an_expired_lease_is_taken_over_and_a_lost_one_is_not_released(
    lab: Path, api: client.ApiClient, namespace: str
) -> None:
    dead = _lease.take(api, namespace, _holder("killed run"))
    lease = _lease_of(api, namespace)
    assert lease is not None
    past = datetime.now(UTC) - timedelta(seconds=_lease.LEASE_SECONDS + 5)
    lease.spec.renew_time = _lease._micro(past)  # the run died 35 s ago: no renewal since
    client.CoordinationV1Api(api).replace_namespaced_lease(_lease.LEASE_NAME, namespace, lease)

    new = _lease.take(api, namespace, _holder("next run"))
    taken = _lease_of(api, namespace)
    assert taken is not None and taken.spec.holder_identity == new.identity
    assert taken.spec.lease_transitions == 1
    assert not _lease.renew(api, dead) and "next run" in dead.lost  # it knows it lost it
    assert _lease.release(api, dead).startswith("not released")
    assert _lease_of(api, namespace) is not None
    assert _lease.release(api, new) == "released"
