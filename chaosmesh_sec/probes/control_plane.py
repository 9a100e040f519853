"""Is the mesh's control plane up? istiod replicas, and the root certificate it publishes.

Both probes are read-only and make one API call each. No ``from __future__ import
annotations`` here: chaoslib's ``discover()`` reads these signatures at run time
(see :mod:`chaosmesh_sec._types`).
"""

import logging
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from kubernetes.client import V1Pod
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec import _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, core_v1

__all__ = ["istiod_replicas_ready", "root_cert_published"]

logger = logging.getLogger("chaostoolkit")

ROOT_CERT_KEY = "root-cert.pem"


def _ready_inputs(min_ready: Any, namespace: Any, label_selector: Any) -> tuple[int, str, str]:
    """:func:`istiod_replicas_ready`'s input check (pure)."""
    return (
        _validate.non_negative_int("min_ready", min_ready),
        _validate.dns_label("namespace", namespace),
        _validate.label_selector("label_selector", label_selector),
    )


@_validate.checks(_ready_inputs)
def istiod_replicas_ready(
    min_ready: int = 1,
    namespace: str = "istio-system",
    label_selector: str = "app=istiod",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Are at least `min_ready` istiod pods Running and Ready?

    Lists the pods matching `label_selector` in `namespace`. Returns
    `{"ready": bool, "ready_replicas": int, "min_ready": int, "namespace": str,
    "label_selector": str, "pods": [{"name", "node", "phase", "ready"}]}`;
    tolerate on `$.ready`.
    """
    min_ready, namespace, label_selector = _ready_inputs(min_ready, namespace, label_selector)

    api = core_v1(configuration, secrets)
    with api_errors(f"list pods {label_selector!r} in namespace {namespace!r}"):
        pods = api.list_namespaced_pod(namespace, label_selector=label_selector).items
    summary = sorted((_pod_summary(pod) for pod in pods), key=lambda p: str(p["name"]))
    ready_replicas = sum(1 for p in summary if p["ready"])
    logger.debug("istiod pods in %s: %d ready of %d", namespace, ready_replicas, len(summary))
    return {
        "ready": ready_replicas >= min_ready,
        "ready_replicas": ready_replicas,
        "min_ready": min_ready,
        "namespace": namespace,
        "label_selector": label_selector,
        "pods": summary,
    }


def _root_cert_inputs(namespace: Any, configmap: Any) -> tuple[str, str]:
    """:func:`root_cert_published`'s input check (pure)."""
    return _validate.dns_label("namespace", namespace), _validate.dns_subdomain(
        "configmap", configmap
    )


@_validate.checks(_root_cert_inputs)
def root_cert_published(
    namespace: str = "default",
    configmap: str = "istio-ca-root-cert",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Does `namespace` hold istiod's root certificate, parseable and within its validity?

    Reads `root-cert.pem` from the ConfigMap istiod publishes in every namespace.
    Returns `{"published": bool, "namespace", "configmap", "fingerprint_sha256",
    "subject", "not_before", "not_after", "certificates": int, "reason"}` about the
    first certificate of the bundle; tolerate on `$.published`. Certificates hold
    no private key; the PEM itself is not returned.
    """
    namespace, configmap = _root_cert_inputs(namespace, configmap)

    result: JSONObject = {
        "published": False,
        "namespace": namespace,
        "configmap": configmap,
        "fingerprint_sha256": None,
        "subject": None,
        "not_before": None,
        "not_after": None,
        "certificates": 0,
        "reason": None,
    }
    api = core_v1(configuration, secrets)
    with api_errors(f"read ConfigMap {configmap!r} in namespace {namespace!r}"):
        try:
            cm = api.read_namespaced_config_map(configmap, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            result["reason"] = f"ConfigMap {namespace}/{configmap} not found"
            return result
    pem = (cm.data or {}).get(ROOT_CERT_KEY)
    if not pem:
        result["reason"] = f"ConfigMap {namespace}/{configmap} has no {ROOT_CERT_KEY!r}"
        return result
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        result["reason"] = f"{ROOT_CERT_KEY!r} does not parse as PEM certificates: {exc}"
        return result
    result.update(_cert_facts(certs[0]))
    result["certificates"] = len(certs)
    now = datetime.now(UTC)
    cert = certs[0]
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        result["reason"] = f"root certificate is outside its validity (now {now.isoformat()})"
        return result
    result["published"] = True
    return result


def _pod_summary(pod: V1Pod) -> dict[str, object]:
    """Name, node, phase and readiness of a pod."""
    status = pod.status
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    phase = status.phase if status else None
    return {
        "name": pod.metadata.name if pod.metadata else None,
        "node": pod.spec.node_name if pod.spec else None,
        "phase": phase,
        "ready": bool(ready and phase == "Running"),
    }


def _cert_facts(cert: x509.Certificate) -> dict[str, object]:
    """Public facts about a certificate, for the journal."""
    return {
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "subject": cert.subject.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }
