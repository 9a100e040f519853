"""Ingress policy engine of the lab's Cilium stand-in: policies + ipcache -> iptables rules.

Pure (no I/O). For one node, it turns Kubernetes NetworkPolicies and CiliumNetworkPolicies
(plain dicts in the API's JSON form, camelCase) into filter-table rules of one chain, which
the node's FORWARD chain jumps to (:func:`hook_rule`): pod traffic to a local pod crosses
FORWARD in the node netns. Only ingress to the node's own pods is enforced, as a Cilium
agent does for its endpoints.

Source pods are known through the ipcache alone: pod IP -> identity (namespace, labels) as
the stand-in last saw it. A selector peer becomes one rule per cached IP whose identity it
selects. When the node is cut off from the API server the cache goes stale, a recycled IP
keeps its old identity and the rules trust it: Cilium's ipcache bug of the seeds, on purpose.

Chain layout: ``ctstate ESTABLISHED,RELATED -j RETURN`` first (replies, and flows admitted
before a policy change, are not judged again: Cilium's conntrack does the same); then, per
local pod by IP, the ``ingressDeny`` DROPs, the allow ACCEPTs and a last ``-d POD -j DROP``
when the pod is isolated (silent, as Cilium: the client times out). Anything else falls off
the chain's end. Node -> local pod traffic (kubelet probes) goes through OUTPUT, not FORWARD,
so it is always allowed, as Cilium allows the local host by default.

Semantics:

* Isolation (default deny at ingress): a NetworkPolicy of the pod's namespace selecting it
  with ``Ingress`` in ``policyTypes`` (absent: Ingress), or a CiliumNetworkPolicy selecting
  it whose ``ingress`` or ``ingressDeny`` has a rule (``enableDefaultDeny.ingress`` overrides).
  Deny rules apply to a non-isolated pod too.
* NetworkPolicy peers: ``podSelector`` (policy's namespace), ``namespaceSelector`` (against
  ``namespace_labels`` plus the implicit ``kubernetes.io/metadata.name``), both (AND),
  ``ipBlock`` with ``except``. Empty ``from``: any source; empty ``ports``: any port;
  ``protocol`` defaults to TCP, ``endPort`` gives a range.
* CiliumNetworkPolicy (``spec`` and ``specs``; one without a namespace is taken as
  clusterwide): selector keys may carry a ``k8s:``/``any:`` prefix; other sources
  (``reserved:``...) never select a pod. A ``fromEndpoints`` selector that does not name
  ``io.kubernetes.pod.namespace`` is limited to the policy's namespace, ``{}`` included; a
  ``matchExpressions`` ``Exists`` on that key spans all namespaces. ``fromCIDR``,
  ``fromCIDRSet`` (``except``) and ``fromEntities: [all]`` are peers too. A rule with
  ``toPorts`` and no peer field allows every source on those ports; an empty rule allows
  nothing. Port protocol ``ANY`` (the default) means TCP and UDP; port ``"0"`` or none, all
  ports.
* CIDR peers match by address, pod addresses included (Cilium keeps CIDR selectors off
  cluster endpoints by default: write CIDRs for out-of-cluster peers).
* Named ports are not supported: such a port entry matches nothing (fails closed).
* Malformed input (bad CIDR or IP, unknown selector operator) raises ValueError.

Left out: egress, L7 rules (a port carrying ``rules`` is opened at L4), entities other than
``all``, FQDN, services, ``fromRequires``/``fromNodes``/``fromGroups`` (match nothing), CIDR
groups, ICMP rules, service account and namespace labels in Cilium selectors, Cilium's
identity label filter (every pod label counts), host policies, IPv6, AdminNetworkPolicy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

__all__ = [
    "CHAIN",
    "NAME_LABEL",
    "NS_LABEL",
    "Identity",
    "IpCache",
    "LocalPod",
    "hook_rule",
    "ingress_rules",
    "restore_text",
    "selector_matches",
]

CHAIN = "CMSLAB-L4"
NS_LABEL = "io.kubernetes.pod.namespace"
"""Cilium's label for a pod's namespace, usable in its selectors."""
NAME_LABEL = "kubernetes.io/metadata.name"
"""The label every namespace carries with its own name."""

_PREFIXES = ("k8s:", "any:")
_CILIUM_PEERS = (
    "fromEndpoints",
    "fromCIDR",
    "fromCIDRSet",
    "fromEntities",
    "fromRequires",
    "fromNodes",
    "fromGroups",
)
_CHAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,27}")
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/,=+-]")
_ESTABLISHED = ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED")

_Match = tuple[str, ...]
"""An iptables argument fragment; ``()`` matches everything."""
_Grant = tuple[_Match, _Match, str]
"""(source match, L4 match, comment)."""


@dataclass(frozen=True)
class Identity:
    """What the ipcache knows of a pod IP: its namespace and labels when last seen."""

    namespace: str
    labels: Mapping[str, str]


IpCache = Mapping[str, Identity]
"""Pod IP -> identity, as last seen (possibly stale)."""


@dataclass(frozen=True)
class LocalPod:
    """A pod behind this node: the destination whose ingress is enforced."""

    ip: str
    namespace: str
    labels: Mapping[str, str]

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.ip)  # raises ValueError on a bad address


@dataclass
class _PodVerdict:
    isolated_by: list[str] = field(default_factory=list)
    allows: list[_Grant] = field(default_factory=list)
    denies: list[_Grant] = field(default_factory=list)


def _cilium_key(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def selector_matches(
    selector: Mapping[str, Any], labels: Mapping[str, str], *, cilium: bool = False
) -> bool:
    """Whether a label selector (``matchLabels``/``matchExpressions``) selects ``labels``.

    ``{}`` selects everything. ``cilium``: keys may carry a ``k8s:``/``any:`` source prefix.
    """
    key = _cilium_key if cilium else str
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(key(k)) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        k, op, values = key(expr["key"]), expr.get("operator"), expr.get("values") or []
        if op == "In":
            ok = k in labels and labels[k] in values
        elif op == "NotIn":
            ok = k not in labels or labels[k] not in values
        elif op == "Exists":
            ok = k in labels
        elif op == "DoesNotExist":
            ok = k not in labels
        else:
            raise ValueError(f"unknown label selector operator {op!r}")
        if not ok:
            return False
    return True


def _cilium_labels(namespace: str, labels: Mapping[str, str]) -> dict[str, str]:
    return {**labels, NS_LABEL: namespace}


def _names_namespace(selector: Mapping[str, Any]) -> bool:
    keys = [*(selector.get("matchLabels") or {})]
    keys += [e.get("key", "") for e in selector.get("matchExpressions") or []]
    return any(_cilium_key(k) == NS_LABEL for k in keys)


def _v4_cache(ipcache: IpCache) -> list[tuple[str, Identity]]:
    """The cache's IPv4 entries (IPv6 is ip6tables' business)."""
    return [(ip, ident) for ip, ident in ipcache.items() if ipaddress.ip_address(ip).version == 4]


def _cidr_sources(cidr: str, excepts: Iterable[str]) -> list[_Match]:
    """``cidr`` minus ``excepts`` as source matches (IPv6 blocks match no IPv4 packet)."""
    net = ipaddress.ip_network(cidr, strict=False)
    if not isinstance(net, ipaddress.IPv4Network):
        return []
    parts = [net]
    for raw in excepts:
        exc = ipaddress.ip_network(raw, strict=False)
        if not isinstance(exc, ipaddress.IPv4Network):
            continue
        rest: list[ipaddress.IPv4Network] = []
        for part in parts:
            if part.subnet_of(exc):
                continue
            rest.extend(part.address_exclude(exc) if exc.subnet_of(part) else [part])
        parts = rest
    return [("-s", str(p)) for p in parts]


def _port_number(raw: object) -> int | None:
    """A numeric port, or None for a named one."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


