"""The sidecar stand-in's decision (pure): Istio's documented RBAC and mTLS-mode semantics."""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_sec.lab.standins.authz import (
    DENIED_STATUS,
    Decision,
    Request,
    Workload,
    access_denied_body,
    authorize,
    peer_authentication_mode,
)

Policy = dict[str, Any]


def _obj(namespace: str, name: str, spec: dict[str, Any], **meta: Any) -> Policy:
    return {"metadata": {"name": name, "namespace": namespace, **meta}, "spec": spec}


def _sa(namespace: str, sa: str) -> str:
    return f"cluster.local/ns/{namespace}/sa/{sa}"


def _get(principal: str | None, method: str = "GET", path: str = "/hello", **kw: Any) -> Request:
    return Request(principal=principal, method=method, path=path, port=kw.pop("port", 5000), **kw)


# ---------------------------------------------------------------- the seed scenario

SEED_PEER_AUTHN = [_obj("default", "default", {"mtls": {"mode": "STRICT"}})]
SEED = [
    _obj("default", "allow-nothing", {}),
    *(
        _obj(
            "default",
            f"helloworld-{v}",
            {
                "selector": {"matchLabels": {"app": "helloworld", "version": v}},
                "action": "ALLOW",
                "rules": [
                    {
                        "from": [{"source": {"principals": [_sa("default", f"sleep-{v}")]}}],
                        "to": [{"operation": {"methods": ["GET"]}}],
                    }
                ],
            },
        )
        for v in ("v1", "v2")
    ),
]
HW_V1 = Workload("default", {"app": "helloworld", "version": "v1"})
HW_V2 = Workload("default", {"app": "helloworld", "version": "v2"})
SLEEP_V1 = _sa("default", "sleep-v1")
SLEEP_V2 = _sa("default", "sleep-v2")


@pytest.mark.parametrize(
    ("workload", "request_", "expected"),
    [
        (
            HW_V1,
            _get(SLEEP_V1),
            Decision(True, "allowed by default/helloworld-v1", "default/helloworld-v1"),
        ),
        (
            HW_V2,
            _get(SLEEP_V2),
            Decision(True, "allowed by default/helloworld-v2", "default/helloworld-v2"),
        ),
        (HW_V1, _get(SLEEP_V2), Decision(False, "no ALLOW policy matched", None)),
        (HW_V2, _get(SLEEP_V1), Decision(False, "no ALLOW policy matched", None)),
        (HW_V1, _get(SLEEP_V1, method="POST"), Decision(False, "no ALLOW policy matched", None)),
        (HW_V1, _get(None, mtls=False), Decision(False, "no ALLOW policy matched", None)),
        # a principal without mTLS is no identity at all
        (HW_V1, _get(SLEEP_V1, mtls=False), Decision(False, "no ALLOW policy matched", None)),
        # allow-nothing covers every other workload in the namespace
        (
            Workload("default", {"app": "sleep"}),
            _get(SLEEP_V1),
            Decision(False, "no ALLOW policy matched", None),
        ),
        # and nothing outside it
        (
            Workload("other", {"app": "helloworld", "version": "v1"}),
            _get(SLEEP_V2),
            Decision(True, "no policy applies", None),
        ),
    ],
)
def test_seed_scenario(workload: Workload, request_: Request, expected: Decision) -> None:
    assert authorize(SEED, workload, request_) == expected


def test_seed_scenario_is_strict_and_denies_with_envoys_answer() -> None:
    assert peer_authentication_mode(SEED_PEER_AUTHN, HW_V1, 5000) == "STRICT"
    assert DENIED_STATUS == 403
    assert access_denied_body() == b"RBAC: access denied"


# ---------------------------------------------------------------- team-a / team-b

TEAMS = [
    _obj(
        "team-a",
        "httpbin",
        {
            "selector": {"matchLabels": {"app": "httpbin"}},
            "rules": [{"from": [{"source": {"principals": [_sa("team-a", "curl")]}}]}],
        },
    )
]
HTTPBIN_A = Workload("team-a", {"app": "httpbin"})


