"""Is a destination Service served at all? A request to a Service with no Ready endpoint
times out or is refused, exactly as an L4 policy drop is, but no policy decided it.

That happens during a partition: once the cut-off node is NotReady (the node monitor's
grace period, 40-50 s), its pods leave their Services' endpoints, and every request to
them fails whatever the policies say. The matrix probe asks here before it puts such a
failure on the network layer.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from kubernetes.client import DiscoveryV1Api
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec.client import api_errors

__all__ = ["ready_endpoints", "service_of"]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def service_of(url: str, namespace: str) -> tuple[str, str] | None:
    """The (namespace, name) of the Service a cluster-DNS URL names, from a pod in
    ``namespace``: ``name``, ``name.ns``, ``name.ns.svc[.<cluster domain>]``; None for an
    IP or any other host (pure)."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 or parts[2] == "svc":
        return parts[1], parts[0]
    return None


def ready_endpoints(discovery: DiscoveryV1Api, namespace: str, name: str) -> int | None:
    """How many Ready endpoint addresses the Service has now; None if it cannot be told:
    no EndpointSlice names it (not a Service: the EndpointSlice controller keeps one, if
    empty, for every Service with a selector) or they may not be read."""
    with api_errors(f"list the EndpointSlices of Service {namespace}/{name}"):
        try:
            slices = discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"{SERVICE_NAME_LABEL}={name}"
            ).items
        except ApiException as exc:  # unknown is not "none": the verdict stays
            if exc.status in (403, 404):
                return None
            raise
    if not slices:
        return None
    return sum(
        len(ep.addresses or [])
        for s in slices
        for ep in s.endpoints or []
        if ep.conditions is None or ep.conditions.ready is not False
    )