def _l4(protocol: str, port: int, end_port: object) -> _Match:
    end = _port_number(end_port)
    span = f"{port}:{end}" if end is not None and end > port else str(port)
    return ("-p", protocol, "--dport", span)


def _knp_ports(ports: Sequence[Mapping[str, Any]] | None) -> list[_Match]:
    if not ports:
        return [()]
    out: list[_Match] = []
    for p in ports:
        protocol = str(p.get("protocol") or "TCP").lower()
        if p.get("port") is None:
            out.append(("-p", protocol))
        elif (port := _port_number(p["port"])) is not None:
            out.append(_l4(protocol, port, p.get("endPort")))
    return out


def _cnp_ports(to_ports: Sequence[Mapping[str, Any]] | None) -> list[_Match]:
    if not to_ports:
        return [()]
    out: list[_Match] = []
    for entry in to_ports:
        if not entry.get("ports"):
            out.append(())
        for p in entry.get("ports") or []:
            protocol = str(p.get("protocol") or "ANY").upper()
            protocols = ("tcp", "udp") if protocol == "ANY" else (protocol.lower(),)
            port = _port_number(p.get("port") or "0")
            if port is None:
                continue
            if port:
                out += [_l4(proto, port, p.get("endPort")) for proto in protocols]
            else:
                out += [()] if protocol == "ANY" else [("-p", proto) for proto in protocols]
    return out


