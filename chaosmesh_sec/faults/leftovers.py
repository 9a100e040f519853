"""Heal whatever faults left behind: the ledger read back and undone, entry by entry.

One action for an experiment's rollbacks, the body of ``chaosmesh-sec rollback``
and of the safety-net control (:mod:`chaosmesh_sec.controls.safety_net`). It heals
the partition fault pods of the pack in the fault namespace (their removal rebuilt
from their run id) and restores every Deployment whose replica count a churn fault
recorded in the ledger (:mod:`chaosmesh_sec.faults._ledger`). Each entry is tried on
its own: any failure (the pack's or not) is recorded and the rest go ahead. Safe to
repeat: with nothing left it reports nothing. No ``from __future__ import
annotations``: chaoslib reads the signature.
"""

import logging
from typing import Any

from chaosmesh_sec import _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import apps_v1, exception_brief
from chaosmesh_sec.errors import ClusterUnreachable, RollbackFailed
from chaosmesh_sec.faults import _ledger
from chaosmesh_sec.faults.apiserver_partition import heal_apiserver_partition
from chaosmesh_sec.faults.churn import restore_replicas

__all__ = ["heal_leftovers"]

logger = logging.getLogger("chaostoolkit")


def _still_in_effect(partition: Any) -> bool:
    """Whether the partition heal found a fault of the pack that was in effect (an expired
    one, Succeeded, removed its own rules: it is cleaned, not counted)."""
    if not isinstance(partition, dict):
        return False
    return bool(partition.get("healed") or partition.get("ended") or partition.get("failed"))


def _heal_inputs(node: Any, namespace: Any, fault_namespace: Any) -> tuple[str, str, str]:
    """:func:`heal_leftovers`' input check (pure)."""
    return (
        _validate.optional_dns_subdomain("node", node),
        _validate.optional_dns_label("namespace", namespace),
        _validate.dns_label("fault_namespace", fault_namespace),
    )


@_validate.checks(_heal_inputs)
def heal_leftovers(
    node: str = "",
    namespace: str = "",
    fault_namespace: str = _ledger.FAULT_NAMESPACE,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Undo every fault still in effect (only partitions on `node`, Deployments in `namespace`).

    Partitions are looked for in `fault_namespace` only. Returns `{"apiserver_partition":
    {"healed", "expired", "ended", "failed", "strangers", "fault_pods_deleted"},
    "replicas": [{"name", "namespace", "replicas", "previous_replicas"}], "failed":
    [...], "nothing_left": bool}`. Every entry is tried even when one fails; then
    `RollbackFailed` (carrying that result) names all that failed.
    """
    node, namespace, fault_namespace = _heal_inputs(node, namespace, fault_namespace)
    failures: list[str] = []
    unreachable: list[bool] = []  # per failure: was it the API server that could not be reached
    result: JSONObject = {
        "apiserver_partition": None,
        "replicas": [],
        "failed": failures,
        "nothing_left": False,
    }
    try:
        result["apiserver_partition"] = heal_apiserver_partition(
            node=node, fault_namespace=fault_namespace, configuration=configuration, secrets=secrets
        )
    except RollbackFailed as exc:
        result["apiserver_partition"] = exc.result
        failures.append(f"apiserver partition: {exc}")
        unreachable.append(False)
    except Exception as exc:  # noqa: BLE001 - recorded; the Deployments are still tried
        failures.append(f"apiserver partition: {exception_brief(exc)}")
        unreachable.append(isinstance(exc, ClusterUnreachable))
    try:
        entries = _ledger.pending_replicas(apps_v1(configuration, secrets), namespace)
    except Exception as exc:  # noqa: BLE001 - recorded with the rest
        failures.append(f"the ledger's Deployments could not be listed: {exception_brief(exc)}")
        unreachable.append(isinstance(exc, ClusterUnreachable))
        entries = []
    for entry in entries:
        try:
            restored = restore_replicas(
                name=entry["name"],
                namespace=entry["namespace"],
                wait_ready=False,
                configuration=configuration,
                secrets=secrets,
            )
        except Exception as exc:  # noqa: BLE001 - recorded; the next entry is still tried
            failures.append(
                f"Deployment {entry['namespace']}/{entry['name']}: {exception_brief(exc)}"
            )
            unreachable.append(isinstance(exc, ClusterUnreachable))
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
    if failures and all(unreachable):
        raise ClusterUnreachable("; ".join(failures))  # nothing was reached, nothing was done
    if failures:
        raise RollbackFailed("; ".join(failures), result=result)
    result["nothing_left"] = not (
        _still_in_effect(result["apiserver_partition"]) or result["replicas"]
    )
    return result
