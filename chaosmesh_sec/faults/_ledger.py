"""The ledger: what a fault changed, written into the cluster before the change is made.

The ledger lives on the objects a fault touches, not in a file on the runner: the
runner may be a CronJob pod that dies with its file, or a laptop that lost its
connection. Each entry is the label ``chaosmesh-sec.io/fault`` (so one list call
finds every entry) and annotations saying what to restore:

- a fault pod (the partition), in the fault namespace (:data:`FAULT_NAMESPACE` unless
  the experiment says otherwise): its label and run id. The heal rebuilds the removal
  from the run id; nothing read from the cluster is ever run
  (see :mod:`chaosmesh_sec.faults.apiserver_partition`);
- a scaled Deployment: ``chaosmesh-sec.io/replicas-before``, the count before the
  *first* unrestored change (a second scale keeps it), and when and by what.

``chaosmesh-sec rollback``, :func:`chaosmesh_sec.faults.leftovers.heal_leftovers`
and the safety-net control read it; a restore clears the entry.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec import _pack_pods
from chaosmesh_sec.client import api_errors

__all__ = [
    "FAULT_LABEL",
    "FAULT_NAMESPACE",
    "REPLICAS_BEFORE",
    "RUN_LABEL",
    "SCALE_KIND",
    "clear_replicas",
    "pending_replicas",
    "record_replicas",
]

logger = logging.getLogger("chaostoolkit")

FAULT_LABEL = "chaosmesh-sec.io/fault"
FAULT_NAMESPACE = _pack_pods.FAULT_NAMESPACE
"""Where fault pods go unless an experiment says otherwise (``deploy/`` creates it)."""
RUN_LABEL = "chaosmesh-sec.io/run-id"
SCALE_KIND = "scale"
REPLICAS_BEFORE = "chaosmesh-sec.io/replicas-before"
CHANGED_AT = "chaosmesh-sec.io/changed-at"
CHANGED_BY = "chaosmesh-sec.io/changed-by"


def record_replicas(apps: Any, deployment: Any, replicas_before: int, changed_by: str) -> int:
    """Write the entry for a Deployment about to be scaled; return the count to restore.

    An entry already there (an earlier change not restored yet) is kept: the count to
    restore is the one before the first change.
    """
    meta = deployment.metadata
    recorded = (meta.annotations or {}).get(REPLICAS_BEFORE)
    if recorded is not None and (meta.labels or {}).get(FAULT_LABEL) == SCALE_KIND:
        logger.info(
            "ledger: %s/%s already changed (%s replicas before), keeping that",
            meta.namespace,
            meta.name,
            recorded,
        )
        return int(recorded)
    patch = {
        "metadata": {
            "labels": {FAULT_LABEL: SCALE_KIND},
            "annotations": {
                REPLICAS_BEFORE: str(replicas_before),
                CHANGED_AT: datetime.now(UTC).isoformat(),
                CHANGED_BY: changed_by,
            },
        }
    }
    with api_errors(f"record the ledger entry on Deployment {meta.namespace}/{meta.name}"):
        apps.patch_namespaced_deployment(meta.name, meta.namespace, patch)
    return replicas_before


def clear_replicas(apps: Any, name: str, namespace: str) -> None:
    """Remove a Deployment's entry (after its replicas are restored)."""
    patch = {
        "metadata": {
            "labels": {FAULT_LABEL: None},
            "annotations": {REPLICAS_BEFORE: None, CHANGED_AT: None, CHANGED_BY: None},
        }
    }
    with api_errors(f"clear the ledger entry on Deployment {namespace}/{name}"):
        apps.patch_namespaced_deployment(name, namespace, patch)


def pending_replicas(apps: Any, namespace: str = "") -> list[dict[str, Any]]:
    """Every Deployment whose replicas a fault changed and nothing restored yet."""
    selector = f"{FAULT_LABEL}={SCALE_KIND}"
    with api_errors("list Deployments in the ledger"):
        listed = (
            apps.list_namespaced_deployment(namespace, label_selector=selector)
            if namespace
            else apps.list_deployment_for_all_namespaces(label_selector=selector)
        )
    entries = []
    for dep in listed.items:
        annotations = dep.metadata.annotations or {}
        before = annotations.get(REPLICAS_BEFORE, "")
        if not before.isdigit():
            logger.warning(
                "ledger: %s/%s has no valid %s (%r); skipped",
                dep.metadata.namespace,
                dep.metadata.name,
                REPLICAS_BEFORE,
                before,
            )
            continue
        entries.append(
            {
                "name": dep.metadata.name,
                "namespace": dep.metadata.namespace,
                "replicas_before": int(before),
                "replicas_now": dep.spec.replicas,
                "changed_at": annotations.get(CHANGED_AT),
                "changed_by": annotations.get(CHANGED_BY),
            }
        )
    return sorted(entries, key=lambda e: (e["namespace"], e["name"]))