@pytest.mark.parametrize(
    ("workload", "principal", "allowed"),
    [
        (HTTPBIN_A, _sa("team-a", "curl"), True),
        (HTTPBIN_A, _sa("team-b", "curl"), False),
        (HTTPBIN_A, _sa("team-a", "other"), False),
        (HTTPBIN_A, None, False),
        (Workload("team-a", {"app": "curl"}), _sa("team-b", "curl"), True),  # not selected
        (Workload("team-b", {"app": "httpbin"}), _sa("team-b", "curl"), True),  # other namespace
    ],
)
def test_team_isolation(workload: Workload, principal: str | None, allowed: bool) -> None:
    assert authorize(TEAMS, workload, _get(principal)).allowed is allowed


# ---------------------------------------------------------------- precedence and scope


def test_deny_wins_over_allow() -> None:
    policies = [
        _obj("default", "allow-all", {"rules": [{}]}),
        _obj(
            "default",
            "no-admin",
            {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]},
        ),
    ]
    wl = Workload("default", {})
    assert authorize(policies, wl, _get(SLEEP_V1, path="/admin/users")) == Decision(
        False, "denied by DENY policy default/no-admin", "default/no-admin"
    )
    assert authorize(policies, wl, _get(SLEEP_V1, path="/public")).allowed


@pytest.mark.parametrize(
    ("spec", "allowed", "reason"),
    [
        ({"action": "DENY"}, True, "no ALLOW policy applies"),  # DENY without rules: nothing
        ({"action": "DENY", "rules": [{}]}, False, "denied by DENY policy default/p"),
        ({"rules": [{}]}, True, "allowed by default/p"),  # action defaults to ALLOW
        ({"rules": []}, False, "no ALLOW policy matched"),  # allow-nothing
        ({"action": "AUDIT", "rules": [{}]}, True, "no policy applies"),
        ({"action": "CUSTOM", "rules": [{}]}, True, "no policy applies"),
        ({"targetRefs": [{"kind": "Gateway", "name": "gw"}]}, True, "no policy applies"),
    ],
)
def test_actions_and_empty_rules(spec: dict[str, Any], allowed: bool, reason: str) -> None:
    decision = authorize([_obj("default", "p", spec)], Workload("default", {}), _get(SLEEP_V1))
    assert (decision.allowed, decision.reason) == (allowed, reason)


def test_dry_run_policies_are_not_enforced() -> None:
    deny = _obj(
        "default",
        "dry",
        {"action": "DENY", "rules": [{}]},
        annotations={"istio.io/dry-run": "true"},
    )
    assert authorize([deny], Workload("default", {}), _get(SLEEP_V1)).allowed


ROOT_DENY = _obj(
    "istio-system",
    "deny-team-b",
    {"action": "DENY", "rules": [{"from": [{"source": {"namespaces": ["team-b"]}}]}]},
)
ROOT_SELECTED = _obj(
    "istio-system",
    "db-allow-nothing",
    {"selector": {"matchLabels": {"app": "db"}}},
)


@pytest.mark.parametrize(
    ("workload", "principal", "root", "allowed"),
    [
        (Workload("team-a", {"app": "web"}), _sa("team-b", "x"), "istio-system", False),
        (Workload("team-a", {"app": "web"}), _sa("team-a", "x"), "istio-system", True),
        (Workload("team-c", {"app": "db"}), _sa("team-a", "x"), "istio-system", False),
        (Workload("team-c", {"app": "web"}), _sa("team-a", "x"), "istio-system", True),
        # with another root namespace, istio-system is just a namespace
        (Workload("team-a", {"app": "web"}), _sa("team-b", "x"), "mesh-root", True),
    ],
)
def test_root_namespace_policies(
    workload: Workload, principal: str, root: str, allowed: bool
) -> None:
    decision = authorize([ROOT_DENY, ROOT_SELECTED], workload, _get(principal), root)
    assert decision.allowed is allowed


