"""What a partition fault pod of this pack is: the one definition of its shape.

Anyone who may create or patch pods in the fault namespace can put the fault label on
a pod. Whatever acts on a partition fault pod, the heal (which execs the removal in
it) and the reader of the cuts in force (the IP hunt's precondition), first asks
:func:`run_id_of` whether the pack made it; a pod it refuses is a stranger.
"""

from __future__ import annotations

from typing import Any

from chaosmesh_sec import _run
from chaosmesh_sec.faults._ledger import FAULT_LABEL, OWNER_LABEL, RUN_LABEL
from chaosmesh_sec.faults._partition_rules import is_run_id

__all__ = ["CONTAINER", "NAME_LABEL", "PACK", "PARTITION_KIND", "pod_name", "run_id_of"]

PARTITION_KIND = "apiserver-partition"
PACK = "chaosmesh-sec"
NAME_LABEL = "app.kubernetes.io/name"
CONTAINER = "partition"


def pod_name(run_id: str) -> str:
    """The name of the fault pod of partition ``run_id``."""
    return f"cms-partition-{run_id}"


def run_id_of(pod: Any) -> tuple[str, str]:
    """``(run_id, "")`` for a fault pod of the pack's shape, else ``("", why it is not)``.

    The shape is what the partition fault makes: its labels, a run id of 8 hex digits,
    the name made from it, the owning run's id (12 hex digits, :mod:`chaosmesh_sec._run`),
    hostNetwork, one container ``partition``. A pod that merely
    carries the fault label (anyone who may create pods there can add it) is a stranger.
    """
    meta: Any = pod.metadata
    spec: Any = pod.spec
    labels = (meta.labels if meta else None) or {}
    run_id = labels.get(RUN_LABEL)
    if not is_run_id(run_id):
        return "", f"label {RUN_LABEL} is {run_id!r}, not a run id of this pack"
    if labels.get(FAULT_LABEL) != PARTITION_KIND or labels.get(NAME_LABEL) != PACK:
        return "", f"labels {FAULT_LABEL} / {NAME_LABEL} are not the pack's"
    owner = labels.get(OWNER_LABEL)
    if not _run.is_run_id(owner):
        return "", f"label {OWNER_LABEL} is {owner!r}, not a run id of this pack"
    name = pod_name(str(run_id))
    if meta.name != name:
        return "", f"its name is not {name}"
    containers = [c.name for c in (spec.containers if spec else None) or []]
    if not spec or spec.host_network is not True or containers != [CONTAINER]:
        return "", f"it is not a hostNetwork pod with the one container {CONTAINER!r}"
    return str(run_id), ""
