"""Probes: the certificates running proxies hold - fresh, for their own identity, rotated.

Each pod's proxy is asked what it holds as a person would ask it:
``kubectl exec <pod> -c istio-proxy -- pilot-agent request GET certs`` (Envoy's admin
``/certs``, through pilot-agent). The leaf's SPIFFE URI must be
``spiffe://<trust domain>/ns/<namespace>/sa/<the pod's ServiceAccount>``. Serials can
be kept as a baseline for the rest of the run, so that a later check says which
proxies got a new certificate across a fault. No key material is involved: Envoy's
``/certs`` lists certificates' facts only. No ``from __future__ import annotations``:
chaoslib reads these signatures.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, core_v1
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes._baselines import RunRecords

__all__ = ["certificate_rotation", "proxy_certificates"]

CERTS_COMMAND = ["pilot-agent", "request", "GET", "certs"]
EXEC_TIMEOUT = 20
_SERIALS: RunRecords[dict[str, str]] = RunRecords("certificate serials")


def _certificates_inputs(
    namespace: Any,
    label_selector: Any,
    container: Any,
    min_valid_seconds: Any,
    trust_domain: Any,
    record_as: Any,
) -> tuple["_Query", int, str]:
    """:func:`proxy_certificates`' input check (pure)."""
    return (
        _Query.checked(namespace, label_selector, container, trust_domain),
        _validate.duration("min_valid_seconds", min_valid_seconds, minimum=0),
        _validate.optional_dns_label("record_as", record_as),
    )


