"""What an issuance probe needs before it can send a CSR: a token, the root, the targets.

Private to :mod:`chaosmesh_sec.probes`. Everything a user can get wrong that only
the cluster can tell (a ServiceAccount that does not exist, no istiod pod, no root
certificate published) comes back as a :class:`Refusal` with the reason, so that a
probe gives a verdict instead of crashing. The token lives in :class:`Caller` only,
whose ``repr`` hides it; it is never logged or returned.

Targets are reached one of two ways:

- ``port-forward`` (outside the cluster): a :class:`~chaosmesh_sec.probes._tunnel.PodTunnel`
  to the pod's port. The Service path is the Service's EndpointSlices read at each
  call, one Ready endpoint picked at random, as kube-proxy picks one;
- ``pod-ip`` (inside the cluster, e.g. the CronJob): the pod IP, and the Service's
  DNS name for the Service path.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec.client import api_errors
from chaosmesh_sec.probes._ca_client import CaClient, IssueOutcome
from chaosmesh_sec.probes._tunnel import PodTunnel

__all__ = [
    "CA_PORT",
    "VIAS",
    "CaTarget",
    "Caller",
    "Refusal",
    "caller",
    "issue",
    "replica_targets",
    "resolve_via",
    "service_target",
]

CA_PORT = 15012
ROOT_CONFIGMAP = "istio-ca-root-cert"
VIAS = ("auto", "port-forward", "pod-ip")
Via = Literal["port-forward", "pod-ip"]
_IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


class Refusal(Exception):
    """The cluster says no before any CSR: the reason goes into the probe's verdict."""


@dataclass(frozen=True)
class Caller:
    """Who the CSRs are sent as: a ServiceAccount's token, and the mesh's root."""

    namespace: str
    service_account: str
    identity: str  # the SPIFFE ID istiod must put in the leaf
    root_pem: bytes = field(repr=False)
    token: str = field(repr=False)


@dataclass(frozen=True)
class CaTarget:
    """One way to istiod's CA: a replica (a pod) or the Service."""

    name: str  # the pod's name, or "service"
    kind: Literal["replica", "service"]
    namespace: str
    pod: str | None = None  # for the Service: the endpoint picked, outside the cluster
    node: str | None = None
    pod_ip: str | None = None
    ready: bool | None = None
    dns_name: str | None = None  # the Service's, inside the cluster
    unavailable: str | None = None  # why no CSR can be sent (the Service has no endpoint)

    def brief(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "kind": self.kind,
            "pod": self.pod,
            "node": self.node,
            "pod_ip": self.pod_ip,
            "ready": self.ready,
        }


def resolve_via(via: str) -> Via:
    """``auto`` is ``pod-ip`` inside a pod (a ServiceAccount token is mounted), else
    ``port-forward``."""
    if via == "auto":
        inside = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
            _IN_CLUSTER_TOKEN
        )
        return "pod-ip" if inside else "port-forward"
    return "pod-ip" if via == "pod-ip" else "port-forward"


def caller(
    core: Any,
    namespace: str,
    service_account: str,
    audience: str,
    trust_domain: str,
    token_seconds: int = 600,
) -> Caller:
    """A fresh token (TokenRequest) for the ServiceAccount, and the root it must trust."""
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[audience], expiration_seconds=token_seconds)
    )
    with api_errors(f"request a token for ServiceAccount {namespace}/{service_account}"):
        try:
            issued = core.create_namespaced_service_account_token(
                service_account, namespace, request
            )
        except ApiException as exc:
            if exc.status == 404:
                raise Refusal(
                    f"ServiceAccount {service_account!r} not found in namespace {namespace!r}"
                ) from exc
            if exc.status == 403:
                raise Refusal(
                    f"not allowed to request a token for ServiceAccount {namespace}/"
                    f"{service_account} (serviceaccounts/token create)"
                ) from exc
            raise
    return Caller(
        namespace=namespace,
        service_account=service_account,
        identity=f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}",
        root_pem=_root(core, namespace),
        token=issued.status.token,
    )


def _root(core: Any, namespace: str) -> bytes:
    """The mesh root istiod publishes into every namespace."""
    with api_errors(f"read ConfigMap {ROOT_CONFIGMAP} in {namespace!r}"):
        try:
            cm = core.read_namespaced_config_map(ROOT_CONFIGMAP, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise Refusal(
                    f"no {ROOT_CONFIGMAP} ConfigMap in namespace {namespace!r}: istiod has not "
                    "published its root there (is istiod running?)"
                ) from exc
            raise
    root = str((cm.data or {}).get("root-cert.pem", ""))
    if "BEGIN CERTIFICATE" not in root:
        raise Refusal(f"{ROOT_CONFIGMAP} in {namespace!r} holds no root-cert.pem")
    return root.encode()


def replica_targets(core: Any, namespace: str, selector: str) -> list[CaTarget]:
    """Every live istiod pod with an IP, by name (Ready or not: a probe reports which)."""
    with api_errors(f"list istiod pods {selector!r} in {namespace!r}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    targets = [
        CaTarget(
            name=p.metadata.name,
            kind="replica",
            namespace=namespace,
            pod=p.metadata.name,
            node=p.spec.node_name,
            pod_ip=p.status.pod_ip,
            ready=any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
        )
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status and p.status.pod_ip
    ]
    return sorted(targets, key=lambda t: t.name)


def service_target(discovery: Any, namespace: str, service: str, via: Via) -> CaTarget:
    """The Service path: its DNS name inside the cluster, one Ready endpoint outside."""
    if via == "pod-ip":
        return CaTarget(
            name="service",
            kind="service",
            namespace=namespace,
            dns_name=f"{service}.{namespace}.svc:{CA_PORT}",
        )
    with api_errors(f"list EndpointSlices of Service {namespace}/{service}"):
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        ).items
    ready = [
        ep
        for s in slices
        if any(p.port == CA_PORT for p in s.ports or [])
        for ep in s.endpoints or []
        if ep.conditions and ep.conditions.ready and ep.target_ref and ep.target_ref.kind == "Pod"
    ]
    if not ready:
        return CaTarget(
            name="service",
            kind="service",
            namespace=namespace,
            unavailable=f"Service {namespace}/{service} has no Ready endpoint on port {CA_PORT}",
        )
    ep = random.choice(ready)  # noqa: S311 - load spreading, not security
    return CaTarget(
        name="service",
        kind="service",
        namespace=namespace,
        pod=ep.target_ref.name,
        node=ep.node_name,
        pod_ip=ep.addresses[0],
        ready=True,
    )


@contextlib.contextmanager
def _address(core: Any, target: CaTarget, via: Via) -> Iterator[str]:
    if target.dns_name:
        yield target.dns_name
    elif via == "pod-ip":
        yield f"{target.pod_ip}:{CA_PORT}"
    else:
        with PodTunnel(core, str(target.pod), target.namespace, CA_PORT) as address:
            yield address


def issue(
    core: Any,
    target: CaTarget,
    who: Caller,
    via: Via,
    *,
    server_name: str,
    cluster_id: str,
    timeout_seconds: float,
    csr_pem: bytes | None = None,
) -> IssueOutcome:
    """One CSR to ``target`` on a fresh connection, as a new workload would send it."""
    with (
        _address(core, target, via) as address,
        CaClient(
            address,
            root_pem=who.root_pem,
            server_name=server_name,
            token=who.token,
            cluster_id=cluster_id,
            channel_options=[("grpc.enable_http_proxy", 0)] if via == "port-forward" else None,
        ) as ca,
    ):
        return ca.issue(csr_pem, timeout_seconds=timeout_seconds)
