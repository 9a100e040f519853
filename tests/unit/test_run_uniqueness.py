"""Two game days started at once never share a results directory or a metrics temp file;
the game day's Lease goes where the plan's safety nets look; the run Lease's words."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chaosmesh_sec import _lease, _run
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.gameday import lease as gd_lease
from chaosmesh_sec.gameday import run as gd_run
from chaosmesh_sec.gameday.plan import Entry, Plan

pytestmark = pytest.mark.unit


def _at_once(count: int, work: Callable[[], object]) -> list[object]:
    """Run ``work`` in ``count`` threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def one(i: int) -> None:
        barrier.wait()
        results[i] = work()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_game_days_started_at_once_get_a_directory_each(tmp_path: Path) -> None:
    dirs = _at_once(8, lambda: gd_run.run_directory(tmp_path, "plan", "2026-12-04"))
    assert len(set(dirs)) == 8
    assert all(isinstance(d, Path) and d.is_dir() for d in dirs)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["2026-12-04-plan"] + [f"2026-12-04-plan-{n}" for n in range(2, 9)]
    )


def test_metrics_written_at_once_are_each_whole(tmp_path: Path) -> None:
    target = tmp_path / "metrics.prom"
    texts = [f"metric_{i} {i}\n" * 2000 for i in range(8)]
    it = iter(range(8))
    lock = threading.Lock()

    def write() -> None:
        with lock:
            i = next(it)
        gd_run._write_atomically(target, texts[i])

    _at_once(8, write)
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.prom"]  # no temp file left


def _entry(tmp_path: Path, index: int, declared: object, **kw: object) -> Entry:
    path = tmp_path / f"e{index}.json"
    config = {} if declared is None else {"fault_namespace": declared}
    path.write_text(__import__("json").dumps({"title": "t", "configuration": config}))
    return Entry(index, path, "t", **kw)  # type: ignore[arg-type]


def test_the_game_days_lease_goes_where_its_experiments_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CMS_FAULT_NAMESPACE", raising=False)
    env = {"type": "env", "key": "CMS_FAULT_NAMESPACE", "default": "default"}
    plan = Plan("p", (_entry(tmp_path, 1, env), _entry(tmp_path, 2, None)))
    assert gd_lease.lease_place(plan, (), {}) == ("default", None)
    monkeypatch.setenv("CMS_FAULT_NAMESPACE", "faults")
    assert gd_lease.lease_place(plan, (), {})[0] == "faults"
    given = {"fault_namespace": "given", "kubeconfig_path": "/k"}
    assert gd_lease.lease_place(plan, (), given) == ("given", {"kubeconfig_path": "/k"})
    none = Plan("p", (_entry(tmp_path, 3, None),))
    assert gd_lease.lease_place(none, (), {})[0] == _run.FAULT_NAMESPACE
    apart = Plan(
        "p", (_entry(tmp_path, 4, "a"), _entry(tmp_path, 5, "b", vars={"fault_namespace": "c"}))
    )
    with pytest.raises(InvalidInput, match="different fault namespaces"):
        gd_lease.lease_place(apart, (), {})


def _lease_object(holder: str, renewed_ago: float, acquired_ago: float = 100) -> object:
    now = datetime.now(UTC)
    return types.SimpleNamespace(
        metadata=types.SimpleNamespace(
            annotations={
                _lease.RUN_ID: "0123456789ab",
                _lease.HOST: "h",
                _lease.PID: "42",
                _lease.RUNS: "chaos run: x",
            },
            resource_version="7",
        ),
        spec=types.SimpleNamespace(
            holder_identity=holder,
            lease_duration_seconds=_lease.LEASE_SECONDS,
            acquire_time=now - timedelta(seconds=acquired_ago),
            renew_time=now - timedelta(seconds=renewed_ago),
            lease_transitions=0,
        ),
    )


def test_the_holder_is_named_with_its_age() -> None:
    text = _lease.describe(_lease_object("0123456789ab@h:42", renewed_ago=5))
    for part in ("run 0123456789ab", "host h", "pid 42", "chaos run: x", "took it 100 s ago"):
        assert part in text
    assert "expires in 25 s" in text


def test_expiry_is_the_last_renewal_plus_the_duration() -> None:
    live, dead = _lease_object("x", renewed_ago=29), _lease_object("x", renewed_ago=31)
    now = datetime.now(UTC)
    assert _lease._expires_at(live) > now > _lease._expires_at(dead)  # type: ignore[operator]
    assert _lease._expires_at(_lease_object("", renewed_ago=1)) is None  # released: free


def test_micro_time_always_has_a_fraction() -> None:
    whole = datetime(2026, 12, 4, 18, 0, 0, tzinfo=UTC)
    assert _lease._micro(whole).microsecond == 1
    assert _lease._micro(whole.replace(microsecond=5)).microsecond == 5


def test_run_ids_are_not_partition_ids() -> None:
    from chaosmesh_sec.faults._partition_rules import is_run_id as is_partition_id
    from chaosmesh_sec.faults._partition_rules import new_run_id as new_partition_id

    rid = _run.new_run_id()
    assert _run.is_run_id(rid) and not is_partition_id(rid)
    assert not _run.is_run_id(new_partition_id())
    first = _run.begin_run()
    assert _run.run_id() == first
    _run.end_run()
    assert _run.run_id() != first
