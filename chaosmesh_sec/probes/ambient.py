"""Probe: ambient mode reaches the pods it should, and no NetworkPolicy cuts it off.

In Istio's ambient mode the istio-cni node agent redirects an enrolled pod's traffic
to ztunnel and annotates the pod ``ambient.istio.io/redirection: enabled``. Mesh
traffic then reaches the destination pod as HBONE, on TCP port 15008, and the
kubelet's health probes are SNATed to the link-local source 169.254.7.127. Istio
does not bypass NetworkPolicy, so a policy written before the move to ambient can
silently break it:

* ``hbone_port_blocked``: the pod is isolated for ingress and no rule admits TCP
  15008 from a pod (a rule that only lets 9090 in drops all mesh traffic);
* ``kubelet_probe_blocked``: no rule admits 169.254.7.127 on the ports the pod's
  probes use (on any port when it has none), so its probes fail once it is enrolled
  (a default-deny policy needs an ``ipBlock`` 169.254.7.127/32);
* ``not_redirected``: the pod should be in the mesh (its namespace or itself labelled
  ``istio.io/dataplane-mode=ambient``) and is not redirected. A pod labelled
  ``istio.io/dataplane-mode=none`` opted out on purpose.

Pods with ``hostNetwork``, Succeeded or Failed pods and sidecar pods (an
``istio-proxy`` container or the ``sidecar.istio.io/status`` annotation) are not
ambient pods. Read-only: the namespaces, pods and NetworkPolicies, read through the
API; the policies are evaluated by :mod:`chaosmesh_sec.probes._netpol`. No ``from
__future__ import annotations``: chaoslib reads the signature.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any, List  # noqa: UP035 - chaoslib names typing.List "list"

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from chaosmesh_sec import _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, core_v1
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import _netpol
from chaosmesh_sec.probes._netpol import part

__all__ = ["ambient_posture"]

logger = logging.getLogger("chaostoolkit")

HBONE_PORT = 15008
KUBELET_SOURCE = "169.254.7.127"
DATAPLANE_MODE = "istio.io/dataplane-mode"
REDIRECTION = "ambient.istio.io/redirection"
SIDECAR_STATUS = "sidecar.istio.io/status"
SIDECAR_CONTAINER = "istio-proxy"

_Obj = Mapping[str, Any]


def _namespace_names(namespaces: Any) -> list[str]:
    """:func:`ambient_posture`'s input check (pure)."""
    if not isinstance(namespaces, list | tuple):
        raise InvalidInput(
            "namespaces", f"must be a list of namespace names, got {type(namespaces).__name__}"
        )
    return sorted({_validate.dns_label("namespaces", name) for name in namespaces})


