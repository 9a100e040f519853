"""Where the stand-in gets its security policies and its pod's labels.

A real sidecar gets them from istiod over xDS. The stand-in reads them itself:

- :class:`KubePolicySource`: from the Kubernetes API with the pod's own
  ServiceAccount (in-cluster config), list + watch of ``security.istio.io/v1``
  ``AuthorizationPolicy`` and ``PeerAuthentication`` in the pod's namespace and the
  root namespace (``istio-system``), and a read of its own pod for its labels
  (every 30 s). When a watch fails (API server unreachable, node cut off) the last
  state it saw is kept and served, as Envoy keeps its last xDS configuration, and
  the watch is retried.
- :class:`StaticPolicySource`: from a YAML or JSON file,
  ``{"pod_labels": {...}, "policies": [...]}`` (``CMSLAB_SIDECAR_POLICY_FILE``),
  re-read when it changes, for running without a cluster. A policy without
  ``metadata.namespace`` belongs to the pod's namespace.

Either gives a :class:`PolicySnapshot`, or None until it has read everything once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

__all__ = [
    "KubePolicySource",
    "PolicySnapshot",
    "PolicySource",
    "StaticPolicySource",
    "snapshot_from_document",
]

logger = logging.getLogger("chaostoolkit")

GROUP, VERSION = "security.istio.io", "v1"
KINDS = {
    "AuthorizationPolicy": "authorizationpolicies",
    "PeerAuthentication": "peerauthentications",
}
POD_REFRESH_SECONDS = 30.0
WATCH_SECONDS = 60


@dataclass(frozen=True)
class PolicySnapshot:
    """The policies and labels one inbound decision is made with."""

    pod_labels: Mapping[str, str] = field(default_factory=dict)
    authorization_policies: tuple[Mapping[str, Any], ...] = ()
    peer_authentications: tuple[Mapping[str, Any], ...] = ()

    def describe(self) -> str:
        def names(items: tuple[Mapping[str, Any], ...]) -> str:
            metas = [p.get("metadata") or {} for p in items]
            refs = [f"{m.get('namespace', '')}/{m.get('name', '')}" for m in metas]
            return ",".join(sorted(refs)) or "-"

        return (
            f"AuthorizationPolicies {names(self.authorization_policies)}; "
            f"PeerAuthentications {names(self.peer_authentications)}"
        )


class PolicySource(Protocol):
    """Something that keeps a current :class:`PolicySnapshot`."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def snapshot(self) -> PolicySnapshot | None:
        """The current state; None until the source has read everything once."""
        ...


def snapshot_from_document(document: Any, namespace: str) -> PolicySnapshot:
    """A snapshot from ``{"pod_labels": {...}, "policies": [...]}``; ValueError if malformed."""
    if not isinstance(document, Mapping):
        raise ValueError("the policy file must hold a mapping")
    labels = document.get("pod_labels") or {}
    policies = document.get("policies") or []
    if not isinstance(labels, Mapping):
        raise ValueError("pod_labels must be a mapping")
    if not isinstance(policies, list):
        raise ValueError("policies must be a list")
    by_kind: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in KINDS}
    for i, policy in enumerate(policies):
        if not isinstance(policy, Mapping) or policy.get("kind") not in KINDS:
            raise ValueError(f"policies[{i}] is not an AuthorizationPolicy or PeerAuthentication")
        meta = dict(policy.get("metadata") or {})
        meta.setdefault("namespace", namespace)
        meta.setdefault("name", f"policy-{i}")
        by_kind[str(policy["kind"])].append({**policy, "metadata": meta})
    return PolicySnapshot(
        pod_labels={str(k): str(v) for k, v in labels.items()},
        authorization_policies=tuple(by_kind["AuthorizationPolicy"]),
        peer_authentications=tuple(by_kind["PeerAuthentication"]),
    )


class StaticPolicySource:
    """Policies and labels from a file, re-read whenever it changes (checked on each use)."""

    def __init__(self, path: str, namespace: str) -> None:
        self.path = Path(path)
        self.namespace = namespace
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._current: PolicySnapshot | None = None

    def start(self) -> None:
        self.snapshot()

    def stop(self) -> None:
        return

    def snapshot(self) -> PolicySnapshot | None:
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError as exc:
                if self._stamp != (-1, -1, -1):
                    logger.warning("sidecar: policy file %s: %s", self.path, exc.strerror)
                    self._stamp = (-1, -1, -1)
                return self._current
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    document = yaml.safe_load(self.path.read_text())
                    self._current = snapshot_from_document(document, self.namespace)
                except (OSError, ValueError, yaml.YAMLError) as exc:
                    logger.warning(
                        "sidecar: policy file %s unusable, keeping the last state: %s",
                        self.path,
                        exc,
                    )
                else:
                    logger.info(
                        "sidecar: policies from %s: %s", self.path, self._current.describe()
                    )
            return self._current


class KubePolicySource:
    """Policies and labels from the API server, with the pod's ServiceAccount."""

    def __init__(self, namespace: str, pod_name: str, root_namespace: str = "istio-system") -> None:
        self.namespace = namespace
        self.pod_name = pod_name
        self.namespaces = tuple(dict.fromkeys((namespace, root_namespace)))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # (namespace, plural) -> name -> object; present once listed
        self._objects: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        self._labels: dict[str, str] | None = None
        self._api: Any = None

    def start(self) -> None:
        from kubernetes import client, config

        config.load_incluster_config()
        self._api = client.ApiClient()
        for ns in self.namespaces:
            for plural in KINDS.values():
                threading.Thread(
                    target=self._watch_loop,
                    args=(ns, plural),
                    name=f"watch-{ns}-{plural}",
                    daemon=True,
                ).start()
        threading.Thread(target=self._pod_loop, name="pod-labels", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> PolicySnapshot | None:
        with self._lock:
            wanted = [(ns, plural) for ns in self.namespaces for plural in KINDS.values()]
            if self._labels is None or any(key not in self._objects for key in wanted):
                return None
            by_plural: dict[str, list[Mapping[str, Any]]] = {p: [] for p in KINDS.values()}
            for (_ns, plural), objects in self._objects.items():
                by_plural[plural].extend(objects.values())
            return PolicySnapshot(
                pod_labels=dict(self._labels),
                authorization_policies=tuple(by_plural["authorizationpolicies"]),
                peer_authentications=tuple(by_plural["peerauthentications"]),
            )

    def _set(self, key: tuple[str, str], objects: dict[str, Mapping[str, Any]]) -> None:
        with self._lock:
            first = key not in self._objects
            self._objects[key] = objects
        if first:
            logger.info("sidecar: %s in %s listed: %d", key[1], key[0], len(objects))

    def _event(self, key: tuple[str, str], kind: str, obj: Mapping[str, Any]) -> None:
        name = str(obj.get("metadata", {}).get("name", ""))
        with self._lock:
            objects = dict(self._objects.get(key, {}))
            if kind == "DELETED":
                objects.pop(name, None)
            else:
                objects[name] = obj
            self._objects[key] = objects
        logger.info("sidecar: %s %s/%s %s", key[1], key[0], name, kind.lower())

    def _watch_loop(self, namespace: str, plural: str) -> None:
        from kubernetes import client, watch

        api = client.CustomObjectsApi(self._api)
        key = (namespace, plural)
        failures = 0
        while not self._stop.is_set():
            try:
                listing: Any = api.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, _request_timeout=(5, 30)
                )
                objects = {str(o["metadata"]["name"]): o for o in listing.get("items", [])}
                self._set(key, objects)
                failures = 0
                stream = watch.Watch().stream(
                    api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=(5, WATCH_SECONDS + 15),
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    kind = str(event.get("type", ""))
                    if kind == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._event(key, kind, event["object"])
            except Exception as exc:  # noqa: BLE001 - any failure: keep the last state, retry
                failures += 1
                delay = min(1.0 + failures, 5.0)
                logger.warning(
                    "sidecar: watch of %s in %s failed (%s: %s); serving the last known "
                    "state, retry in %.0fs",
                    plural,
                    namespace,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:200] if str(exc) else "",
                    delay,
                )
                self._stop.wait(delay)

    def _pod_loop(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self._api)
        if not self.pod_name:
            logger.warning("sidecar: POD_NAME is not set: the pod's labels are taken as empty")
            with self._lock:
                self._labels = {}
            return
        while not self._stop.is_set():
            delay = POD_REFRESH_SECONDS
            try:
                pod = core.read_namespaced_pod(
                    self.pod_name, self.namespace, _request_timeout=(5, 15)
                )
                meta = pod.metadata
                found = (meta.labels if meta is not None else None) or {}
                labels = {str(k): str(v) for k, v in found.items()}
                with self._lock:
                    changed, self._labels = self._labels != labels, labels
                if changed:
                    logger.info("sidecar: pod labels %s", labels)
            except Exception as exc:  # noqa: BLE001 - keep the last labels, retry
                with self._lock:
                    known = self._labels is not None
                delay = POD_REFRESH_SECONDS if known else 2.0
                logger.warning(
                    "sidecar: reading pod %s/%s failed (%s); retry in %.0fs",
                    self.namespace,
                    self.pod_name,
                    type(exc).__name__,
                    delay,
                )
            self._stop.wait(delay)