def _ns_labels(namespace: str, namespace_labels: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    return {**namespace_labels.get(namespace, {}), NAME_LABEL: namespace}


def _knp_peer_selects(
    peer: Mapping[str, Any],
    policy_ns: str,
    namespace_labels: Mapping[str, Mapping[str, str]],
    ident: Identity,
) -> bool:
    pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
    if namespaces is None:
        in_ns = ident.namespace == policy_ns
    else:
        in_ns = selector_matches(namespaces, _ns_labels(ident.namespace, namespace_labels))
    return in_ns and (pods is None or selector_matches(pods, ident.labels))


def _knp_sources(
    peers: Sequence[Mapping[str, Any]] | None,
    policy_ns: str,
    ipcache: IpCache,
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[_Match]:
    if not peers:
        return [()]
    out: list[_Match] = []
    for peer in peers:
        if block := peer.get("ipBlock"):
            out += _cidr_sources(block["cidr"], block.get("except") or [])
        elif peer.get("podSelector") is not None or peer.get("namespaceSelector") is not None:
            out += [
                ("-s", f"{ip}/32")
                for ip, ident in _v4_cache(ipcache)
                if _knp_peer_selects(peer, policy_ns, namespace_labels, ident)
            ]
    return out


def _cnp_peer_selects(selector: Mapping[str, Any], policy_ns: str | None, ident: Identity) -> bool:
    if policy_ns is not None and not _names_namespace(selector) and ident.namespace != policy_ns:
        return False
    return selector_matches(selector, _cilium_labels(ident.namespace, ident.labels), cilium=True)


def _cnp_sources(rule: Mapping[str, Any], policy_ns: str | None, ipcache: IpCache) -> list[_Match]:
    if not any(rule.get(f) for f in _CILIUM_PEERS):
        return [()] if rule.get("toPorts") else []
    out: list[_Match] = []
    for selector in rule.get("fromEndpoints") or []:
        out += [
            ("-s", f"{ip}/32")
            for ip, ident in _v4_cache(ipcache)
            if _cnp_peer_selects(selector, policy_ns, ident)
        ]
    for cidr in rule.get("fromCIDR") or []:
        out += _cidr_sources(cidr, ())
    for cidr_set in rule.get("fromCIDRSet") or []:
        if "cidr" in cidr_set:
            out += _cidr_sources(cidr_set["cidr"], cidr_set.get("except") or [])
    if "all" in (rule.get("fromEntities") or []):
        out.append(())
    return out


def _apply_knp(
    policy: Mapping[str, Any],
    pod: LocalPod,
    ipcache: IpCache,
    namespace_labels: Mapping[str, Mapping[str, str]],
    verdict: _PodVerdict,
) -> None:
    meta, spec = policy.get("metadata") or {}, policy.get("spec") or {}
    namespace = meta.get("namespace")
    types = spec.get("policyTypes")
    if namespace != pod.namespace or (types is not None and "Ingress" not in types):
        return
    if not selector_matches(spec.get("podSelector") or {}, pod.labels):
        return
    name = f"knp:{namespace}/{meta.get('name', '')}"
    verdict.isolated_by.append(name)
    for rule in spec.get("ingress") or []:
        sources = _knp_sources(rule.get("from"), namespace, ipcache, namespace_labels)
        verdict.allows += [(s, p, name) for s, p in product(sources, _knp_ports(rule.get("ports")))]


def _apply_cnp(
    policy: Mapping[str, Any], pod: LocalPod, ipcache: IpCache, verdict: _PodVerdict
) -> None:
    meta = policy.get("metadata") or {}
    namespace: str | None = meta.get("namespace")
    if namespace is not None and namespace != pod.namespace:
        return
    short = meta.get("name", "")
    name = f"cnp:{namespace}/{short}" if namespace else f"ccnp:{short}"
    specs = [policy["spec"]] if policy.get("spec") else []
    for spec in [*specs, *(policy.get("specs") or [])]:
        selector = spec.get("endpointSelector")
        pod_labels = _cilium_labels(pod.namespace, pod.labels)
        if selector is None or not selector_matches(selector, pod_labels, cilium=True):
            continue
        allow, deny = spec.get("ingress") or [], spec.get("ingressDeny") or []
        default_deny = (spec.get("enableDefaultDeny") or {}).get("ingress")
        if default_deny if default_deny is not None else bool(allow or deny):
            verdict.isolated_by.append(name)
        for rules, into in ((allow, verdict.allows), (deny, verdict.denies)):
            for rule in rules:
                sources = _cnp_sources(rule, namespace, ipcache)
                ports = _cnp_ports(rule.get("toPorts"))
                into += [(s, p, name) for s, p in product(sources, ports)]


def _comment(text: str) -> str:
    return _COMMENT_UNSAFE.sub("_", text)[:255]


def _grant_key(grant: _Grant) -> tuple[int, int, int, _Match, str]:
    source, l4, comment = grant
    if not source:
        return (0, 0, 0, l4, comment)
    net = ipaddress.IPv4Network(source[1])
    return (1, int(net.network_address), net.prefixlen, l4, comment)


def _rule(chain: str, match: _Match, comment: str, target: str) -> list[str]:
    return ["-A", chain, *match, "-m", "comment", "--comment", _comment(comment), "-j", target]


def _check_chain(chain: str) -> None:
    if not _CHAIN_NAME.fullmatch(chain):
        raise ValueError(f"not a usable iptables chain name: {chain!r}")


def ingress_rules(
    local_pods: Sequence[LocalPod],
    ipcache: IpCache,
    network_policies: Sequence[Mapping[str, Any]],
    cilium_policies: Sequence[Mapping[str, Any]],
    chain: str = CHAIN,
    *,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[list[str]]:
    """The chain's rules (each list follows ``iptables -t filter``), in a stable order.

    ``namespace_labels``: namespace -> its labels, for ``namespaceSelector``.
    """
    _check_chain(chain)
    ns_labels = namespace_labels or {}
    rules = [_rule(chain, _ESTABLISHED, "replies-and-admitted-flows", "RETURN")]
    for pod in sorted(local_pods, key=lambda p: ipaddress.IPv4Address(p.ip)):
        verdict = _PodVerdict()
        for policy in network_policies:
            _apply_knp(policy, pod, ipcache, ns_labels, verdict)
        for policy in cilium_policies:
            _apply_cnp(policy, pod, ipcache, verdict)
        to_pod = ("-d", f"{pod.ip}/32")
        for source, l4, comment in sorted(set(verdict.denies), key=_grant_key):
            rules.append(_rule(chain, (*source, *to_pod, *l4), comment, "DROP"))
        if not verdict.isolated_by:
            continue
        for source, l4, comment in sorted(set(verdict.allows), key=_grant_key):
            rules.append(_rule(chain, (*source, *to_pod, *l4), comment, "ACCEPT"))
        isolating = ",".join(sorted(set(verdict.isolated_by)))
        rules.append(_rule(chain, to_pod, f"default-deny:{isolating}", "DROP"))
    return rules


def _restore_arg(arg: str) -> str:
    if "\n" in arg or "\r" in arg:
        raise ValueError(f"newline in an iptables argument: {arg!r}")
    if arg and not re.search(r"[\s\"'\\]", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def restore_text(rules: Sequence[Sequence[str]], chain: str = CHAIN) -> str:
    """An ``iptables-restore --noflush`` payload that replaces ``chain``'s rules at once.

    Declaring the chain creates it or empties it (``-F`` says so again); the other chains
    of the table are left alone. Every rule must append to ``chain``.
    """
    _check_chain(chain)
    lines = ["*filter", f":{chain} - [0:0]", f"-F {chain}"]
    for rule in rules:
        if list(rule[:2]) != ["-A", chain]:
            raise ValueError(f"rule does not append to {chain}: {list(rule)}")
        lines.append(" ".join(_restore_arg(a) for a in rule))
    return "\n".join([*lines, "COMMIT", ""])


def hook_rule(chain: str = CHAIN) -> list[str]:
    """The FORWARD jump into ``chain``, after ``iptables -t filter``.

    Swap ``-I`` for ``-C`` or ``-D`` to check for it or remove it.
    """
    _check_chain(chain)
    return ["-I", "FORWARD", "-m", "comment", "--comment", "cmslab-l4-policy", "-j", chain]
