"""Kubernetes NetworkPolicy ingress for one pod, as far as the ambient probe asks (pure).

Works on plain dicts in the API's JSON form (camelCase keys, as
``ApiClient.sanitize_for_serialization`` returns them); no API calls. For a pod and
the NetworkPolicies of the cluster (only those of the pod's own namespace count):

* which policies select it: ``podSelector`` (``matchLabels`` and ``matchExpressions``
  with ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``; ``{}`` selects every pod);
* whether it is isolated for ingress: a selecting policy whose ``policyTypes`` holds
  ``Ingress``, or has no ``policyTypes`` (Ingress is then implied). An Egress-only
  policy neither isolates ingress nor admits anything;
* whether the isolating policies admit a port from some peer that may be a pod, or a
  host address (such as the kubelet's) on some port or on a given one. Policies are
  additive: one admitting rule in any of them is enough; a pod that no policy
  isolates admits everything.

A rule without ``ports`` admits every port; ``protocol`` defaults to TCP; ``endPort``
widens ``port`` into a range; a named port is resolved against the pod's containers'
``ports`` (``name`` -> ``containerPort``), and a name the pod does not declare admits
nothing. A rule without ``from`` admits every source. An ``ipBlock`` admits the
addresses of its ``cidr`` outside its ``except`` entries. ``podSelector`` and
``namespaceSelector`` peers select pods: they never admit a host or link-local
address, and they are taken to select some pod (they are not evaluated against the
cluster's other pods); so is any ``ipBlock`` not wholly link-local. Malformed input (a
bad CIDR or address, an unknown selector operator) raises ValueError: the API server
refuses such policies, so a listed one never has it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "admits_port",
    "admits_source",
    "isolates_ingress",
    "isolating",
    "named_port",
    "part",
    "probe_ports",
    "selecting",
    "selector_matches",
]

Obj = Mapping[str, Any]
"""A Kubernetes object (or part of one) in the API's JSON form."""

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_OPERATORS: dict[str, Callable[[str | None, Sequence[str]], bool]] = {
    "In": lambda value, values: value is not None and value in values,
    "NotIn": lambda value, values: value is None or value not in values,
    "Exists": lambda value, _values: value is not None,
    "DoesNotExist": lambda value, _values: value is None,
}
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_HANDLERS = ("httpGet", "tcpSocket", "grpc")


def part(obj: Obj, key: str) -> Obj:
    """``obj[key]``, or ``{}`` when it is missing or null (the API omits empty fields)."""
    found: Obj = obj.get(key) or {}
    return found


# ---------------------------------------------------------------- which policies apply


def selector_matches(selector: Obj, labels: Mapping[str, str]) -> bool:
    """Does a label selector (``matchLabels`` and ``matchExpressions``) select ``labels``?"""
    if any(labels.get(k) != v for k, v in part(selector, "matchLabels").items()):
        return False
    for requirement in selector.get("matchExpressions") or []:
        operator = requirement.get("operator", "")
        holds = _OPERATORS.get(operator)
        if holds is None:
            raise ValueError(f"unknown label selector operator {operator!r}")
        if not holds(labels.get(requirement["key"]), requirement.get("values") or []):
            return False
    return True


def selecting(policies: Iterable[Obj], pod: Obj) -> list[Obj]:
    """The policies of the pod's namespace whose ``podSelector`` selects it."""
    meta = part(pod, "metadata")
    labels = part(meta, "labels")
    return [
        policy
        for policy in policies
        if part(policy, "metadata").get("namespace") == meta.get("namespace")
        and selector_matches(part(part(policy, "spec"), "podSelector"), labels)
    ]


def isolates_ingress(policy: Obj) -> bool:
    """Does the policy govern ingress (``Ingress`` in ``policyTypes``, or none given)?"""
    types = part(policy, "spec").get("policyTypes")
    return not types or "Ingress" in types


def isolating(policies: Iterable[Obj], pod: Obj) -> list[Obj]:
    """The policies that select the pod and isolate it for ingress (empty: not isolated)."""
    return [policy for policy in selecting(policies, pod) if isolates_ingress(policy)]