@_validate.checks(_certificates_inputs)
def proxy_certificates(
    namespace: str = "default",
    label_selector: str = "",
    container: str = "istio-proxy",
    min_valid_seconds: int = 0,
    trust_domain: str = "cluster.local",
    record_as: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Does every proxy in `namespace` (pods matching `label_selector`) hold a valid
    certificate for its own identity?

    Asks each Running pod with a `container` (the sidecar) for its certificates.
    `ok` when every one holds a leaf whose only SPIFFE URI is its pod's identity and
    that is valid for at least `min_valid_seconds` more. `record_as` keeps the serials
    under that name for :func:`certificate_rotation` later in the run. Returns `{"ok",
    "reason", "namespace", "proxies": [{"pod", "node", "identity", "spiffe_uris",
    "serial", "not_after", "seconds_left", "identity_ok", "valid", "error"}],
    "checked_at"}`. Tolerance: `$.ok`.
    """
    query, min_valid_seconds, record_as = _certificates_inputs(
        namespace, label_selector, container, min_valid_seconds, trust_domain, record_as
    )
    proxies = query.run(configuration, secrets)
    for p in proxies:
        p["valid"] = p["seconds_left"] is not None and p["seconds_left"] >= min_valid_seconds
    bad = [
        f"{p['pod']}: {p['error'] or _problem(p, min_valid_seconds)}"
        for p in proxies
        if not (p["identity_ok"] and p["valid"])
    ]
    if not proxies:
        bad.append(f"no running pod with a {container!r} container in {namespace!r}")
    if record_as:
        _SERIALS.record(record_as, {p["pod"]: p["serial"] for p in proxies if p["serial"]})
    return {
        "ok": not bad,
        "reason": "; ".join(bad) or None,
        "namespace": query.namespace,
        "proxies": proxies,
        "checked_at": datetime.now(UTC).isoformat(),
    }


def _rotation_inputs(
    compare_to: Any, namespace: Any, label_selector: Any, container: Any, trust_domain: Any
) -> tuple[str, "_Query"]:
    """:func:`certificate_rotation`'s input check (pure: whether `compare_to` was recorded
    is the run's state, asked when the probe runs)."""
    compare_to = _validate.optional_dns_label("compare_to", compare_to)
    if not compare_to:
        raise InvalidInput("compare_to", "required: the name given to record_as earlier")
    return compare_to, _Query.checked(namespace, label_selector, container, trust_domain)


@_validate.checks(_rotation_inputs)
def certificate_rotation(
    compare_to: str = "",
    namespace: str = "default",
    label_selector: str = "",
    container: str = "istio-proxy",
    trust_domain: str = "cluster.local",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Which proxies hold another certificate than when `compare_to` was recorded?

    `compare_to` names serials kept earlier in the run by :func:`proxy_certificates`
    (`record_as`). A pod seen then and now with another serial `rotated`; with the
    same one `kept`; pods that came or went are listed apart. Returns `{"rotated",
    "kept", "new_pods", "gone_pods", "all_rotated", "proxies"}`. Tolerance:
    `$.all_rotated` after a fault that should renew them, or `$.kept` empty.
    """
    compare_to, query = _rotation_inputs(
        compare_to, namespace, label_selector, container, trust_domain
    )
    before = _SERIALS.get(compare_to)
    if before is None:
        raise InvalidInput("compare_to", f"no serials {compare_to!r} recorded earlier in this run")
    proxies = query.run(configuration, secrets)
    now = {p["pod"]: p["serial"] for p in proxies if p["serial"]}
    seen = sorted(set(before) & set(now))
    rotated = [pod for pod in seen if now[pod] != before[pod]]
    return {
        "rotated": rotated,
        "kept": [pod for pod in seen if now[pod] == before[pod]],
        "new_pods": sorted(set(now) - set(before)),
        "gone_pods": sorted(set(before) - set(now)),
        "all_rotated": bool(seen) and len(rotated) == len(seen),
        "proxies": proxies,
    }


# ---------------------------------------------------------------- the shared query


class _Query:
    def __init__(self, namespace: str, selector: str, container: str, trust_domain: str):
        self.namespace, self.selector = namespace, selector
        self.container, self.trust_domain = container, trust_domain

    @classmethod
    def checked(
        cls, namespace: Any, label_selector: Any, container: Any, trust_domain: Any
    ) -> "_Query":
        selector = label_selector
        if selector != "":
            selector = _validate.label_selector("label_selector", label_selector)
        return cls(
            _validate.dns_label("namespace", namespace),
            selector,
            _validate.dns_label("container", container),
            _validate.dns_subdomain("trust_domain", trust_domain),
        )

    def run(self, configuration: Configuration, secrets: Secrets) -> list[dict[str, Any]]:
        core = core_v1(configuration, secrets)
        _kube.require_namespace(core, self.namespace)
        with api_errors(f"list pods {self.selector!r} in {self.namespace!r}"):
            listed: Any = core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        pods: list[Any] = listed.items
        proxied: list[Any] = [
            p
            for p in pods
            if p.status.phase == "Running"
            and not _kube.pod_terminating(p)
            and any(c.name == self.container for c in p.spec.containers)
        ]
        config = core.api_client.configuration
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(proxied)))) as pool:
            found = list(pool.map(lambda pod: self._ask(config, pod), proxied))
        return sorted(found, key=lambda p: str(p["pod"]))

    def _ask(self, config: Any, pod: Any) -> dict[str, Any]:
        sa = pod.spec.service_account_name or "default"
        identity = f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{sa}"
        out: dict[str, Any] = {
            "pod": pod.metadata.name,
            "node": pod.spec.node_name,
            "identity": identity,
            "spiffe_uris": [],
            "serial": None,
            "not_after": None,
            "seconds_left": None,
            "identity_ok": False,
            "valid": False,
            "error": None,
        }
        try:
            stdout, stderr = _kube.exec_in_pod(
                config, pod, self.container, CERTS_COMMAND, EXEC_TIMEOUT
            )
            try:
                leaf = _leaf(json.loads(stdout))
            except ValueError as exc:
                raise ValueError(stderr.strip() or stdout.strip()[:200] or "no output") from exc
        except Exception as exc:  # noqa: BLE001 - reported per proxy, never a crash
            out["error"] = f"could not read its certificates: {exc}"
            return out
        if leaf is None:
            out["error"] = "holds no workload certificate"
            return out
        uris = [s["uri"] for s in leaf.get("subject_alt_names", []) if "uri" in s]
        not_after = datetime.strptime(leaf["expiration_time"], "%Y-%m-%dT%H:%M:%SZ")
        not_after = not_after.replace(tzinfo=UTC)
        out.update(
            {
                "spiffe_uris": uris,
                "serial": str(leaf.get("serial_number", "")).lower() or None,
                "not_after": not_after.isoformat(),
                "seconds_left": int((not_after - datetime.now(UTC)).total_seconds()),
                "identity_ok": uris == [identity],
            }
        )
        return out


def _leaf(certs: Any) -> dict[str, Any] | None:
    """The first certificate of the first workload chain in Envoy's ``/certs`` answer."""
    for entry in certs.get("certificates", []):
        chain = entry.get("cert_chain") or []
        if chain:
            leaf: dict[str, Any] = chain[0]
            return leaf
    return None


def _problem(proxy: dict[str, Any], min_valid_seconds: int) -> str:
    if not proxy["identity_ok"]:
        return f"holds {proxy['spiffe_uris']}, not {proxy['identity']}"
    return f"{proxy['seconds_left']}s left, at least {min_valid_seconds}s required"
