"""Heal whatever faults left behind: the ledger read back and undone, entry by entry.

One action for an experiment's rollbacks, the body of ``chaosmesh-sec rollback``
and of the safety-net control (:mod:`chaosmesh_sec.controls.safety_net`). It heals
the partition fault pods of the pack in the fault namespace (their removal rebuilt
from their run id), restores every Deployment whose replica count a churn fault
recorded in the ledger (:mod:`chaosmesh_sec.faults._ledger`) and takes the IP hunt's
labels off: those of this run (the ledger's run id), or every run's with
``all_runs`` (``chaosmesh-sec rollback``), each entry reported with whose it was.
Each entry is tried on its own: any failure (the pack's or not) is recorded and the
rest go ahead. Safe to repeat: with nothing left it reports nothing. No ``from
__future__ import annotations``: chaoslib reads the signature.
"""

import logging
from typing import Any

from chaosmesh_sec import _run, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import apps_v1, core_v1, exception_brief
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


def _heal_inputs(
    node: Any, namespace: Any, fault_namespace: Any, all_runs: Any
) -> tuple[str, str, str, bool]:
    """:func:`heal_leftovers`' input check (pure)."""
    return (
        _validate.optional_dns_subdomain("node", node),
        _validate.optional_dns_label("namespace", namespace),
        _validate.dns_label("fault_namespace", fault_namespace),
        _validate.boolean("all_runs", all_runs),
    )


@_validate.checks(_heal_inputs)
def heal_leftovers(
    node: str = "",
    namespace: str = "",
    fault_namespace: str = _ledger.FAULT_NAMESPACE,
    all_runs: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Undo every fault of this run still in effect (`all_runs: true`: of every run; only
    partitions on `node`, Deployments and hunt labels in `namespace`).

    Partitions are looked for in `fault_namespace` only. Returns `{"run_id" (the run
    healed, null for all), "apiserver_partition": {"healed", "expired", "ended",
    "failed", "strangers", "fault_pods_deleted"}, "replicas": [{"name", "namespace",
    "replicas", "previous_replicas", "run_id", "changed_by", "changed_at"}],
    "recycled_labels": [{"name", "namespace", "victim", "run_id"}], "failed": [...],
    "nothing_left": bool}`. Every entry is tried even when one fails; then
    `RollbackFailed` (carrying that result) names all that failed.
    """
    node, namespace, fault_namespace, all_runs = _heal_inputs(
        node, namespace, fault_namespace, all_runs
    )
    run_id = "" if all_runs else _run.run_id()
    failures: list[str] = []
    unreachable: list[bool] = []  # per failure: was it the API server that could not be reached
    result: JSONObject = {
        "run_id": run_id or None,
        "apiserver_partition": None,
        "replicas": [],
        "recycled_labels": [],
        "failed": failures,
        "nothing_left": False,
    }
    try:
        result["apiserver_partition"] = heal_apiserver_partition(
            node=node,
            fault_namespace=fault_namespace,
            all_runs=all_runs,
            configuration=configuration,
            secrets=secrets,
        )
    except RollbackFailed as exc:
        result["apiserver_partition"] = exc.result
        failures.append(f"apiserver partition: {exc}")
        unreachable.append(False)
    except Exception as exc:  # noqa: BLE001 - recorded; the Deployments are still tried
        failures.append(f"apiserver partition: {exception_brief(exc)}")
        unreachable.append(isinstance(exc, ClusterUnreachable))
    try:
        entries = _ledger.pending_replicas(apps_v1(configuration, secrets), namespace, run_id)
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
                all_runs=True,  # the entries listed are the ones to heal (this run's, or all)
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
            "Restored Deployment %s/%s to %s replicas (changed by %s of run %s at %s)",
            entry["namespace"],
            entry["name"],
            restored["replicas"],
            entry["changed_by"],
            entry["run_id"],
            entry["changed_at"],
        )
        result["replicas"].append(
            {
                "name": entry["name"],
                "namespace": entry["namespace"],
                "replicas": restored["replicas"],
                "previous_replicas": restored["previous_replicas"],
                "run_id": entry["run_id"],
                "changed_by": entry["changed_by"],
                "changed_at": entry["changed_at"],
            }
        )
    _clear_recycled(namespace, run_id, configuration, secrets, result, unreachable)
    if failures and all(unreachable):
        raise ClusterUnreachable("; ".join(failures))  # nothing was reached, nothing was done
    if failures:
        raise RollbackFailed("; ".join(failures), result=result)
    result["nothing_left"] = not (
        _still_in_effect(result["apiserver_partition"])
        or result["replicas"]
        or result["recycled_labels"]
    )
    return result


def _clear_recycled(
    namespace: str,
    run_id: str,
    configuration: Configuration,
    secrets: Secrets,
    result: JSONObject,
    unreachable: list[bool],
) -> None:
    """Take the IP hunt's labels (of ``run_id``; "": of every run) off; record failures."""
    failures: list[str] = result["failed"]
    try:
        core = core_v1(configuration, secrets)
        labelled = _ledger.pending_recycled(core, namespace, run_id=run_id)
    except Exception as exc:  # noqa: BLE001 - recorded with the rest
        failures.append(f"the IP hunt's labels could not be listed: {exception_brief(exc)}")
        unreachable.append(isinstance(exc, ClusterUnreachable))
        return
    for entry in labelled:
        try:
            if _ledger.clear_recycled(core, entry["name"], entry["namespace"]):
                result["recycled_labels"].append(entry)
        except Exception as exc:  # noqa: BLE001 - recorded; the next pod is still tried
            failures.append(f"pod {entry['namespace']}/{entry['name']}: {exception_brief(exc)}")
            unreachable.append(isinstance(exc, ClusterUnreachable))