# ---------------------------------------------------------------- what they admit


def admits_port(policies: Iterable[Obj], pod: Obj, port: int, protocol: str = "TCP") -> bool:
    """Do the policies admit ``protocol``/``port`` to the pod from some peer that may be a pod?

    True when the pod is not isolated for ingress. A peer that is an ``ipBlock`` wholly
    inside link-local space (the kubelet's address) is not a pod and does not count.
    """
    return _admits(policies, pod, port, protocol, _may_be_pod)


def admits_source(
    policies: Iterable[Obj], pod: Obj, address: str, port: int | None = None, protocol: str = "TCP"
) -> bool:
    """Do the policies admit the host ``address`` (no pod's) on ``port``, or on some port?

    True when the pod is not isolated for ingress. Only ``ipBlock`` peers (and rules
    without ``from``) can admit a host address.
    """
    ip = ipaddress.ip_address(address)
    return _admits(policies, pod, port, protocol, lambda peer: _block_admits(peer, ip))


def _admits(
    policies: Iterable[Obj],
    pod: Obj,
    port: int | None,
    protocol: str,
    peer_admits: Callable[[Obj], bool],
) -> bool:
    governing = isolating(policies, pod)
    if not governing:
        return True
    return any(
        _ports_admit(rule.get("ports") or [], pod, port, protocol)
        and (not rule.get("from") or any(peer_admits(peer) for peer in rule["from"]))
        for policy in governing
        for rule in part(policy, "spec").get("ingress") or []
    )


def _ports_admit(entries: Sequence[Obj], pod: Obj, port: int | None, protocol: str) -> bool:
    """Does one of a rule's ``ports`` entries admit ``port`` (None: any port)?"""
    if not entries:
        return True
    for entry in entries:
        if (entry.get("protocol") or "TCP") != protocol:
            continue
        raw = entry.get("port")
        if raw is None:
            return True  # every port of this protocol
        first = raw if isinstance(raw, int) else named_port(pod, str(raw), protocol)
        if first is None:
            continue
        end = entry.get("endPort")
        last = end if isinstance(end, int) and end >= first else first
        if port is None or first <= port <= last:
            return True
    return False


def _may_be_pod(peer: Obj) -> bool:
    block = peer.get("ipBlock")
    return block is None or not ipaddress.ip_network(block["cidr"], strict=False).is_link_local


def _block_admits(peer: Obj, ip: _Address) -> bool:
    block = peer.get("ipBlock")
    if block is None:
        return False  # a pod or namespace selector selects pods, never a host address
    if ip not in ipaddress.ip_network(block["cidr"], strict=False):
        return False
    return not any(ip in ipaddress.ip_network(e, strict=False) for e in block.get("except") or [])


# ---------------------------------------------------------------- the pod's ports


def named_port(pod: Obj, name: str, protocol: str = "TCP") -> int | None:
    """The ``containerPort`` that one of the pod's containers names ``name``, if any."""
    for container in part(pod, "spec").get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == name and (declared.get("protocol") or "TCP") == protocol:
                return int(declared["containerPort"])
    return None


def probe_ports(pod: Obj) -> list[int]:
    """The TCP ports the kubelet probes on the pod, sorted (named ports resolved).

    Liveness, readiness and startup probes' ``httpGet``, ``tcpSocket`` and ``grpc``
    handlers; an ``httpGet`` with a ``host`` probes another address and an ``exec``
    probe uses no network, so neither counts.
    """
    ports: set[int] = set()
    for container in part(pod, "spec").get("containers") or []:
        for kind in _PROBES:
            probe = part(container, kind)
            for handler in (part(probe, h) for h in _PROBE_HANDLERS):
                raw = handler.get("port")
                if raw is None or handler.get("host"):
                    continue
                port = raw if isinstance(raw, int) else named_port(pod, str(raw))
                if port is not None:
                    ports.add(port)
    return sorted(ports)