# ---------------------------------------------------------------- rule fields


def _rule_allows(rule: dict[str, Any], request: Request) -> bool:
    policy = _obj("default", "p", {"rules": [rule]})
    return authorize([policy], Workload("default", {}), request).allowed


def _src(**source: Any) -> dict[str, Any]:
    return {"from": [{"source": source}]}


def _op(**operation: Any) -> dict[str, Any]:
    return {"to": [{"operation": operation}]}


PLAIN = _get(None, mtls=False, source_ip="10.1.2.3")
MTLS = _get(SLEEP_V1, source_ip="10.1.2.3", headers={"Host": "HelloWorld.default:5000"})


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        # principals: exact, prefix, suffix, presence
        (_src(principals=[SLEEP_V1]), MTLS, True),
        (_src(principals=["cluster.local/ns/default/*"]), MTLS, True),
        (_src(principals=["*/sa/sleep-v1"]), MTLS, True),
        (_src(principals=["*/sa/sleep-v2"]), MTLS, False),
        (_src(principals=["*"]), MTLS, True),
        (_src(principals=["*"]), PLAIN, False),
        (_src(notPrincipals=["*"]), PLAIN, True),
        (_src(notPrincipals=["*"]), MTLS, False),
        (_src(notPrincipals=[SLEEP_V2]), MTLS, True),
        (_src(principals=["*"], notPrincipals=[SLEEP_V1]), MTLS, False),
        # namespaces come from the principal
        (_src(namespaces=["default"]), MTLS, True),
        (_src(namespaces=["def*"]), MTLS, True),
        (_src(namespaces=["team-a"]), MTLS, False),
        (_src(namespaces=["*"]), PLAIN, False),
        (_src(notNamespaces=["default"]), PLAIN, True),
        (_src(notNamespaces=["default"]), MTLS, False),
        # ipBlocks
        (_src(ipBlocks=["10.1.0.0/16"]), PLAIN, True),
        (_src(ipBlocks=["10.1.2.3"]), PLAIN, True),
        (_src(ipBlocks=["10.2.0.0/16"]), PLAIN, False),
        (_src(notIpBlocks=["10.1.0.0/16"]), PLAIN, False),
        (_src(ipBlocks=["10.0.0.0/8"]), _get(SLEEP_V1), False),  # no source address
        # no JWT here
        (_src(requestPrincipals=["*"]), MTLS, False),
        (_src(notRequestPrincipals=["*"]), MTLS, True),
        # a source block ANDs its fields, the from list ORs its blocks
        (_src(namespaces=["default"], ipBlocks=["192.168.0.0/16"]), MTLS, False),
        (
            {"from": [{"source": {"namespaces": ["x"]}}, {"source": {"ipBlocks": ["10.1.2.3"]}}]},
            MTLS,
            True,
        ),
        # operations
        (_op(methods=["GET", "HEAD"]), MTLS, True),
        (_op(notMethods=["GET"]), MTLS, False),
        (_op(paths=["/hello"]), _get(SLEEP_V1, path="/hello?x=1"), True),
        (_op(paths=["/hel*"]), MTLS, True),
        (_op(paths=["*llo"]), MTLS, True),
        (_op(paths=["/hello/*"]), MTLS, False),
        (_op(notPaths=["/admin*"]), MTLS, True),
        (_op(ports=["5000"]), MTLS, True),
        (_op(ports=["8080"]), MTLS, False),
        (_op(notPorts=["5000"]), MTLS, False),
        (_op(hosts=["helloworld.default*"]), MTLS, True),  # case-insensitive
        (_op(hosts=["*"]), PLAIN, False),  # no Host header
        (_op(notHosts=["*.evil"]), MTLS, True),
        (_op(methods=["GET"], paths=["/other"]), MTLS, False),
        (
            {"to": [{"operation": {"methods": ["POST"]}}, {"operation": {"paths": ["/hello"]}}]},
            MTLS,
            True,
        ),
        # all sections must match
        ({**_src(principals=[SLEEP_V1]), **_op(methods=["POST"])}, MTLS, False),
        # unknown fields fail an ALLOW rule
        (_src(serviceAccounts=["default/sleep-v1"]), MTLS, False),
    ],
)
def test_rule_fields(rule: dict[str, Any], request_: Request, allowed: bool) -> None:
    assert _rule_allows(rule, request_) is allowed


