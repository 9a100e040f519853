"""The shared floor of faults and probes: what both ask of the Kubernetes API.

Faults and probes stand on this module and neither imports the other. It holds:

- waiting by watch (:func:`watch_until`, one named object: :func:`watch_named`): a
  list, then a watch, never a polling loop;
  the watch is resumed when the server ends it and the list is read again on 410 Gone;
- pod facts (pure): readiness, termination, a pod's brief for the journal;
- existence checks: an object that is not there is an :class:`InvalidInput` naming
  the input that named it (:func:`require_namespace`, :func:`require_node`,
  :func:`read_named`, :func:`read_deployment`);
- workload facts (pure): a Deployment's or a DaemonSet's rollout complete
  (:func:`deployment_rolled_out`, :func:`daemonset_rolled_out`);
- the one exec helper (:func:`exec_in_pod`, ``kubectl exec``). Each call gets an
  ``ApiClient`` of its own: ``kubernetes.stream`` swaps the client's request function
  while it runs, which is not safe to share between threads (probes exec in parallel).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from chaosmesh_sec.client import api_errors
from chaosmesh_sec.errors import ChaosMeshSecError, InvalidInput

__all__ = [
    "ExecFailed",
    "daemonset_rolled_out",
    "deployment_rolled_out",
    "exec_in_pod",
    "pod_brief",
    "pod_ready",
    "pod_ready_at",
    "pod_terminating",
    "read_deployment",
    "read_named",
    "require_namespace",
    "require_node",
    "watch_named",
    "watch_until",
]

logger = logging.getLogger("chaostoolkit")

_GONE = 410
_EXIT_STATUS = re.compile(r"exit (status|code) \d+")


# ---------------------------------------------------------------- pod facts (pure)


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


# ---------------------------------------------------------------- workload facts (pure)


def deployment_rolled_out(deployment: Any, replicas: int | None = None) -> bool:
    """Has the Deployment finished rolling out ``replicas`` pods (None: its spec's, which
    the API defaults to 1), all updated and available?

    As ``kubectl rollout status`` judges it, plus no pod of an old ReplicaSet left
    (``status.replicas`` counts every non-terminating pod of every ReplicaSet).
    """
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    if status is None or spec is None:
        return False
    in_spec = 1 if spec.replicas is None else int(spec.replicas)
    if replicas is None:
        replicas = in_spec
    if in_spec != replicas:
        return False
    if (status.observed_generation or 0) < (meta.generation or 0):
        return False
    return (
        (status.replicas or 0) == replicas
        and (status.updated_replicas or 0) == replicas
        and (status.available_replicas or 0) == replicas
        and (status.ready_replicas or 0) == replicas
    )


def daemonset_rolled_out(daemonset: Any) -> bool:
    """Does every node the DaemonSet should run on hold an updated, Ready, available pod?

    Its controller has seen the current spec (``observedGeneration``), and
    ``numberReady``, ``updatedNumberScheduled`` and ``numberAvailable`` all equal
    ``desiredNumberScheduled``, with no pod unavailable.
    """
    meta, status = daemonset.metadata, daemonset.status
    if status is None or (status.observed_generation or 0) < (meta.generation or 0):
        return False
    desired = status.desired_number_scheduled or 0
    return (
        (status.number_ready or 0) == desired
        and (status.updated_number_scheduled or 0) == desired
        and (status.number_available or 0) == desired
        and not status.number_unavailable
    )


# ---------------------------------------------------------------- existence checks (read-only)


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


def watch_named(
    list_call: Callable[..., Any],
    kind: str,
    name: str,
    namespace: str,
    predicate: Callable[[Any], bool],
    deadline: float,
) -> tuple[bool, Any]:
    """Watch the one object ``namespace/name`` until ``predicate(object)`` holds or
    ``deadline`` (``time.monotonic()``) passes; ``list_call`` is its kind's namespaced
    list method. Returns ``(held, the last version seen)`` (None once it is gone)."""
    last: list[Any] = [None]

    def holds(objects: Mapping[str, Any]) -> bool:
        last[0] = next(iter(objects.values()), None)
        return any(predicate(obj) for obj in objects.values())

    held, _ = watch_until(
        list_call,
        holds,
        deadline,
        f"{kind} {namespace}/{name}",
        namespace,
        field_selector=f"metadata.name={name}",
    )
    return held, last[0]


# ---------------------------------------------------------------- exec


class ExecFailed(ChaosMeshSecError):
    """The command could not be run (not: it ran and exited non-zero)."""


def _check_status(raw: str) -> None:
    """Raise when the exec's status channel reports a failure other than an exit code."""
    if not raw:
        return
    try:
        status = json.loads(raw)
    except ValueError:
        return
    if status.get("status") != "Failure" or status.get("reason") == "NonZeroExitCode":
        return
    message = str(status.get("message") or status.get("reason") or raw)
    if _EXIT_STATUS.search(message):  # kwok words a non-zero exit as an internal error
        return
    raise ExecFailed(message[:500])


def exec_in_pod(
    config: Any, pod: Any, container: str | None, argv: list[str], timeout: float
) -> tuple[str, str]:
    """``(stdout, stderr)`` of ``argv`` in ``pod``'s ``container`` (its first by default).

    ``config`` is the ``kubernetes.client.Configuration`` to build the call's own
    client from. Raises what the API raises, and :class:`ExecFailed` when the command
    could not be run at all (a non-zero exit is not a failure here); waits at most
    ``timeout`` seconds for the command.
    """
    api = k8s.ApiClient(config)
    try:
        resp = stream(
            k8s.CoreV1Api(api).connect_get_namespaced_pod_exec,
            pod.metadata.name,
            pod.metadata.namespace,
            container=container or pod.spec.containers[0].name,
            command=argv,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=timeout)
        out, err = resp.read_stdout(), resp.read_stderr()
        status = resp.read_channel(ERROR_CHANNEL)
        resp.close()
        _check_status(status)
        return out or "", err or ""
    finally:
        api.close()
