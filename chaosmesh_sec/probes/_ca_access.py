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

A probe call keeps its tunnels and channels open in one :class:`Channels` and reuses
them for every CSR it sends (a sampler's whole run).
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec.client import api_errors
from chaosmesh_sec.probes._ca_client import CaClient, IssueOutcome
from chaosmesh_sec.probes._tunnel import PodTunnel

__all__ = [
    "BROKEN_CODES",
    "CA_PORT",
    "VIAS",
    "CaTarget",
    "Caller",
    "Channels",
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


BROKEN_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "INTERNAL"})
"""Failures after which a channel is not trusted again: closed, and opened afresh for
the next CSR (a refusal such as UNAUTHENTICATED keeps it)."""


class Channels:
    """The ways to istiod a probe call keeps open: one port-forward and one gRPC channel
    per istiod pod (outside the cluster), or per address (inside), reused by every CSR
    of the call, closed by :meth:`close`.

    A CSR that fails as a broken channel would (:data:`BROKEN_CODES`) is that CSR's
    outcome; its channel and tunnel are closed and the next CSR to that pod opens new
    ones. A channel is opened again when the caller's token changes, and
    :meth:`keep_only` closes those of pods that went away. Every CSR still carries a
    fresh key (:func:`~._ca_client.new_csr`) and the caller's real token. Safe to use
    from several threads (a gRPC channel is).
    """

    def __init__(self, core: Any, via: Via, *, server_name: str, cluster_id: str) -> None:
        self._core, self._via = core, via
        self._server_name, self._cluster_id = server_name, cluster_id
        self._open: dict[str, tuple[str, PodTunnel | None, CaClient]] = {}
        self._lock = threading.Lock()
        self.opened = 0  # channels opened so far (for the bench, and tests)

    def __repr__(self) -> str:
        return f"Channels({self._via}, open={sorted(self._open)})"

    def __enter__(self) -> Channels:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def issue(
        self,
        target: CaTarget,
        who: Caller,
        *,
        timeout_seconds: float,
        csr_pem: bytes | None = None,
    ) -> IssueOutcome:
        """One CSR to `target` on its pod's (or address's) channel, opened if need be."""
        key = _key(target, self._via)
        client = self._client(key, target, who)
        outcome = client.issue(csr_pem, timeout_seconds=timeout_seconds)
        if not outcome.issued and outcome.code in BROKEN_CODES:
            self._drop(key, client)
        return outcome

    def keep_only(self, targets: list[CaTarget]) -> None:
        """Close the channels of every pod (or address) not among `targets`."""
        wanted = {_key(t, self._via) for t in targets if not t.unavailable}
        with self._lock:
            gone = [k for k in self._open if k not in wanted]
            closing = [self._open.pop(k) for k in gone]
        for entry in closing:
            _close(entry)

    def close(self) -> None:
        with self._lock:
            closing, self._open = list(self._open.values()), {}
        for entry in closing:
            _close(entry)

    def _client(self, key: str, target: CaTarget, who: Caller) -> CaClient:
        stale = None
        with self._lock:
            entry = self._open.get(key)
            if entry is not None and entry[0] == who.token:
                return entry[2]
            if entry is not None:  # the token was renewed: a channel carrying the new one
                stale = self._open.pop(key)
            tunnel = None
            if target.dns_name:
                address = target.dns_name
            elif self._via == "pod-ip":
                address = f"{target.pod_ip}:{CA_PORT}"
            else:
                tunnel = PodTunnel(self._core, str(target.pod), target.namespace, CA_PORT)
                address = tunnel.__enter__()
            try:
                client = CaClient(
                    address,
                    root_pem=who.root_pem,
                    server_name=self._server_name,
                    token=who.token,
                    cluster_id=self._cluster_id,
                    channel_options=(
                        [("grpc.enable_http_proxy", 0)] if self._via == "port-forward" else None
                    ),
                )
            except BaseException:
                if tunnel is not None:
                    tunnel.close()
                raise
            self._open[key] = (who.token, tunnel, client)
            self.opened += 1
        if stale is not None:
            _close(stale)
        return client

    def _drop(self, key: str, client: CaClient) -> None:
        with self._lock:
            entry = self._open.get(key)
            if entry is None or entry[2] is not client:
                return  # another thread dropped it already
            del self._open[key]
        _close(entry)


def _key(target: CaTarget, via: Via) -> str:
    if target.dns_name:
        return target.dns_name
    return f"ip:{target.pod_ip}" if via == "pod-ip" else f"pod:{target.namespace}/{target.pod}"


def _close(entry: tuple[str, PodTunnel | None, CaClient]) -> None:
    _token, tunnel, client = entry
    client.close()
    if tunnel is not None:
        tunnel.close()


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
    with Channels(core, via, server_name=server_name, cluster_id=cluster_id) as channels:
        return channels.issue(target, who, timeout_seconds=timeout_seconds, csr_pem=csr_pem)
