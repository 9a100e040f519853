"""The lab's stand-in for the sidecar's inbound security decision (Envoy RBAC + mTLS mode).

Pure: no I/O. Given Istio ``PeerAuthentication`` and ``AuthorizationPolicy`` objects as
the Kubernetes API returns them (plain dicts), it decides what the sidecar of one
workload does with one inbound request, following Istio's documented semantics:

- :func:`peer_authentication_mode`: the mTLS mode for a port (workload-specific >
  namespace-wide > mesh-wide > ``PERMISSIVE``; ``UNSET`` inherits; ``portLevelMtls``).
- :func:`authorize`: DENY policies first (any match denies), then ALLOW (allowed if no
  ALLOW policy applies or one of their rules matches; denied otherwise).

What it leaves out: ``CUSTOM`` and ``AUDIT`` policies (ignored), JWT (``requestPrincipals``
and ``request.auth.*`` never match, their ``not`` forms always do), ``targetRef(s)``
(a policy carrying one is treated as not applying), ``X-Forwarded-For`` (``remoteIpBlocks``
and ``remote.ip`` see the direct peer address), path templates and path normalisation,
trust-domain aliases. Policies annotated ``istio.io/dry-run: "true"`` are not enforced.
A field or ``when`` key it does not know fails closed: it does not match in an ALLOW
rule and is ignored (matches) in a DENY rule, as Istio does with HTTP-only fields on
TCP traffic.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "DENIED_STATUS",
    "Decision",
    "MtlsMode",
    "Request",
    "Workload",
    "access_denied_body",
    "authorize",
    "peer_authentication_mode",
]

MtlsMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]

DENIED_STATUS = 403
"""The HTTP status Envoy's RBAC filter answers a denied request with."""

_MODES: dict[str, MtlsMode] = {"STRICT": "STRICT", "PERMISSIVE": "PERMISSIVE", "DISABLE": "DISABLE"}
_DRY_RUN = "istio.io/dry-run"


