"""Heal whatever faults left behind: the ledger read back and undone, entry by entry.

One action for an experiment's rollbacks, the body of ``chaosmesh-sec rollback``
and of the safety-net control (:mod:`chaosmesh_sec.controls.safety_net`). It finds
partition fault pods by their label and removes their rules by exact spec, and
restores every Deployment whose replica count a churn fault recorded in the ledger
(:mod:`chaosmesh_sec.faults._ledger`). Safe to repeat: with nothing left it reports
nothing. No ``from __future__ import annotations``: chaoslib reads the signature.
"""

import logging

from chaosmesh_sec import _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import apps_v1
from chaosmesh_sec.errors import ChaosMeshSecError, RollbackFailed
from chaosmesh_sec.faults import _ledger
from chaosmesh_sec.faults.apiserver_partition import heal_apiserver_partition
from chaosmesh_sec.faults.churn import restore_replicas

__all__ = ["heal_leftovers"]

logger = logging.getLogger("chaostoolkit")


def heal_leftovers(
    node: str = "",
    namespace: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Undo every fault still in effect (only partitions on `node`, Deployments in `namespace`).

    Returns `{"apiserver_partition": {"healed", "fault_pods_deleted"}, "replicas":
    [{"name", "namespace", "replicas", "previous_replicas"}], "nothing_left": bool}`.
    Every entry is tried even when one fails; then `RollbackFailed` names all that
    failed.
    """
    if node:
        node = _validate.dns_subdomain("node", node)
    if namespace:
        namespace = _validate.dns_label("namespace", namespace)
    failures: list[str] = []
    result: JSONObject = {"apiserver_partition": None, "replicas": [], "nothing_left": False}
    try:
        result["apiserver_partition"] = heal_apiserver_partition(
            node=node, configuration=configuration, secrets=secrets
        )
    except ChaosMeshSecError as exc:
        failures.append(f"apiserver partition: {exc}")
    for entry in _ledger.pending_replicas(apps_v1(configuration, secrets), namespace):
        try:
            restored = restore_replicas(
                name=entry["name"],
                namespace=entry["namespace"],
                wait_ready=False,
                configuration=configuration,
                secrets=secrets,
            )
        except ChaosMeshSecError as exc:
            failures.append(f"Deployment {entry['namespace']}/{entry['name']}: {exc}")
            continue
        logger.info(
            "Restored Deployment %s/%s to %s replicas (changed by %s at %s)",
            entry["namespace"],
            entry["name"],
            restored["replicas"],
            entry["changed_by"],
            entry["changed_at"],
        )
        result["replicas"].append(
            {
                "name": entry["name"],
                "namespace": entry["namespace"],
                "replicas": restored["replicas"],
                "previous_replicas": restored["previous_replicas"],
            }
        )
    if failures:
        raise RollbackFailed("; ".join(failures))
    partition = result["apiserver_partition"] or {}
    result["nothing_left"] = not (
        partition.get("healed") or partition.get("fault_pods_deleted") or result["replicas"]
    )
    return result
