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
  *first* unrestored change (a second scale keeps it, whoever made it), and when and by
  what;
- the pod the IP hunt found: ``chaosmesh-sec.io/recycled-from=<victim>`` (what later
  activities select it by) and the fault label ``recycled-ip``.

Every entry carries the id of the run that wrote it (:data:`OWNER_LABEL`, from
:func:`chaosmesh_sec._run.run_id`). A run's rollbacks and its safety net heal only
their own run's entries; ``chaosmesh-sec rollback`` heals every run's and says whose.
``chaosmesh-sec rollback``, :func:`chaosmesh_sec.faults.leftovers.heal_leftovers`
and the safety-net control read it; a restore clears the entry.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from chaosmesh_sec import _run
from chaosmesh_sec.client import api_errors

__all__ = [
    "FAULT_LABEL",
    "FAULT_NAMESPACE",
    "HUNT",
    "OWNER_LABEL",
    "RECYCLED_FROM",
    "RECYCLED_KIND",
    "REPLICAS_BEFORE",
    "RUN_LABEL",
    "SCALE_KIND",
    "clear_recycled",
    "clear_replicas",
    "owner_of",
    "pending_recycled",
    "pending_replicas",
    "record_recycled",
    "record_replicas",
]

logger = logging.getLogger("chaostoolkit")

FAULT_LABEL = "chaosmesh-sec.io/fault"
FAULT_NAMESPACE = _run.FAULT_NAMESPACE
"""Where fault pods go unless an experiment says otherwise (``deploy/`` creates it)."""
RUN_LABEL = "chaosmesh-sec.io/run-id"
"""A partition's own id (8 hex digits: its chains and its pod are named after it)."""
OWNER_LABEL = "chaosmesh-sec.io/owner-run"
"""The run that wrote an entry (12 hex digits, :mod:`chaosmesh_sec._run`)."""
SCALE_KIND = "scale"
RECYCLED_KIND = "recycled-ip"
RECYCLED_FROM = "chaosmesh-sec.io/recycled-from"
HUNT = "hunt_recycled_ip"
"""The changed-by of the IP hunt's victim entry: its restore clears the hunt's labels."""
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
            "ledger: %s/%s already changed by run %s (%s replicas before), keeping that",
            meta.namespace,
            meta.name,
            owner_of(deployment) or "unknown",
            recorded,
        )
        return int(recorded)
    patch = {
        "metadata": {
            "labels": {FAULT_LABEL: SCALE_KIND, OWNER_LABEL: _run.run_id()},
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
            "labels": {FAULT_LABEL: None, OWNER_LABEL: None},
            "annotations": {REPLICAS_BEFORE: None, CHANGED_AT: None, CHANGED_BY: None},
        }
    }
    with api_errors(f"clear the ledger entry on Deployment {namespace}/{name}"):
        apps.patch_namespaced_deployment(name, namespace, patch)


def owner_of(obj: Any) -> str:
    """The run id an entry carries ("" if none, or not a run id)."""
    owner = (obj.metadata.labels or {}).get(OWNER_LABEL, "")
    return owner if _run.is_run_id(owner) else ""


def _selector(kind: str, run_id: str) -> str:
    return f"{FAULT_LABEL}={kind}" + (f",{OWNER_LABEL}={run_id}" if run_id else "")


def pending_replicas(apps: Any, namespace: str = "", run_id: str = "") -> list[dict[str, Any]]:
    """Every Deployment whose replicas a fault changed and nothing restored yet (only
    those run ``run_id`` changed, if given)."""
    selector = _selector(SCALE_KIND, run_id)
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
                "run_id": owner_of(dep) or None,
            }
        )
    return sorted(entries, key=lambda e: (e["namespace"], e["name"]))


# ---------------------------------------------------------------- the IP hunt's label


def _label_pod(core: Any, name: str, namespace: str, labels: dict[str, str | None]) -> bool:
    """Patch a pod's labels; False when it is gone (nothing to label)."""
    with api_errors(f"label pod {namespace}/{name}"):
        try:
            core.patch_namespaced_pod(name, namespace, {"metadata": {"labels": labels}})
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False
    return True


def record_recycled(core: Any, name: str, namespace: str, victim: str) -> None:
    """Label the pod the hunt found: ``recycled-from=<victim>``, with this run's id."""
    labels: dict[str, str | None] = {
        RECYCLED_FROM: victim,
        FAULT_LABEL: RECYCLED_KIND,
        OWNER_LABEL: _run.run_id(),
    }
    _label_pod(core, name, namespace, labels)


def clear_recycled(core: Any, name: str, namespace: str) -> bool:
    """Take the hunt's entry off a pod; False when the pod is gone."""
    return _label_pod(
        core, name, namespace, {RECYCLED_FROM: None, FAULT_LABEL: None, OWNER_LABEL: None}
    )


def pending_recycled(
    core: Any, namespace: str = "", run_id: str = "", victim: str = ""
) -> list[dict[str, Any]]:
    """Pods carrying a hunt's label (of ``victim``, of run ``run_id``, when given)."""
    selector = f"{RECYCLED_FROM}={victim}" if victim else RECYCLED_FROM
    if run_id:
        selector += f",{OWNER_LABEL}={run_id}"
    with api_errors(f"list pods labelled {selector}"):
        listed = (
            core.list_namespaced_pod(namespace, label_selector=selector)
            if namespace
            else core.list_pod_for_all_namespaces(label_selector=selector)
        )
    return sorted(
        (
            {
                "name": pod.metadata.name,
                "namespace": pod.metadata.namespace,
                "victim": (pod.metadata.labels or {}).get(RECYCLED_FROM),
                "run_id": owner_of(pod) or None,
            }
            for pod in listed.items
        ),
        key=lambda e: (e["namespace"], e["name"]),
    )