def _when(
    key: str, values: list[str] | None = None, not_values: list[str] | None = None
) -> dict[str, Any]:
    condition: dict[str, Any] = {"key": key}
    if values is not None:
        condition["values"] = values
    if not_values is not None:
        condition["notValues"] = not_values
    return {"when": [condition]}


WITH_HEADER = _get(SLEEP_V1, source_ip="10.1.2.3", headers={"X-Team": "blue"})


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        (_when("source.principal", [SLEEP_V1]), WITH_HEADER, True),
        (_when("source.principal", ["*"]), PLAIN, False),
        (_when("source.principal", not_values=["*"]), PLAIN, True),
        (_when("source.namespace", ["default"]), WITH_HEADER, True),
        (_when("source.namespace", not_values=["default"]), WITH_HEADER, False),
        (_when("source.ip", ["10.0.0.0/8"]), WITH_HEADER, True),
        (_when("source.ip", not_values=["10.1.2.3"]), WITH_HEADER, False),
        (_when("request.headers[x-team]", ["blue"]), WITH_HEADER, True),
        (_when("request.headers[X-Team]", ["bl*"]), WITH_HEADER, True),
        (_when("request.headers[x-team]", ["red"]), WITH_HEADER, False),
        (_when("request.headers[x-missing]", ["*"]), WITH_HEADER, False),
        (_when("request.headers[x-missing]", not_values=["red"]), WITH_HEADER, True),
        (_when("destination.port", ["5000", "8080"]), WITH_HEADER, True),
        (_when("destination.port", not_values=["5000"]), WITH_HEADER, False),
        (_when("request.auth.claims[iss]", ["*"]), WITH_HEADER, False),
        (_when("request.auth.claims[iss]", not_values=["x"]), WITH_HEADER, True),
        (_when("connection.sni", ["*"]), WITH_HEADER, False),  # unknown: ALLOW fails closed
        # every condition must hold
        (
            {
                "when": [
                    {"key": "source.namespace", "values": ["default"]},
                    {"key": "destination.port", "values": ["1"]},
                ]
            },
            WITH_HEADER,
            False,
        ),
    ],
)
def test_when_conditions(rule: dict[str, Any], request_: Request, allowed: bool) -> None:
    assert _rule_allows(rule, request_) is allowed


@pytest.mark.parametrize(
    ("rule", "denied"),
    [
        (_when("connection.sni", ["x"]), True),  # unknown: ignored, the DENY rule widens
        ({**_when("connection.sni", ["x"]), **_src(namespaces=["team-b"])}, False),
        (_src(serviceAccounts=["x/y"]), True),
        (_src(serviceAccounts=["x/y"], namespaces=["team-b"]), False),
    ],
)
def test_unknown_fields_widen_deny(rule: dict[str, Any], denied: bool) -> None:
    policy = _obj("default", "d", {"action": "DENY", "rules": [rule]})
    decision = authorize([policy], Workload("default", {}), _get(SLEEP_V1))
    assert decision.allowed is not denied


# ---------------------------------------------------------------- PeerAuthentication


def _pa(
    namespace: str, name: str, mode: str | None, selector: dict[str, str] | None = None, **spec: Any
) -> Policy:
    body: dict[str, Any] = dict(spec)
    if mode is not None:
        body["mtls"] = {"mode": mode}
    if selector is not None:
        body["selector"] = {"matchLabels": selector}
    return _obj(namespace, name, body)


