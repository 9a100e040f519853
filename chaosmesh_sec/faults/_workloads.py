"""What the workload faults share beyond the floor: Deployments (names, selectors, replica
counts, scaling and its undo, rollouts) and their live pods.

Private to :mod:`chaosmesh_sec.faults` (not an activity module). Waiting, pod facts
and existence checks are the floor's (:mod:`chaosmesh_sec._kube`), input checks too
(:mod:`chaosmesh_sec._validate`); what is here only faults need. The pure parts
(selector strings, rollout predicates) are unit-tested.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec.client import api_errors
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults import _ledger

__all__ = [
    "delete_pod",
    "deployment_name",
    "deployment_selector",
    "ips_of",
    "live_pod_objects",
    "live_pods",
    "patch_replicas",
    "rollout_complete",
    "spec_replicas",
    "undo_scale",
]

logger = logging.getLogger("chaostoolkit")


def deployment_selector(selector: Any) -> str:
    """A Deployment's ``spec.selector`` (a ``V1LabelSelector``) as a label-selector string."""
    terms = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        if expr.operator == "In":
            terms.append(f"{expr.key} in ({values})")
        elif expr.operator == "NotIn":
            terms.append(f"{expr.key} notin ({values})")
        elif expr.operator == "Exists":
            terms.append(expr.key)
        elif expr.operator == "DoesNotExist":
            terms.append(f"!{expr.key}")
        else:
            raise ValueError(f"unknown label selector operator {expr.operator!r}")
    return ",".join(terms)


def rollout_complete(deployment: Any, replicas: int) -> bool:
    """Has the Deployment finished rolling out ``replicas`` pods (the floor's judgement)?"""
    return _kube.deployment_rolled_out(deployment, replicas)


def delete_pod(core: Any, pod: Any) -> bool:
    """Delete this very pod (uid precondition); False when it is gone or replaced already."""
    namespace, name = pod.metadata.namespace, pod.metadata.name
    options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=pod.metadata.uid))
    with api_errors(f"delete pod {namespace}/{name}"):
        try:
            core.delete_namespaced_pod(name, namespace, body=options)
        except ApiException as exc:
            if exc.status in (404, 409):  # gone already, or a new pod under the same name
                return False
            raise
    return True


def deployment_name(name: str, value: Any) -> str:
    """A required Deployment name (its default "" means "not given")."""
    if isinstance(value, str) and value == "":
        raise InvalidInput(name, "required: the name of a Deployment")
    return _validate.dns_subdomain(name, value)


def spec_replicas(deployment: Any) -> int:
    """A Deployment's desired replicas (the API defaults an unset value to 1)."""
    replicas = deployment.spec.replicas
    return 1 if replicas is None else int(replicas)


def patch_replicas(apps: Any, name: str, namespace: str, replicas: int) -> int:
    """Set the scale subresource; return the replicas the API now holds for the spec."""
    with api_errors(f"scale Deployment {namespace}/{name} to {replicas}"):
        scale = apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": replicas}}
        )
    logger.info("Scaled Deployment %s/%s to %d replicas", namespace, name, replicas)
    return int(scale.spec.replicas or 0)  # 0 is omitted from the JSON


def undo_scale(apps: Any, name: str, namespace: str, replicas: int) -> str:
    """Best effort: restore a Deployment's ``replicas`` and clear its ledger entry."""
    try:
        patch_replicas(apps, name, namespace, replicas)
        _ledger.clear_replicas(apps, name, namespace)
    except Exception as exc:  # noqa: BLE001 - report, the original error is raised
        logger.error("could not restore %s/%s to %d replicas: %s", namespace, name, replicas, exc)
        return (
            f"Deployment {name!r} is left scaled: restore it to {replicas} replicas "
            "(`chaosmesh-sec rollback` reads the count from its ledger entry)"
        )
    return f"Deployment {name!r} was restored to {replicas} replicas"


def live_pod_objects(core: Any, namespace: str, selector: str) -> list[Any]:
    with api_errors(f"list pods {selector!r} in namespace {namespace!r}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if not _kube.pod_terminating(p)]


def live_pods(core: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
    """Name, uid, node and IP of the non-terminating pods matching ``selector``, by name."""
    pods = live_pod_objects(core, namespace, selector)
    return sorted((_kube.pod_brief(p) for p in pods), key=lambda p: str(p["name"]))


def ips_of(pods: list[dict[str, Any]]) -> list[str]:
    return sorted({str(p["pod_ip"]) for p in pods if p["pod_ip"]})
