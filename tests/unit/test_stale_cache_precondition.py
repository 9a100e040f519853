"""The IP hunt's stale-cache precondition (pure): which holder of a recycled IP tells the
story, read from the partition fault pods' stamps the way the hunt reads them.

The pods here are plain Kubernetes model objects, built as the API returns them; what is
judged is the pack's reading of them, not anything they were told to return.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client as k8s

from chaosmesh_sec.faults import _cut
from chaosmesh_sec.faults import apiserver_partition as ap
from chaosmesh_sec.faults._ledger import FAULT_LABEL
from chaosmesh_sec.faults._partition_rules import Endpoint, plan

CUT = datetime(2026, 12, 3, 10, 0, 0, 400_000, tzinfo=UTC)  # rules in at .4 s


def _fault_pod(
    node: str, effective: datetime, seconds: int = 60, phase: str = "Running"
) -> k8s.V1Pod:
    """The pod the partition fault makes, stamped and in ``phase`` as the API returns it."""
    pod = ap._fault_pod(plan("abcd1234", "host", [Endpoint("10.0.0.1", 443)], seconds), node, "i")
    pod.metadata.annotations = {
        _cut.EFFECTIVE_AT: _cut.stamp(effective.timestamp()),
        _cut.SELF_HEALS_AT: _cut.stamp((effective + timedelta(seconds=seconds)).timestamp()),
    }
    pod.status = k8s.V1PodStatus(phase=phase)
    return pod


def _holder(created: datetime) -> k8s.V1Pod:
    # creationTimestamp as the API server writes it: whole seconds
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name="sleep-v2-x", creation_timestamp=created.replace(microsecond=0)
        )
    )


def _precondition(
    *cuts: _cut.Cut, nodes: tuple[str, ...] = ("lab-node-2",)
) -> _cut.StaleCachePrecondition:
    return _cut.StaleCachePrecondition("app=helloworld", "default", nodes, cuts)


def test_a_fault_pod_stamp_reads_back_as_its_cut() -> None:
    cut = _cut.cut_of(_fault_pod("lab-node-2", CUT), CUT + timedelta(seconds=1))
    assert cut is not None
    assert (cut.node, cut.run_id, cut.effective_at) == ("lab-node-2", "abcd1234", CUT)


def test_a_cut_not_in_force_is_no_cut() -> None:
    later = CUT + timedelta(seconds=1)
    assert _cut.cut_of(_fault_pod("n", CUT, phase="Succeeded"), later) is None  # expired itself
    assert _cut.cut_of(_fault_pod("n", CUT, seconds=1), CUT + timedelta(seconds=2)) is None
    unstamped = _fault_pod("n", CUT)
    unstamped.metadata.annotations = {}
    assert _cut.cut_of(unstamped, later) is None  # applying, or all_ports: start unknown
    garbled = _fault_pod("n", CUT)
    garbled.metadata.annotations[_cut.EFFECTIVE_AT] = "yesterday"
    assert _cut.cut_of(garbled, later) is None


def _stranger(change: Callable[[k8s.V1Pod], object]) -> k8s.V1Pod:
    pod = _fault_pod("lab-node-2", CUT)
    change(pod)
    return pod


@pytest.mark.parametrize(
    "pod",
    [
        _stranger(lambda p: p.metadata.labels.update({FAULT_LABEL: "scale"})),
        _stranger(lambda p: p.metadata.labels.pop("app.kubernetes.io/name")),
        _stranger(lambda p: setattr(p.metadata, "name", "cms-partition-other")),
        _stranger(lambda p: setattr(p.spec, "host_network", None)),
        _stranger(lambda p: p.spec.containers.append(k8s.V1Container(name="x"))),
    ],
    ids=["kind", "name-label", "name", "not-host-network", "containers"],
)
def test_a_stamped_pod_not_of_the_packs_shape_is_no_cut(pod: k8s.V1Pod) -> None:
    """The heal's own check decides: a labelled, stamped, Running stranger tells no story."""
    later = CUT + timedelta(seconds=1)
    assert _cut.cut_of(_fault_pod("lab-node-2", CUT), later) is not None
    assert _cut.cut_of(pod, later) is None


