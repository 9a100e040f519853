"""What the workload faults share: input checks, pod facts, and waiting by watch.

Private to :mod:`chaosmesh_sec.faults` (not an activity module). The pure parts
(validators, selector strings, pod facts, rollout predicates) are unit-tested;
:func:`watch_until` is the one place that waits, with a list then a watch (never a
polling loop), resuming the watch when the server ends it and re-listing on 410 Gone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec.client import api_errors
from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "boolean",
    "delete_pod",
    "deployment_selector",
    "fraction",
    "pod_brief",
    "pod_ready",
    "pod_ready_at",
    "pod_terminating",
    "positive_int",
    "read_deployment",
    "read_named",
    "require_namespace",
    "require_node",
    "rollout_complete",
    "watch_until",
]

logger = logging.getLogger("chaostoolkit")

_GONE = 410


# ---------------------------------------------------------------- input checks (pure)


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (a bool is refused, although Python counts it as an int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"must be an integer, got {type(value).__name__}")
    if value < 1:
        raise InvalidInput(name, f"must be >= 1, got {value}")
    return value


def boolean(name: str, value: Any) -> bool:
    """A real boolean: the string "false" is truthy in Python, so it is refused."""
    if not isinstance(value, bool):
        raise InvalidInput(name, f"must be true or false, got {type(value).__name__} {value!r}")
    return value


def fraction(name: str, value: Any) -> float:
    """A number in [0, 1] (0 meaning "not given")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise InvalidInput(name, f"must be in (0, 1] (or 0 for not given), got {value}")
    return number


# ---------------------------------------------------------------- object facts (pure)


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


def pod_terminating(pod: Any) -> bool:
    """Has the pod been asked to go (deletion timestamp set)?"""
    return pod.metadata.deletion_timestamp is not None


def pod_ready(pod: Any) -> bool:
    """Running, Ready, and not terminating."""
    status = pod.status
    if status is None or status.phase != "Running" or pod_terminating(pod):
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def pod_ready_at(pod: Any) -> str | None:
    """When the pod last became Ready (the API server's clock), ISO 8601, if it is Ready."""
    if not pod_ready(pod):
        return None
    for cond in pod.status.conditions or []:
        if cond.type == "Ready" and isinstance(cond.last_transition_time, datetime):
            return cond.last_transition_time.isoformat()
    return None


def pod_brief(pod: Any) -> dict[str, Any]:
    """Name, uid, node and IP of a pod, for the journal."""
    return {
        "name": pod.metadata.name,
        "uid": pod.metadata.uid,
        "node": pod.spec.node_name if pod.spec else None,
        "pod_ip": pod.status.pod_ip if pod.status else None,
    }


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


# ---------------------------------------------------------------- lookups (read-only I/O)


def _missing(exc: ApiException) -> bool:
    return bool(exc.status == 404)


def require_namespace(core: Any, namespace: str, input_name: str = "namespace") -> None:
    """Raise InvalidInput(``input_name``) when it does not exist (unknown on 403: go on)."""
    with api_errors(f"read namespace {namespace!r}"):
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if _missing(exc):
                raise InvalidInput(input_name, f"namespace {namespace!r} does not exist") from exc
            if exc.status != 403:  # not allowed to read namespaces: later calls will tell
                raise


def require_node(core: Any, node: str, input_name: str = "node") -> None:
    """Raise InvalidInput(``input_name``) when no such node exists."""
    with api_errors(f"read node {node!r}"):
        try:
            core.read_node(node)
        except ApiException as exc:
            if _missing(exc):
                raise InvalidInput(input_name, f"node {node!r} does not exist") from exc
            raise


def read_named(
    read_call: Callable[..., Any], kind: str, name: str, namespace: str, input_name: str
) -> Any:
    """``read_call(name, namespace)``, or InvalidInput(``input_name``) when it does not exist."""
    with api_errors(f"read {kind} {namespace}/{name}"):
        try:
            return read_call(name, namespace)
        except ApiException as exc:
            if _missing(exc):
                raise InvalidInput(
                    input_name, f"{kind} {name!r} not found in namespace {namespace!r}"
                ) from exc
            raise


def read_deployment(apps: Any, name: str, namespace: str, input_name: str) -> Any:
    """The Deployment, or InvalidInput(``input_name``) when it does not exist."""
    return read_named(apps.read_namespaced_deployment, "Deployment", name, namespace, input_name)


# ---------------------------------------------------------------- changes


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


# ---------------------------------------------------------------- waiting by watch


def watch_until(
    list_call: Callable[..., Any],
    predicate: Callable[[Mapping[str, Any]], bool],
    deadline: float,
    what: str,
    *args: Any,
    **kwargs: Any,
) -> tuple[bool, dict[str, Any]]:
    """List then watch objects until ``predicate(objects by uid)`` holds or ``deadline`` passes.

    ``list_call`` is a namespaced list method (``list_namespaced_pod``), ``args`` and
    ``kwargs`` its arguments (namespace, ``label_selector``, ``field_selector``).
    ``deadline`` is a ``time.monotonic()`` value. Returns ``(held, objects)``: whether
    the predicate held, and the last known objects (deleted ones removed).
    """
    objects: dict[str, Any] = {}
    resource_version: str | None = None
    while True:
        if resource_version is None:
            with api_errors(f"list {what}"):
                listed = list_call(*args, **kwargs)
            objects = {item.metadata.uid: item for item in listed.items}
            resource_version = listed.metadata.resource_version
            if predicate(objects):
                return True, objects
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, objects
        watcher = watch.Watch()
        expired = False
        try:
            with api_errors(f"watch {what}"):
                try:
                    for event in watcher.stream(
                        list_call,
                        *args,
                        resource_version=resource_version,
                        timeout_seconds=max(1, math.ceil(remaining)),
                        _request_timeout=remaining + 10,
                        **kwargs,
                    ):
                        obj = event["object"]
                        resource_version = obj.metadata.resource_version
                        if event["type"] == "DELETED":
                            objects.pop(obj.metadata.uid, None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            objects[obj.metadata.uid] = obj
                        if predicate(objects):
                            return True, objects
                        if time.monotonic() >= deadline:
                            return False, objects
                except ApiException as exc:
                    if exc.status != _GONE:
                        raise
                    expired = True  # the resource version is too old: list again
        finally:
            watcher.stop()
        if expired:
            logger.debug("watch %s: resource version expired, listing again", what)
            resource_version = None
