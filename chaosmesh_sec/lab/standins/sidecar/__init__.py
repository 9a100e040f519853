"""Stand-in for the ``istio-proxy`` sidecar (pilot-agent + Envoy) of a lab pod.

Run as ``python -m chaosmesh_sec.lab.standins.sidecar`` in the pod's network
namespace, as root. It does for real, on this machine, the part of a sidecar's job
that the pack's faults and probes observe:

- identity (:mod:`.identity`): a workload certificate from istiod's CA, with the
  pod's ServiceAccount token, kept in memory and rotated at half its lifetime;
- traffic capture (:mod:`.capture`): the pod's ``nat`` rules, in ``ISTIO_*`` chains,
  that redirect its inbound TCP to 15006 and its outbound TCP to 15001. As with
  Envoy, the proxy does not install them: istio-cni does (the lab's node agent,
  :mod:`chaosmesh_sec.lab.agent.cni`), or the ``istio-init`` container, and the
  ``istio-validation`` container checks them (:mod:`.iptables_tool`, exit 126);
- mutual TLS and authorization (:mod:`.listeners`): outbound connections
  originate mTLS to their original destination; inbound connections are held to
  the ``PeerAuthentication`` mode and ``AuthorizationPolicy`` decisions of
  :mod:`chaosmesh_sec.lab.standins.authz` (``403 RBAC: access denied``);
- policies and labels (:mod:`.policy`): from the API server (list + watch, last
  known state kept when it is unreachable) or from a static file;
- admin (:mod:`.admin`): ``/certs`` and ``/ready`` on ``127.0.0.1:15000``,
  ``/healthz/ready`` on 15021.

What it leaves out: xDS (policies come from the API, nothing else is configured:
no routes, clusters, retries, timeouts, load balancing, outlier detection), HTTP/2,
gRPC and WebSocket, JWT (``RequestAuthentication``), ``CUSTOM``/``AUDIT`` policies,
auto-mTLS and ``DestinationRule`` TLS settings, Sidecar resources, telemetry,
metadata exchange, DNS proxying, IPv6, and the SDS/file certificate providers.
Each module's docstring says what its part leaves out.

Environment: ``CA_ADDR``, ``CA_SERVER_NAME``, ``ISTIO_META_CLUSTER_ID``,
``TRUST_DOMAIN``, ``CERT_VALIDITY_SECONDS``, ``ISTIO_TOKEN_PATH``, ``ISTIO_ROOT_PATH``,
``POD_NAME``, ``POD_NAMESPACE``, ``EXCLUDE_INBOUND_PORTS``, ``EXCLUDE_OUTBOUND_PORTS``,
``EXCLUDE_OUTBOUND_IP_RANGES``, ``CMSLAB_SIDECAR_POLICY_FILE`` (see :class:`.config.Settings`).
"""

from __future__ import annotations

__all__: list[str] = []