@_validate.checks(_namespace_names)
def ambient_posture(
    namespaces: List[str] = [],  # noqa: B006, UP006 - never changed; chaoslib's "list"
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Are the ambient pods of `namespaces` (every namespace when empty) in the mesh and
    reachable through their NetworkPolicies?

    Every namespace named must exist. Reads the namespaces, their pods and their
    NetworkPolicies. Returns `{"holds", "ambient_pods", "findings": [{"kind",
    "namespace", "pod", "policies", "detail"}], "checked_namespaces"}`: `kind` is
    `hbone_port_blocked` (no policy admits TCP 15008 from a pod: mesh traffic is
    dropped), `kubelet_probe_blocked` (169.254.7.127, the kubelet's probes in ambient
    mode, is not admitted) or `not_redirected` (the pod should be in the mesh and is
    not); `policies` names the NetworkPolicies isolating the pod (empty for
    `not_redirected`). `ambient_pods` counts the redirected pods. Tolerance: `$.holds`.
    """
    names = _namespace_names(namespaces)
    core = core_v1(configuration, secrets)
    labels = _namespace_labels(core, names)
    pods, policies = _listed(core, k8s.NetworkingV1Api(core.api_client), names)
    ambient = 0
    findings: list[JSONObject] = []
    for pod in pods:
        namespace = _meta(pod).get("namespace", "")
        mode = _mode(pod, labels.get(namespace, {}))
        if mode == "redirected":
            ambient += 1
            findings += _policy_findings(pod, policies)
        elif mode == "missing":
            phase = part(pod, "status").get("phase") or "Pending"
            findings.append(
                _finding(
                    "not_redirected",
                    pod,
                    [],
                    f"should be in the ambient mesh but is not redirected (no {REDIRECTION}: "
                    f"enabled annotation; phase {phase}): its traffic bypasses the mesh",
                )
            )
    findings.sort(key=lambda f: (f["namespace"], f["pod"], f["kind"]))
    logger.info(
        "ambient posture: %s (%d ambient pods, %d findings)",
        "holds" if not findings else "DEVIATES",
        ambient,
        len(findings),
    )
    return {
        "holds": not findings,
        "ambient_pods": ambient,
        "findings": findings,
        "checked_namespaces": sorted(labels),
    }


# ---------------------------------------------------------------- inputs and the cluster


def _namespace_labels(core: Any, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each namespace's labels: the named ones (InvalidInput when one is missing), else all."""
    if not names:
        with api_errors("list namespaces"):
            listed: Any = core.list_namespace()
        return {ns.metadata.name: ns.metadata.labels or {} for ns in listed.items}
    found: dict[str, dict[str, str]] = {}
    for name in names:
        with api_errors(f"read namespace {name!r}"):
            try:
                found[name] = core.read_namespace(name).metadata.labels or {}
            except ApiException as exc:
                if exc.status != 404:
                    raise
                raise InvalidInput("namespaces", f"namespace {name!r} does not exist") from exc
    return found


def _listed(core: Any, net: Any, names: Sequence[str]) -> tuple[list[_Obj], list[_Obj]]:
    """Pods and NetworkPolicies of the named namespaces (of all when none), as JSON dicts."""
    pods: list[Any] = []
    policies: list[Any] = []
    with api_errors(f"list pods and NetworkPolicies in {', '.join(names) or 'all namespaces'}"):
        if not names:
            pods = core.list_pod_for_all_namespaces().items
            policies = net.list_network_policy_for_all_namespaces().items
        for name in names:
            pods += core.list_namespaced_pod(name).items
            policies += net.list_namespaced_network_policy(name).items
    as_json = core.api_client.sanitize_for_serialization
    return [as_json(p) for p in pods], [as_json(p) for p in policies]


# ---------------------------------------------------------------- judging one pod


def _meta(obj: _Obj) -> _Obj:
    return part(obj, "metadata")


def _mode(pod: _Obj, namespace_labels: Mapping[str, str]) -> str:
    """``redirected`` (an ambient pod), ``missing`` (should be one, is not) or ``out``."""
    annotations = part(_meta(pod), "annotations")
    if _never_ambient(pod, annotations):
        return "out"
    if annotations.get(REDIRECTION) == "enabled":
        return "redirected"
    pod_mode = part(_meta(pod), "labels").get(DATAPLANE_MODE)
    return "missing" if (pod_mode or namespace_labels.get(DATAPLANE_MODE)) == "ambient" else "out"


def _never_ambient(pod: _Obj, annotations: _Obj) -> bool:
    """Host-network, finished and sidecar pods are not ambient pods."""
    spec = part(pod, "spec")
    if spec.get("hostNetwork") or part(pod, "status").get("phase") in ("Succeeded", "Failed"):
        return True
    containers = spec.get("containers") or []
    return SIDECAR_STATUS in annotations or any(
        c.get("name") == SIDECAR_CONTAINER for c in containers
    )


def _policy_findings(pod: _Obj, policies: Sequence[_Obj]) -> list[JSONObject]:
    governing = _netpol.isolating(policies, pod)
    if not governing:
        return []
    names = sorted(str(_meta(p).get("name")) for p in governing)
    kind = "NetworkPolicy" if len(names) == 1 else "NetworkPolicies"
    by = f"isolated for ingress by {kind} {', '.join(names)}"
    out: list[JSONObject] = []
    if not _netpol.admits_port(governing, pod, HBONE_PORT):
        why = (
            f"no rule admits TCP {HBONE_PORT} from a pod: mesh (HBONE) traffic to it is "
            f"dropped; admit port {HBONE_PORT} where the app's ports are"
        )
        out.append(_finding("hbone_port_blocked", pod, names, f"{by} and {why}"))
    probed: list[int | None] = [*_netpol.probe_ports(pod)] or [None]
    blocked = [p for p in probed if not _netpol.admits_source(governing, pod, KUBELET_SOURCE, p)]
    if blocked:
        where = f"TCP {', '.join(map(str, blocked))}" if blocked != [None] else "any port"
        why = (
            f"no rule admits {KUBELET_SOURCE} (the kubelet's health probes in ambient mode) "
            f"on {where}: allow ipBlock {KUBELET_SOURCE}/32"
        )
        out.append(_finding("kubelet_probe_blocked", pod, names, f"{by} and {why}"))
    return out


def _finding(kind: str, pod: _Obj, policies: list[str], detail: str) -> JSONObject:
    meta = _meta(pod)
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    return {
        "kind": kind,
        "namespace": namespace,
        "pod": name,
        "policies": policies,
        "detail": f"pod {namespace}/{name}: {detail}",
    }
