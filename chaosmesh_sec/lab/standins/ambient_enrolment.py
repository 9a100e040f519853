"""Stand-in for the ambient enrolment istio-cni's node agent does with ztunnel.

The real agent, with ambient on, sets each ambient pod's redirection to the node's
ztunnel up and, once ztunnel has it, annotates the pod
``ambient.istio.io/redirection: enabled``. ztunnel is not something the lab can
run (it is not published as a crate or a Go module), so the lab runs istio-cni's
real agent with ambient off, as the chart does for sidecars, and this process in the
same pod (container ``ambient-enrolment`` of ``istio-cni-node``) reproduces that one
documented behaviour: a pod of a namespace labelled ``istio.io/dataplane-mode=ambient``
(or labelled so itself), not opted out with ``none``, without a sidecar and not on the
host network, gets the annotation, through ``pods/status`` as upstream patches it.
Enrolment happens only while the agent's pod runs, and pods created while it was down
are enrolled when it comes back.

What it leaves out: the redirection itself (no ztunnel), un-enrolment.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from kubernetes import client, config, watch

__all__ = ["AMBIENT_ANNOTATION", "DATAPLANE_MODE", "main", "needs_enrolment"]

logger = logging.getLogger("chaostoolkit")

AMBIENT_ANNOTATION = "ambient.istio.io/redirection"
DATAPLANE_MODE = "istio.io/dataplane-mode"


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


def _enrol(core: client.CoreV1Api, pod: Any) -> None:
    meta = pod.metadata
    ns: Any = core.read_namespace(meta.namespace)
    if needs_enrolment(pod, str((ns.metadata.labels or {}).get(DATAPLANE_MODE, ""))):
        body = {"metadata": {"annotations": {AMBIENT_ANNOTATION: "enabled"}}}
        core.patch_namespaced_pod_status(meta.name, meta.namespace, body)
        logger.info("ambient enrolment: %s/%s enrolled", meta.namespace, meta.name)


def watch_pods(node: str, core: client.CoreV1Api, stop: threading.Event) -> None:
    """List and watch the node's pods until ``stop``, enrolling the ambient ones."""
    selector = f"spec.nodeName={node}"
    while not stop.is_set():
        try:
            listed: Any = core.list_pod_for_all_namespaces(field_selector=selector)
            for pod in listed.items:
                _enrol(core, pod)
            for event in watch.Watch().stream(
                core.list_pod_for_all_namespaces,
                field_selector=selector,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=60,
            ):
                if stop.is_set():
                    return
                if event["type"] != "DELETED":
                    _enrol(core, event["object"])
        except Exception as exc:  # noqa: BLE001 - the API may be unreachable; retry
            logger.warning("ambient enrolment: %s; retrying", exc)
            time.sleep(2)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    config.load_incluster_config()
    core = client.CoreV1Api(client.ApiClient())
    threading.Thread(
        target=watch_pods, args=(os.environ["NODE_NAME"], core, stop), daemon=True
    ).start()
    stop.wait()


if __name__ == "__main__":
    main()
