"""Proxies' certificates, read as a person would (``pilot-agent request GET certs``).

The lab's sidecars are the real pilot-agent and Envoy: pilot-agent gets a certificate
from istiod for its pod's ServiceAccount and hands it to Envoy over SDS. The probe reads
Envoy's certificates through exec (``pilot-agent request GET certs``, Envoy's admin
``/certs``), checks the identity and expiry, and tells rotation apart across a check (a
workload with a short certificate lifetime).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from chaosmesh_sec.probes import sidecar_certs
from tests.lab_fixtures import eventually, kit_deployment


def test_every_kit_proxy_holds_a_fresh_certificate_for_its_own_identity(lab: Path) -> None:
    result = sidecar_certs.proxy_certificates(namespace="default", min_valid_seconds=60)
    assert result["ok"] is True, result["reason"]
    by_pod = {p["pod"]: p for p in result["proxies"]}
    assert len(by_pod) >= 4
    for name, proxy in by_pod.items():
        account = name.rsplit("-", 2)[0]  # sleep-v1-<hash>-<id> -> sleep-v1
        assert proxy["identity"] == f"spiffe://cluster.local/ns/default/sa/{account}"
        assert proxy["spiffe_uris"] == [proxy["identity"]]
        assert proxy["seconds_left"] > 60 and proxy["serial"]
    assert len({p["serial"] for p in result["proxies"]}) == len(result["proxies"])


def _short_lived(api: client.ApiClient, namespace: str) -> None:
    """The kit's sleep-v1, in ``namespace``, asking istiod for 20-second certificates.

    The lifetime is the proxy's to ask (pilot-agent's ``SECRET_TTL``): istiod's own
    ``DEFAULT_WORKLOAD_CERT_TTL`` applies only to a request that names none, and
    pilot-agent always names one (24 h unless told)."""
    dep = kit_deployment("wrong-identity", "sleep-v1", namespace)
    pod_spec = dep["spec"]["template"]["spec"]
    proxy = next(c for c in pod_spec["containers"] if c["name"] == "istio-proxy")
    proxy["env"].append({"name": "SECRET_TTL", "value": "20s"})
    client.AppsV1Api(api).create_namespaced_deployment(namespace, dep)


def test_rotation_is_seen_across_checks(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    _short_lived(api, namespace)

    def ready() -> Any:
        result = sidecar_certs.proxy_certificates(namespace=namespace)
        return result if result["ok"] else None

    eventually(ready, 90, "the short-lived proxy's certificate")
    # recorded once the proxy holds one: a run records a name once, the first time
    first = sidecar_certs.proxy_certificates(namespace=namespace, record_as="short")
    assert first["ok"], first
    [proxy] = first["proxies"]
    assert proxy["identity"] == f"spiffe://cluster.local/ns/{namespace}/sa/default"
    assert proxy["seconds_left"] <= 20

    def rotated() -> Any:  # pilot-agent renews at half the lifetime (SECRET_GRACE_PERIOD_RATIO)
        rotation = sidecar_certs.certificate_rotation(compare_to="short", namespace=namespace)
        return rotation if rotation["rotated"] else None

    rotation = eventually(rotated, 40, "a new certificate")
    assert rotation["rotated"] == [proxy["pod"]], rotation
    assert rotation["all_rotated"] is True and rotation["kept"] == []
