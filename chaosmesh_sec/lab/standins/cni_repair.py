"""The istio-cni node agent's pod watch, for the lab: repair labels and ambient enrolment.

Run inside the install-cni stand-in (:mod:`.cni_node`) while it is up, for the pods
of its own node (``NODE_NAME``), with its ServiceAccount:

- **repair** (istio-cni's repair controller in ``labelPods`` mode): a pod whose
  ``istio-validation`` init container terminated with exit code 126 (traffic not
  captured) gets the label ``cni.istio.io/uninitialized=true``, patched through
  ``pods/status`` as upstream does;
- **ambient enrolment**: a pod of a namespace labelled
  ``istio.io/dataplane-mode=ambient`` (or labelled so itself), not opted out with
  ``none``, without a sidecar and not on the host network, gets the annotation
  ``ambient.istio.io/redirection: enabled`` (upstream writes it once it has set up
  the pod's redirection to ztunnel; the lab has no ztunnel, so the annotation is
  all this reproduces: enrolment happens only while the agent runs, and pods
  created while it was down are enrolled when it comes back).

What it leaves out: ``deletePods`` and in-place repair modes, ztunnel, un-enrolment.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kubernetes import client, watch

__all__ = [
    "AMBIENT_ANNOTATION",
    "DATAPLANE_MODE",
    "UNINITIALIZED_LABEL",
    "PodWatch",
    "needs_enrolment",
    "needs_repair_label",
]

logger = logging.getLogger("chaostoolkit")

UNINITIALIZED_LABEL = "cni.istio.io/uninitialized"
AMBIENT_ANNOTATION = "ambient.istio.io/redirection"
DATAPLANE_MODE = "istio.io/dataplane-mode"
VALIDATION = "istio-validation"
# istio-validation's exit code when outbound traffic is not redirected (Istio's
# constants.ValidationErrorCode): `pilot-agent istio-iptables --run-validation`
# exits with it, and the repair controller acts on it alone.
VALIDATION_ERROR_CODE = 126


def needs_repair_label(pod: Any) -> bool:
    """The validation container says 126 and the pod is not labelled yet (pure)."""
    if UNINITIALIZED_LABEL in (pod.metadata.labels or {}):
        return False
    for status in pod.status.init_container_statuses or []:
        if status.name != VALIDATION:
            continue
        ended = [s.terminated for s in (status.state, status.last_state) if s is not None]
        if any(t is not None and t.exit_code == VALIDATION_ERROR_CODE for t in ended):
            return True
    return False


def needs_enrolment(pod: Any, namespace_mode: str) -> bool:
    """An ambient pod of this node without the redirection annotation (pure)."""
    mode = (pod.metadata.labels or {}).get(DATAPLANE_MODE, namespace_mode)
    if mode != "ambient" or pod.spec.host_network:
        return False
    if pod.metadata.deletion_timestamp is not None or pod.status.phase in ("Succeeded", "Failed"):
        return False
    if any(c.name == "istio-proxy" for c in pod.spec.containers):
        return False
    return (pod.metadata.annotations or {}).get(AMBIENT_ANNOTATION) != "enabled"


class PodWatch:
    """Watch the node's pods; label broken ones, annotate ambient ones."""

    def __init__(self, node: str, api: client.ApiClient) -> None:
        self.node = node
        self.core = client.CoreV1Api(api)
        self.stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="pod-watch", daemon=True).start()

    def _namespace_mode(self, name: str) -> str:
        ns: Any = self.core.read_namespace(name)
        return str((ns.metadata.labels or {}).get(DATAPLANE_MODE, ""))

    def _handle(self, pod: Any) -> None:
        meta = pod.metadata
        if needs_repair_label(pod):
            body = {"metadata": {"labels": {UNINITIALIZED_LABEL: "true"}}}
            self.core.patch_namespaced_pod_status(meta.name, meta.namespace, body)
            logger.info("istio-cni repair: %s/%s labelled %s", meta.namespace, meta.name, body)
        if needs_enrolment(pod, self._namespace_mode(meta.namespace)):
            body = {"metadata": {"annotations": {AMBIENT_ANNOTATION: "enabled"}}}
            self.core.patch_namespaced_pod_status(meta.name, meta.namespace, body)
            logger.info("istio-cni ambient: %s/%s enrolled", meta.namespace, meta.name)

    def _loop(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while not self.stop.is_set():
            try:
                listed: Any = self.core.list_pod_for_all_namespaces(field_selector=selector)
                for pod in listed.items:
                    self._handle(pod)
                for event in watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    if self.stop.is_set():
                        return
                    if event["type"] != "DELETED":
                        self._handle(event["object"])
            except Exception as exc:  # noqa: BLE001 - the API may be unreachable; retry
                logger.warning("istio-cni pod watch: %s; retrying", exc)
                time.sleep(2)
