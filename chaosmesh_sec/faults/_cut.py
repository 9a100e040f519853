"""Which nodes a partition of this pack has cut off from the API server, since when.

The partition fault writes on its fault pod, once the node's log says its rules are
in, when they took effect and when they remove themselves (the annotations
:data:`EFFECTIVE_AT` and :data:`SELF_HEALS_AT`). A fault that must know "after the
cut" reads it here: the IP hunt's stale-cache precondition (a pod created after its
node's peer was cut off cannot have been heard of there). Only the pack's own fault
namespace is read, only pods of the pack's shape count (the heal's own check,
:func:`~chaosmesh_sec.faults._partition_pod.run_id_of`: a labelled, stamped stranger
is no cut), and nothing read is executed.

Times compare the runner's clock (the annotations) with the API server's
(``creationTimestamp``, whole seconds, rounded down): a pod created in second S
counts as "after the cut" only if S is not before the cut, so a clock skew of under
a second errs towards "not reproduced", never towards a false story.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec.client import api_errors
from chaosmesh_sec.faults._ledger import FAULT_LABEL
from chaosmesh_sec.faults._partition_pod import PARTITION_KIND, run_id_of

__all__ = [
    "EFFECTIVE_AT",
    "PARTITION_KIND",
    "SELF_HEALS_AT",
    "Cut",
    "created_after_cut",
    "cut_since",
    "cuts_in_force",
    "stamp",
]

EFFECTIVE_AT = "chaosmesh-sec.io/effective-at"
SELF_HEALS_AT = "chaosmesh-sec.io/self-heals-at"


@dataclass(frozen=True)
class Cut:
    """One partition in force on one node."""

    node: str
    run_id: str
    effective_at: datetime
    self_heals_at: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "node": self.node,
            "run_id": self.run_id,
            "effective_at": self.effective_at.isoformat(),
            "self_heals_at": self.self_heals_at.isoformat(),
        }


def stamp(epoch: float) -> str:
    """An annotation's value for a time: ISO 8601, UTC, microseconds."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _parsed(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def cut_of(pod: Any, now: datetime) -> Cut | None:
    """The cut a fault pod has in force now, if it has one (of the pack's shape, Running,
    stamped, not expired)."""
    meta = pod.metadata
    run_id, _not_the_packs = run_id_of(pod)
    if not run_id or meta.deletion_timestamp is not None:
        return None
    if not pod.status or pod.status.phase != "Running":
        return None
    annotations = meta.annotations or {}
    effective, heals = (
        _parsed(annotations.get(EFFECTIVE_AT)),
        _parsed(annotations.get(SELF_HEALS_AT)),
    )
    if effective is None or heals is None or not effective <= now < heals:
        return None
    return Cut(str(pod.spec.node_name), run_id, effective, heals)


def cuts_in_force(core: Any, fault_namespace: str, nodes: Iterable[str]) -> dict[str, Cut]:
    """For each of ``nodes`` cut off now, its earliest partition still in force."""
    wanted = set(nodes)
    with api_errors(f"list partition fault pods in {fault_namespace!r}"):
        pods = core.list_namespaced_pod(
            fault_namespace, label_selector=f"{FAULT_LABEL}={PARTITION_KIND}"
        ).items
    now = datetime.now(UTC)
    found: dict[str, Cut] = {}
    for pod in pods:
        cut = cut_of(pod, now)
        if cut is None or cut.node not in wanted:
            continue
        if cut.node not in found or cut.effective_at < found[cut.node].effective_at:
            found[cut.node] = cut
    return found


def cut_since(cuts: Iterable[Cut]) -> datetime:
    """Since when every one of ``cuts`` is in force (the latest of their starts)."""
    return max(c.effective_at for c in cuts)


def created_after_cut(created: datetime, since: datetime) -> bool:
    """Was a pod created (``creationTimestamp``, whole seconds) after ``since``, surely?"""
    return created >= since


@dataclass(frozen=True)
class StaleCachePrecondition:
    """The IP hunt's story needs it: the nodes of some pods (the server's) cut off.

    An IP that changed hands after the node of ``pods`` was cut off from the API
    server was never heard of there: an IP -> identity cache on that node still maps
    it to its old owner. :meth:`admits` tells whether a holder of a recycled IP is
    such a newcomer (created after every cut began, while they are all in force).
    """

    selector: str
    namespace: str
    nodes: tuple[str, ...]
    cuts: tuple[Cut, ...]

    @property
    def missing(self) -> list[str]:
        """The nodes of ``pods`` with no partition of this pack in force."""
        cut = {c.node for c in self.cuts}
        return [n for n in self.nodes if n not in cut]

    def why_not(self) -> str | None:
        """Why the story cannot happen at all now, or None if it can."""
        if self.missing:
            return (
                f"node(s) {', '.join(self.missing)} of pods {self.selector!r} in "
                f"{self.namespace!r} are not cut off from the API server by a partition "
                "of this pack"
            )
        return None

    def admits(self, pod: Any, now: datetime | None = None) -> bool:
        """Was ``pod`` created after every cut began, and are they all still in force?"""
        moment = now or datetime.now(UTC)
        created = pod.metadata.creation_timestamp
        return (
            not self.missing
            and isinstance(created, datetime)
            and created_after_cut(created, cut_since(self.cuts))
            and all(moment < c.self_heals_at for c in self.cuts)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pods": self.selector,
            "nodes": list(self.nodes),
            "cuts": [c.to_json() for c in self.cuts],
            "cut_since": cut_since(self.cuts).isoformat() if self.cuts else None,
        }


def stale_cache_precondition(
    core: Any, selector: str, namespace: str, fault_namespace: str
) -> StaleCachePrecondition | None:
    """The precondition for the nodes of the Running pods ``selector`` in ``namespace``;
    None when no such pod runs."""
    with api_errors(f"list pods {selector!r} in {namespace!r}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    nodes = sorted(
        {
            str(p.spec.node_name)
            for p in pods
            if p.spec and p.spec.node_name and p.status and p.status.phase == "Running"
        }
    )
    if not nodes:
        return None
    cuts = cuts_in_force(core, fault_namespace, nodes)
    return StaleCachePrecondition(
        selector, namespace, tuple(nodes), tuple(cuts[n] for n in nodes if n in cuts)
    )
