"""Is this workload available? A Deployment's rollout, a DaemonSet's pods on every node.

Read-only. A workload that is not there is an :class:`InvalidInput` naming
``namespace/name`` (never a quiet ``false``); with ``wait_seconds`` 0 the probe answers
from one read, otherwise it watches (at most ``wait_seconds``) until the workload is
available. No ``from __future__ import annotations`` here: chaoslib's ``discover()``
reads these signatures at run time (see :mod:`chaosmesh_sec._types`).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import apps_v1
from chaosmesh_sec.errors import InvalidInput

__all__ = ["daemonset_available", "deployment_available"]

logger = logging.getLogger("chaostoolkit")


def _inputs(name: Any, namespace: Any, wait_seconds: Any) -> tuple[str, str, int]:
    """Both probes' input check (pure): `name` is required (its default "" is "not given")."""
    if isinstance(name, str) and name == "":
        raise InvalidInput("name", "required: the name of the workload")
    return (
        _validate.dns_subdomain("name", name),
        _validate.dns_label("namespace", namespace),
        _validate.duration("wait_seconds", wait_seconds, minimum=0, maximum=3600),
    )


@_validate.checks(_inputs)
def deployment_available(
    name: str = "",
    namespace: str = "default",
    wait_seconds: int = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Is Deployment `name` in `namespace` rolled out: every replica of its spec updated,
    Ready and available, no old pod left, its current spec observed?

    With `wait_seconds` 0 answers from one read; otherwise watches (at most
    `wait_seconds`, up to 3600) until it is. A Deployment that does not exist is
    an error naming `namespace/name`. Returns `{"available": bool, "namespace",
    "name", "replicas", "updated_replicas", "ready_replicas", "available_replicas",
    "total_replicas"}`; tolerate on `$.available`.
    """
    name, namespace, wait_seconds = _inputs(name, namespace, wait_seconds)
    apps = apps_v1(configuration, secrets)
    dep = _kube.read_deployment(apps, name, namespace, "name")
    return _answer(
        _Kind("Deployment", _kube.deployment_rolled_out, _deployment_counts),
        apps.list_namespaced_deployment,
        dep,
        wait_seconds,
    )


@_validate.checks(_inputs)
def daemonset_available(
    name: str = "",
    namespace: str = "default",
    wait_seconds: int = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Does DaemonSet `name` in `namespace` run an updated, Ready, available pod on
    every node it should (its current spec observed)?

    With `wait_seconds` 0 answers from one read; otherwise watches (at most
    `wait_seconds`, up to 3600) until it does. A DaemonSet that does not exist is
    an error naming `namespace/name`. Returns `{"available": bool, "namespace",
    "name", "desired", "ready", "updated", "available_pods", "unavailable"}`;
    tolerate on `$.available`.
    """
    name, namespace, wait_seconds = _inputs(name, namespace, wait_seconds)
    apps = apps_v1(configuration, secrets)
    ds = _kube.read_named(apps.read_namespaced_daemon_set, "DaemonSet", name, namespace, "name")
    return _answer(
        _Kind("DaemonSet", _kube.daemonset_rolled_out, _daemonset_counts),
        apps.list_namespaced_daemon_set,
        ds,
        wait_seconds,
    )


@dataclass(frozen=True)
class _Kind:
    """What the two probes differ in: the kind's name, its judgement and its counts."""

    name: str
    available: Callable[[Any], bool]
    counts: Callable[[Any], JSONObject]


def _answer(kind: _Kind, list_call: Callable[..., Any], obj: Any, wait_seconds: int) -> JSONObject:
    """Judge ``obj`` now, or watch it for ``wait_seconds`` until it is available."""
    namespace, name = obj.metadata.namespace, obj.metadata.name
    available = kind.available(obj)
    if not available and wait_seconds:
        deadline = time.monotonic() + wait_seconds
        available, last = _kube.watch_named(
            list_call, kind.name, name, namespace, kind.available, deadline
        )
        if last is None:
            raise InvalidInput(
                "name", f"{kind.name} {name!r} was deleted from namespace {namespace!r}"
            )
        obj = last
    result: JSONObject = {"available": available, "namespace": namespace, "name": name}
    result.update(kind.counts(obj))
    if not available:
        waited = f" after {wait_seconds} s" if wait_seconds else ""
        result["reason"] = f"{kind.name} {namespace}/{name} is not available{waited}"
    logger.debug("%s %s/%s available: %s", kind.name, namespace, name, available)
    return result


def _deployment_counts(dep: Any) -> JSONObject:
    status = dep.status
    return {
        "replicas": 1 if dep.spec.replicas is None else int(dep.spec.replicas),
        "updated_replicas": (status.updated_replicas if status else None) or 0,
        "ready_replicas": (status.ready_replicas if status else None) or 0,
        "available_replicas": (status.available_replicas if status else None) or 0,
        "total_replicas": (status.replicas if status else None) or 0,
    }


def _daemonset_counts(ds: Any) -> JSONObject:
    status = ds.status
    return {
        "desired": (status.desired_number_scheduled if status else None) or 0,
        "ready": (status.number_ready if status else None) or 0,
        "updated": (status.updated_number_scheduled if status else None) or 0,
        "available_pods": (status.number_available if status else None) or 0,
        "unavailable": (status.number_unavailable if status else None) or 0,
    }