def test_an_owner_created_before_the_cut_is_not_the_story() -> None:
    cut = _cut.cut_of(_fault_pod("lab-node-2", CUT), CUT + timedelta(seconds=1))
    assert cut is not None
    pre = _precondition(cut)
    now = CUT + timedelta(seconds=5)
    assert not pre.admits(_holder(CUT - timedelta(seconds=3)), now)
    # created in the very second the cut began: it may predate it, so it does not count
    assert not pre.admits(_holder(CUT), now)
    assert pre.admits(_holder(CUT + timedelta(seconds=1)), now)


def test_an_owner_found_after_the_cut_ended_is_not_the_story() -> None:
    cut = _cut.cut_of(_fault_pod("lab-node-2", CUT, seconds=10), CUT + timedelta(seconds=1))
    assert cut is not None
    holder = _holder(CUT + timedelta(seconds=2))
    assert _precondition(cut).admits(holder, CUT + timedelta(seconds=9))
    assert not _precondition(cut).admits(holder, CUT + timedelta(seconds=11))


def test_every_node_must_be_cut_and_the_latest_cut_counts() -> None:
    early = _cut.Cut("lab-node-2", "a", CUT, CUT + timedelta(minutes=5))
    late = _cut.Cut("lab-node-3", "b", CUT + timedelta(seconds=10), CUT + timedelta(minutes=5))
    nodes = ("lab-node-2", "lab-node-3")
    half = _precondition(early, nodes=nodes)
    assert half.missing == ["lab-node-3"]
    assert "lab-node-3" in (half.why_not() or "")
    assert not half.admits(_holder(CUT + timedelta(seconds=20)), CUT + timedelta(seconds=30))
    both = _precondition(early, late, nodes=nodes)
    assert both.why_not() is None
    now = CUT + timedelta(seconds=30)
    assert not both.admits(_holder(CUT + timedelta(seconds=5)), now)  # before node-3's cut
    assert both.admits(_holder(CUT + timedelta(seconds=11)), now)


def test_a_hunt_whose_only_holder_predates_the_cut_says_not_reproduced() -> None:
    """What the hunt writes in the journal when the one holder it met was refused."""
    from chaosmesh_sec.faults import ip_recycle

    cut = _cut.Cut("lab-node-2", "abcd1234", CUT, CUT + timedelta(minutes=1))
    pre = _precondition(cut)
    early = _holder(CUT - timedelta(seconds=3))
    early.metadata.uid = "u1"
    early.status = k8s.V1PodStatus(pod_ip="10.78.1.6")
    early.spec = k8s.V1PodSpec(node_name="lab-node-1", containers=[])
    rejected: list[object] = []
    admits = lambda pod: pre.admits(pod, CUT + timedelta(seconds=5))  # noqa: E731
    assert ip_recycle._holder([early], {"10.78.1.6"}, admits, rejected) is None
    assert [r["name"] for r in rejected] == ["sleep-v2-x"]  # type: ignore[index]
    result = {
        "found": False,
        "victim": "sleep-v1",
        "reason": "timed out in round 20 of 20",
        "precondition": pre.to_json(),
        "rejected": rejected,
    }
    ip_recycle._tell_story(result, pre)
    assert result["reproduced"] is False
    assert str(result["scenario"]).startswith("not reproduced: timed out")
    assert "sleep-v2-x (10.78.1.6, created 2026-12-03T09:59:57+00:00)" in str(result["scenario"])


def test_a_run_whose_story_did_not_happen_is_neither_held_nor_deviated() -> None:
    """The game day reads the hunt's sentence back: exit code 2, verdict not_reproduced."""
    from pathlib import Path

    from chaosmesh_sec.gameday import plan, verdict
    from chaosmesh_sec.journal import scenario_sentence, scenarios_not_reproduced

    hunt = {"reproduced": False, "scenario": scenario_sentence(False, "no partition")}
    journal = {
        "status": "completed",
        "deviated": False,
        "steady_states": {"before": {"steady_state_met": True, "probes": []}},
        "run": [
            {"activity": {"type": "action", "name": "hunt"}, "status": "succeeded", "output": hunt}
        ],
    }
    assert scenarios_not_reproduced(journal) == ["not reproduced: no partition"]
    assert verdict.journal_exit_code(journal) == verdict.EXIT_NOT_APPLIED
    entry = plan.Entry(1, Path("wrong-identity.json"), "wrong identity")
    assert verdict.Outcome(entry, journal=journal).verdict == verdict.NOT_REPRODUCED
    hunt["reproduced"] = True
    assert verdict.journal_exit_code(journal) == verdict.EXIT_HELD
    assert verdict.Outcome(entry, journal=journal).verdict == "held"