@dataclass(frozen=True)
class Workload:
    """The destination pod: its namespace and labels."""

    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One inbound request as the destination sidecar sees it.

    ``principal`` is the peer's SPIFFE identity without ``spiffe://``
    (``cluster.local/ns/default/sa/sleep``), None on plaintext; it only counts when
    ``mtls`` is true. ``path`` may carry a query string (it is not matched).
    """

    principal: str | None
    method: str
    path: str
    port: int
    source_ip: str = ""
    mtls: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def peer(self) -> str | None:
        """The authenticated peer identity, None when there is none."""
        if not self.mtls or not self.principal:
            return None
        return self.principal.removeprefix("spiffe://")

    @property
    def source_namespace(self) -> str | None:
        """The namespace in the peer identity (``<trust domain>/ns/<ns>/sa/<sa>``)."""
        parts = (self.peer or "").split("/")
        if len(parts) >= 5 and parts[1] == "ns" and parts[3] == "sa" and parts[2]:
            return parts[2]
        return None

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name, None if absent."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class Decision:
    """The outcome; ``policy`` is the ``namespace/name`` that decided, if one did."""

    allowed: bool
    reason: str
    policy: str | None = None


def access_denied_body() -> bytes:
    """The body Envoy sends with :data:`DENIED_STATUS` when RBAC denies a request."""
    return b"RBAC: access denied"


# ---------------------------------------------------------------- plain-dict access


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str | int):
        return [str(value)]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return []


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _spec(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(policy.get("spec"))


def _meta(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(policy.get("metadata"))


def _ref(policy: Mapping[str, Any]) -> str:
    meta = _meta(policy)
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _match_labels(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(_map(_spec(policy).get("selector")).get("matchLabels"))


def _selects(selector: Mapping[str, Any], workload: Workload) -> bool:
    return all(workload.labels.get(k) == str(v) for k, v in selector.items())


# ---------------------------------------------------------------- PeerAuthentication


def _created(policy: Mapping[str, Any]) -> tuple[datetime, str]:
    """Sort key: creation time (missing or unreadable: oldest), then name."""
    meta = _meta(policy)
    stamp = meta.get("creationTimestamp")
    when = datetime.min
    if isinstance(stamp, datetime):
        when = stamp
    elif isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when, str(meta.get("name", ""))


def _oldest(policies: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return min(policies, key=_created, default=None)


def _mode(mtls: Any) -> MtlsMode | None:
    """The mode in an ``mtls`` block; None for ``UNSET`` (inherit)."""
    return _MODES.get(str(_map(mtls).get("mode", "UNSET")).upper())


def peer_authentication_mode(
    policies: Sequence[Mapping[str, Any]],
    workload: Workload,
    port: int,
    root_namespace: str = "istio-system",
) -> MtlsMode:
    """The mTLS mode the workload's sidecar enforces on ``port``.

    The oldest policy wins at each level; a level set to ``UNSET`` (or without a mode)
    inherits from the one above it, and the mesh inherits ``PERMISSIVE``.
    ``portLevelMtls`` counts only on a workload-specific policy.
    """
    local = [p for p in policies if _meta(p).get("namespace") == workload.namespace]
    specific = _oldest(p for p in local if (sel := _match_labels(p)) and _selects(sel, workload))
    namespace_wide = _oldest(p for p in local if not _match_labels(p))
    mesh_wide = _oldest(
        p for p in policies if _meta(p).get("namespace") == root_namespace and not _match_labels(p)
    )
    mode: MtlsMode = "PERMISSIVE"
    for level in (mesh_wide, namespace_wide, specific):
        if level is not None:
            mode = _mode(_spec(level).get("mtls")) or mode
    if specific is not None:
        for key, mtls in _map(_spec(specific).get("portLevelMtls")).items():
            if str(key) == str(port):
                mode = _mode(mtls) or mode
    return mode


# ---------------------------------------------------------------- AuthorizationPolicy

Matcher = Callable[[str, str | None], bool]


def _string_match(pattern: str, value: str | None) -> bool:
    """Istio string match: exact, ``abc*`` prefix, ``*abc`` suffix, ``*`` non-empty."""
    if value is None:
        return False
    if pattern == "*":
        return value != ""
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _host_match(pattern: str, value: str | None) -> bool:
    return _string_match(pattern.lower(), None if value is None else value.lower())


def _exact(pattern: str, value: str | None) -> bool:
    return value is not None and pattern == value


def _ip_match(block: str, value: str | None) -> bool:
    """``block`` is a CIDR or a single address; bad input never matches."""
    if not value:
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False


def _values_match(
    values: list[str], not_values: list[str], value: str | None, match: Matcher
) -> bool:
    """Positive list: some entry matches; negative list: none does; empty lists: no limit."""
    if values and not any(match(v, value) for v in values):
        return False
    return not any(match(v, value) for v in not_values)


def _source_fields(request: Request) -> dict[str, tuple[str | None, Matcher]]:
    ip = request.source_ip or None
    return {
        "principals": (request.peer, _string_match),
        "namespaces": (request.source_namespace, _string_match),
        "ipBlocks": (ip, _ip_match),
        "remoteIpBlocks": (ip, _ip_match),
        "requestPrincipals": (None, _string_match),  # no JWT
    }


def _operation_fields(request: Request) -> dict[str, tuple[str | None, Matcher]]:
    return {
        "hosts": (request.header("host"), _host_match),
        "ports": (str(request.port), _exact),
        "methods": (request.method, _string_match),
        "paths": (request.path.split("?", 1)[0].split("#", 1)[0], _string_match),
    }


def _fields_match(
    block: Mapping[str, Any], known: dict[str, tuple[str | None, Matcher]], unknown: bool
) -> bool:
    """Every field of one source or operation matches.

    A field not in ``known`` fails the block when ``unknown`` is false, else is skipped.
    """
    keys = [(name, f"not{name[:1].upper()}{name[1:]}") for name in known]
    if not unknown and set(block) - {k for pair in keys for k in pair}:
        return False
    for name, not_name in keys:
        value, match = known[name]
        if not _values_match(
            _strings(block.get(name)), _strings(block.get(not_name)), value, match
        ):
            return False
    return True


def _condition_value(key: str, request: Request) -> tuple[str | None, Matcher] | None:
    """The request attribute a ``when`` key names and how to match it; None if unknown."""
    if key.startswith("request.headers[") and key.endswith("]"):
        return request.header(key[len("request.headers[") : -1]), _string_match
    if key.startswith("request.auth."):
        return None, _string_match  # no JWT: the attribute is absent
    known: dict[str, tuple[str | None, Matcher]] = {
        "source.principal": (request.peer, _string_match),
        "source.namespace": (request.source_namespace, _string_match),
        "source.ip": (request.source_ip or None, _ip_match),
        "remote.ip": (request.source_ip or None, _ip_match),
        "destination.port": (str(request.port), _exact),
    }
    return known.get(key)


def _rule_matches(rule: Mapping[str, Any], request: Request, unknown: bool) -> bool:
    """``from`` (any entry), ``to`` (any entry) and ``when`` (every condition) all match."""
    sources = [_map(_map(s).get("source")) for s in _list(rule.get("from"))]
    if sources and not any(_fields_match(s, _source_fields(request), unknown) for s in sources):
        return False
    operations = [_map(_map(o).get("operation")) for o in _list(rule.get("to"))]
    if operations and not any(
        _fields_match(o, _operation_fields(request), unknown) for o in operations
    ):
        return False
    for condition in (_map(c) for c in _list(rule.get("when"))):
        found = _condition_value(str(condition.get("key", "")), request)
        if found is None:
            if unknown:
                continue
            return False
        value, match = found
        values, not_values = _strings(condition.get("values")), _strings(condition.get("notValues"))
        if not _values_match(values, not_values, value, match):
            return False
    return True


def _policy_matches(policy: Mapping[str, Any], request: Request, unknown: bool) -> bool:
    """Some rule matches; a policy without rules matches nothing."""
    rules = _list(_spec(policy).get("rules"))
    return any(_rule_matches(_map(r), request, unknown) for r in rules)


def _applies(policy: Mapping[str, Any], workload: Workload, root_namespace: str) -> bool:
    meta, spec = _meta(policy), _spec(policy)
    if str(_map(meta.get("annotations")).get(_DRY_RUN, "")).lower() == "true":
        return False
    if spec.get("targetRef") or spec.get("targetRefs"):
        return False
    if meta.get("namespace") not in (workload.namespace, root_namespace):
        return False
    return _selects(_match_labels(policy), workload)


def authorize(
    policies: Sequence[Mapping[str, Any]],
    workload: Workload,
    request: Request,
    root_namespace: str = "istio-system",
) -> Decision:
    """What the workload's sidecar does with ``request`` under ``policies``.

    Applicable: policies in the workload's namespace or the root namespace whose
    selector (none: all workloads) matches the workload. Any matching DENY policy
    denies; then, if an ALLOW policy applies, one of them must match.
    """
    applicable = sorted(
        (p for p in policies if _applies(p, workload, root_namespace)),
        key=lambda p: (_meta(p).get("namespace") != root_namespace, _ref(p)),
    )
    by_action: dict[str, list[Mapping[str, Any]]] = {"ALLOW": [], "DENY": []}
    for policy in applicable:
        action = str(_spec(policy).get("action") or "ALLOW").upper()
        by_action.get(action, []).append(policy)  # CUSTOM and AUDIT are left out
    for policy in by_action["DENY"]:
        if _policy_matches(policy, request, unknown=True):
            ref = _ref(policy)
            return Decision(False, f"denied by DENY policy {ref}", ref)
    if not by_action["ALLOW"]:
        reason = "no ALLOW policy applies" if by_action["DENY"] else "no policy applies"
        return Decision(True, reason)
    for policy in by_action["ALLOW"]:
        if _policy_matches(policy, request, unknown=False):
            ref = _ref(policy)
            return Decision(True, f"allowed by {ref}", ref)
    return Decision(False, "no ALLOW policy matched")
