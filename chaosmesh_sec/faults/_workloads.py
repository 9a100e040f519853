"""What the workload faults share beyond the floor: Deployment selectors, rollouts, pod deletion.

Private to :mod:`chaosmesh_sec.faults` (not an activity module). Waiting, pod facts
and existence checks are the floor's (:mod:`chaosmesh_sec._kube`), input checks too
(:mod:`chaosmesh_sec._validate`); what is here only faults need. The pure parts
(selector strings, rollout predicates) are unit-tested.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec.client import api_errors

__all__ = ["delete_pod", "deployment_selector", "rollout_complete"]


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
    """Has the Deployment finished rolling out ``replicas`` pods, all updated and available?

    As ``kubectl rollout status`` judges it, plus no pod of an old ReplicaSet left
    (``status.replicas`` counts every non-terminating pod of every ReplicaSet).
    """
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    if status is None or spec is None or spec.replicas != replicas:
        return False
    if (status.observed_generation or 0) < (meta.generation or 0):
        return False
    return (
        (status.replicas or 0) == replicas
        and (status.updated_replicas or 0) == replicas
        and (status.available_replicas or 0) == replicas
        and (status.ready_replicas or 0) == replicas
    )


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