WEB = Workload("shop", {"app": "web"})
MESH_STRICT = _pa("istio-system", "mesh", "STRICT")
NS_PERMISSIVE = _pa("shop", "ns", "PERMISSIVE")
NS_UNSET = _pa("shop", "ns", "UNSET")
WL_DISABLE = _pa("shop", "web", "DISABLE", {"app": "web"})
WEB_INT_KEY = _pa(
    "shop", "web", "STRICT", {"app": "web"}, portLevelMtls={8080: {"mode": "DISABLE"}}
)
NS_PORT_LEVEL = _pa("shop", "ns", "STRICT", portLevelMtls={"8080": {"mode": "DISABLE"}})


def _web(mode: str, **ports: str) -> Policy:
    """A workload-specific policy for WEB; ``p8080="DISABLE"`` sets a port-level mode."""
    levels = {k.removeprefix("p"): {"mode": v} for k, v in ports.items()}
    return _pa("shop", "web", mode, {"app": "web"}, portLevelMtls=levels)


@pytest.mark.parametrize(
    ("policies", "port", "mode"),
    [
        ([], 80, "PERMISSIVE"),
        ([MESH_STRICT], 80, "STRICT"),
        ([MESH_STRICT, NS_PERMISSIVE], 80, "PERMISSIVE"),
        ([MESH_STRICT, NS_UNSET], 80, "STRICT"),  # UNSET inherits the mesh
        ([MESH_STRICT, _pa("shop", "ns", None)], 80, "STRICT"),  # no mode: same
        ([MESH_STRICT, NS_PERMISSIVE, WL_DISABLE], 80, "DISABLE"),
        ([MESH_STRICT, NS_UNSET, _web("UNSET")], 80, "STRICT"),
        # a selector that does not match, a selector in another namespace
        ([NS_PERMISSIVE, _pa("shop", "db", "STRICT", {"app": "db"})], 80, "PERMISSIVE"),
        ([_pa("istio-system", "web", "DISABLE", {"app": "web"})], 80, "PERMISSIVE"),
        ([_pa("other", "ns", "STRICT")], 80, "PERMISSIVE"),
        # portLevelMtls on the workload policy overrides for its port only
        ([MESH_STRICT, _web("STRICT", p8080="DISABLE")], 8080, "DISABLE"),
        ([MESH_STRICT, _web("DISABLE", p8080="STRICT")], 80, "DISABLE"),
        # port-level UNSET takes the workload's (inherited) mode
        ([MESH_STRICT, _web("UNSET", p8080="UNSET")], 8080, "STRICT"),
        ([WEB_INT_KEY], 8080, "DISABLE"),  # integer keys, as YAML may give them
        ([NS_PORT_LEVEL], 8080, "STRICT"),  # portLevelMtls counts only with a selector
    ],
)
def test_peer_authentication_precedence(policies: list[Policy], port: int, mode: str) -> None:
    assert peer_authentication_mode(policies, WEB, port) == mode


def test_oldest_workload_policy_wins() -> None:
    newer = _pa("shop", "a-newer", "STRICT", {"app": "web"})
    older = _pa("shop", "z-older", "DISABLE", {"app": "web"})
    newer["metadata"]["creationTimestamp"] = "2024-05-02T00:00:00Z"
    older["metadata"]["creationTimestamp"] = "2024-05-01T00:00:00Z"
    assert peer_authentication_mode([newer, older], WEB, 80) == "DISABLE"
    # same time: by name
    older["metadata"]["creationTimestamp"] = newer["metadata"]["creationTimestamp"]
    assert peer_authentication_mode([older, newer], WEB, 80) == "STRICT"


def test_root_namespace_is_configurable() -> None:
    mesh = _pa("mesh-root", "mesh", "STRICT")
    assert peer_authentication_mode([mesh], WEB, 80) == "PERMISSIVE"
    assert peer_authentication_mode([mesh], WEB, 80, root_namespace="mesh-root") == "STRICT"
