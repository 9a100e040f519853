"""The Cilium stand-in's L4 engine (pure): policies + ipcache -> one node's ingress chain.

Most tests judge packets with a small first-match reading of the rules (``_judge``), so
they check what the chain does, not how it is spelled; a few check the text itself.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from chaosmesh_sec.lab.standins.l4policy import (
    CHAIN,
    Identity,
    LocalPod,
    hook_rule,
    ingress_rules,
    restore_text,
    selector_matches,
)

Policy = dict[str, Any]


def _obj(namespace: str | None, name: str, spec: dict[str, Any]) -> Policy:
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"metadata": meta, "spec": spec}


def _judge(
    rules: Sequence[Sequence[str]], src: str, dst: str, port: int, proto: str = "tcp"
) -> str:
    """First-match verdict of the chain for a NEW packet; RETURN when none matches."""
    for rule in rules:
        args = dict(zip(rule[2::2], rule[3::2], strict=False))
        if "--ctstate" in rule:
            continue  # a NEW packet never matches the conntrack rule
        if "-s" in args and ipaddress.ip_address(src) not in ipaddress.ip_network(args["-s"]):
            continue
        if "-d" in args and ipaddress.ip_address(dst) not in ipaddress.ip_network(args["-d"]):
            continue
        if "-p" in args and args["-p"] != proto:
            continue
        if "--dport" in args:
            lo, _, hi = args["--dport"].partition(":")
            if not int(lo) <= port <= int(hi or lo):
                continue
        return rule[-1]
    return "RETURN"


def _passes(rules: Sequence[Sequence[str]], src: str, dst: str, port: int, **kw: Any) -> bool:
    return _judge(rules, src, dst, port, **kw) != "DROP"


# ---------------------------------------------------------------- the seed scenario

HW = {
    v: LocalPod(f"10.78.1.{10 + i}", "default", {"app": "helloworld", "version": v})
    for i, v in enumerate(("v1", "v2"))
}
SLEEP_IP = {"v1": "10.78.2.20", "v2": "10.78.2.21"}
SLEEP = {v: Identity("default", {"app": "sleep", "version": v}) for v in ("v1", "v2")}
IPCACHE = {
    SLEEP_IP["v1"]: SLEEP["v1"],
    SLEEP_IP["v2"]: SLEEP["v2"],
    **{p.ip: Identity(p.namespace, p.labels) for p in HW.values()},
}


def _cnp(version: str) -> Policy:
    return _obj(
        "default",
        f"helloworld-{version}",
        {
            "endpointSelector": {"matchLabels": {"app": "helloworld", "k8s:version": version}},
            "ingress": [
                {
                    "fromEndpoints": [{"matchLabels": {"k8s:app": "sleep", "version": version}}],
                    "toPorts": [{"ports": [{"port": "5000", "protocol": "TCP"}]}],
                }
            ],
        },
    )


def _knp(version: str) -> Policy:
    return _obj(
        "default",
        f"helloworld-{version}",
        {
            "podSelector": {"matchLabels": {"app": "helloworld", "version": version}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app": "sleep", "version": version}}}
                    ],
                    "ports": [{"port": 5000}],
                }
            ],
        },
    )


SEED_CNP = [_cnp("v1"), _cnp("v2")]
SEED_KNP = [_knp("v1"), _knp("v2")]


def _accepts(rules: list[list[str]]) -> set[tuple[str, ...]]:
    return {tuple(r[2 : r.index("-m", 2)]) for r in rules if r[-1] == "ACCEPT"}


def test_seed_each_sleep_reaches_only_its_helloworld() -> None:
    rules = ingress_rules(list(HW.values()), IPCACHE, [], SEED_CNP)
    assert rules[0][2:6] == ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"]
    assert rules[0][-1] == "RETURN"
    for v, other in (("v1", "v2"), ("v2", "v1")):
        assert _judge(rules, SLEEP_IP[v], HW[v].ip, 5000) == "ACCEPT"
        assert _judge(rules, SLEEP_IP[other], HW[v].ip, 5000) == "DROP"
        assert _judge(rules, SLEEP_IP[v], HW[v].ip, 5001) == "DROP"
        assert _judge(rules, SLEEP_IP[v], HW[v].ip, 5000, proto="udp") == "DROP"
    assert _accepts(rules) == {
        ("-s", f"{SLEEP_IP[v]}/32", "-d", f"{HW[v].ip}/32", "-p", "tcp", "--dport", "5000")
        for v in ("v1", "v2")
    }
    last_of_v1 = max(i for i, r in enumerate(rules) if f"{HW['v1'].ip}/32" in r)
    assert rules[last_of_v1][2:4] == ["-d", f"{HW['v1'].ip}/32"]
    assert rules[last_of_v1][-1] == "DROP"
    assert "cnp:default/helloworld-v1" in rules[last_of_v1][-3]


def test_stale_cache_trusts_a_recycled_ip_by_design() -> None:
    """The real pod at X is now sleep-v2, but the cache still says sleep-v1: X is let in."""
    x = "10.78.2.99"
    stale = {**IPCACHE, x: SLEEP["v1"]}
    rules = ingress_rules([HW["v1"]], stale, [], SEED_CNP)
    assert _judge(rules, x, HW["v1"].ip, 5000) == "ACCEPT"
    fresh = {**IPCACHE, x: SLEEP["v2"]}
    assert _judge(ingress_rules([HW["v1"]], fresh, [], SEED_CNP), x, HW["v1"].ip, 5000) == "DROP"


def test_network_policy_equivalent_allows_the_same() -> None:
    pods = list(HW.values())
    from_cnp = ingress_rules(pods, IPCACHE, [], SEED_CNP)
    from_knp = ingress_rules(pods, IPCACHE, SEED_KNP, [])
    assert _accepts(from_cnp) == _accepts(from_knp)
    assert [r[-1] for r in from_cnp] == [r[-1] for r in from_knp]
    assert "knp:default/helloworld-v1" in " ".join(from_knp[2])


OTHER = LocalPod("10.78.1.30", "default", {"app": "other"})
ELSEWHERE = LocalPod("10.78.1.31", "prod", {"app": "helloworld", "version": "v1"})


@pytest.mark.parametrize(
    ("knps", "cnps"),
    [
        ([], []),
        (SEED_KNP, SEED_CNP),  # select helloworld pods of `default` only
        ([_obj("default", "egress", {"podSelector": {}, "policyTypes": ["Egress"]})], []),
        ([], [_obj("default", "egress", {"endpointSelector": {}, "egress": [{}]})]),
        ([], [_obj("default", "empty", {"endpointSelector": {}, "ingress": []})]),
        (
            [],
            [
                _obj(
                    "default",
                    "opt-out",
                    {
                        "endpointSelector": {},
                        "enableDefaultDeny": {"ingress": False},
                        "ingress": [{"fromEndpoints": [{}]}],
                    },
                )
            ],
        ),
    ],
    ids=["none", "other-labels-or-ns", "knp-egress", "cnp-egress", "cnp-ingress-empty", "opt-out"],
)
def test_non_isolated_pods_get_no_drop(knps: list[Policy], cnps: list[Policy]) -> None:
    rules = ingress_rules([OTHER, ELSEWHERE], IPCACHE, knps, cnps)
    assert [r for r in rules if r[-1] == "DROP"] == []
    assert _judge(rules, SLEEP_IP["v2"], OTHER.ip, 80) == "RETURN"


@pytest.mark.parametrize(
    ("spec", "isolated"),
    [
        ({"podSelector": {}}, True),  # policyTypes absent: Ingress
        ({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, True),
        ({"podSelector": {"matchLabels": {"app": "x"}}}, False),
    ],
)
def test_network_policy_without_rules_denies_all(spec: Policy, isolated: bool) -> None:
    rules = ingress_rules([OTHER], IPCACHE, [_obj("default", "p", spec)], [])
    assert _passes(rules, SLEEP_IP["v1"], OTHER.ip, 80) is not isolated


# ---------------------------------------------------------------- peers

NS_LABELS = {"team-a": {"team": "a"}, "team-b": {"team": "b"}}
A_POD, B_POD, D_POD = "10.78.3.1", "10.78.3.2", "10.78.3.3"
PEERS_CACHE = {
    A_POD: Identity("team-a", {"app": "client"}),
    B_POD: Identity("team-b", {"app": "client"}),
    D_POD: Identity("default", {"app": "client"}),
    "10.78.3.4": Identity("team-a", {"app": "batch"}),
}


def _knp_from(peer: Policy) -> list[Policy]:
    return [_obj("default", "from", {"podSelector": {}, "ingress": [{"from": [peer]}]})]


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ({"podSelector": {}}, {D_POD}),
        ({"namespaceSelector": {"matchLabels": {"team": "a"}}}, {A_POD, "10.78.3.4"}),
        (
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}},
            {B_POD},
        ),
        ({"namespaceSelector": {}}, set(PEERS_CACHE)),
        (
            {
                "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
                "podSelector": {"matchLabels": {"app": "client"}},
            },
            {A_POD, B_POD},
        ),
        ({"ipBlock": {"cidr": "10.78.3.0/30", "except": ["10.78.3.2/32"]}}, {A_POD, D_POD}),
    ],
    ids=["same-ns", "ns-labels", "ns-implicit-name", "all-ns", "ns-and-pod", "ipblock"],
)
def test_network_policy_peers(peer: Policy, allowed: set[str]) -> None:
    rules = ingress_rules([OTHER], PEERS_CACHE, _knp_from(peer), [], namespace_labels=NS_LABELS)
    assert {ip for ip in PEERS_CACHE if _passes(rules, ip, OTHER.ip, 80)} == allowed


def test_ipblock_except_carves_holes() -> None:
    peer = {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.78.0.0/16", "10.1.2.0/24"]}}
    rules = ingress_rules([OTHER], {}, _knp_from(peer), [])
    cases = {"10.9.9.9": True, "10.78.2.20": False, "10.1.2.7": False, "10.1.3.7": True}
    assert {ip: _passes(rules, ip, OTHER.ip, 80) for ip in cases} == cases
    assert not _passes(rules, "192.168.0.1", OTHER.ip, 80)


def _cnp_from(*selectors: Policy, namespace: str | None = "default") -> list[Policy]:
    rule = {"fromEndpoints": list(selectors)}
    return [_obj(namespace, "from", {"endpointSelector": {}, "ingress": [rule]})]


@pytest.mark.parametrize(
    ("cnps", "allowed"),
    [
        (_cnp_from({}), {D_POD}),  # {} is every endpoint of the policy's namespace
        (_cnp_from({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "team-b"}}), {B_POD}),
        (
            _cnp_from(
                {"matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "Exists"}]}
            ),
            set(PEERS_CACHE),
        ),
        (_cnp_from({"matchLabels": {"any:app": "batch"}}), set()),  # only in team-a
        (_cnp_from({"matchLabels": {"reserved:host": ""}}), set()),
        (_cnp_from({"matchLabels": {"app": "batch"}}, namespace=None), {"10.78.3.4"}),  # CCNP
        (
            [
                _obj(
                    "default",
                    "cidr",
                    {
                        "endpointSelector": {},
                        "ingress": [
                            {
                                "fromCIDR": ["10.78.3.1/32"],
                                "fromCIDRSet": [{"cidr": "10.78.3.2/31", "except": ["10.78.3.2"]}],
                            }
                        ],
                    },
                )
            ],
            {A_POD, D_POD},
        ),
    ],
    ids=["empty-same-ns", "named-ns", "all-ns", "prefix-any", "reserved", "clusterwide", "cidr"],
)
def test_cilium_peers(cnps: list[Policy], allowed: set[str]) -> None:
    rules = ingress_rules([OTHER], PEERS_CACHE, [], cnps)
    assert {ip for ip in PEERS_CACHE if _passes(rules, ip, OTHER.ip, 80)} == allowed


@pytest.mark.parametrize(
    ("rule", "passes"),
    [
        ({}, {80: False, 443: False}),  # an empty rule allows nothing
        ({"toPorts": [{"ports": [{"port": "443"}]}]}, {80: False, 443: True}),  # any source
        ({"fromEntities": ["all"]}, {80: True, 443: True}),
        ({"fromRequires": [{"matchLabels": {"app": "client"}}]}, {80: False, 443: False}),
    ],
    ids=["empty", "ports-only", "entity-all", "unsupported-peer"],
)
def test_cilium_rule_shapes(rule: Policy, passes: dict[int, bool]) -> None:
    cnps = [_obj("default", "r", {"endpointSelector": {}, "ingress": [rule]})]
    rules = ingress_rules([OTHER], PEERS_CACHE, [], cnps)
    assert {port: _passes(rules, B_POD, OTHER.ip, port) for port in passes} == passes


# ---------------------------------------------------------------- ports

KNP_PORTS = "knp"
CNP_PORTS = "cnp"


@pytest.mark.parametrize(
    ("kind", "ports", "probes"),
    [
        (KNP_PORTS, [{"port": 80}], {("tcp", 80): True, ("udp", 80): False}),
        (KNP_PORTS, [{"protocol": "UDP", "port": 53}], {("udp", 53): True, ("tcp", 53): False}),
        (KNP_PORTS, [{"port": 8000, "endPort": 8010}], {("tcp", 8005): True, ("tcp", 8011): False}),
        (KNP_PORTS, [{"protocol": "TCP"}], {("tcp", 1): True, ("udp", 1): False}),
        (KNP_PORTS, [{"port": "http"}], {("tcp", 80): False}),  # named: matches nothing
        (CNP_PORTS, [{"port": "53"}], {("udp", 53): True, ("tcp", 53): True, ("tcp", 54): False}),
        (CNP_PORTS, [{"port": "0", "protocol": "TCP"}], {("tcp", 9): True, ("udp", 9): False}),
        (CNP_PORTS, [{"port": "http", "protocol": "TCP"}], {("tcp", 80): False}),
        (CNP_PORTS, [{"port": "80", "protocol": "TCP", "endPort": 81}], {("tcp", 81): True}),
    ],
)
def test_ports(kind: str, ports: list[Policy], probes: dict[tuple[str, int], bool]) -> None:
    if kind == KNP_PORTS:
        knps = [_obj("default", "p", {"podSelector": {}, "ingress": [{"ports": ports}]})]
        rules = ingress_rules([OTHER], IPCACHE, knps, [])
    else:
        rule = {"fromEndpoints": [{}], "toPorts": [{"ports": ports}]}
        cnps = [_obj("default", "p", {"endpointSelector": {}, "ingress": [rule]})]
        rules = ingress_rules([OTHER], IPCACHE, [], cnps)
    got = {
        (proto, port): _passes(rules, SLEEP_IP["v1"], OTHER.ip, port, proto=proto)
        for proto, port in probes
    }
    assert got == probes


# ---------------------------------------------------------------- deny rules

DENY_SLEEP_V2 = _obj(
    "default",
    "deny-sleep-v2",
    {
        "endpointSelector": {"matchLabels": {"app": "helloworld"}},
        "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"version": "v2", "app": "sleep"}}]}],
    },
)
ALLOW_ALL = _obj(
    "default", "allow-all", {"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}]}
)


@pytest.mark.parametrize("allow", [[ALLOW_ALL], SEED_CNP], ids=["allow-all", "seed"])
def test_ingress_deny_wins_over_allows(allow: list[Policy]) -> None:
    knp_allow_all = [_obj("default", "knp-all", {"podSelector": {}, "ingress": [{}]})]
    rules = ingress_rules([HW["v2"]], IPCACHE, knp_allow_all, [*allow, DENY_SLEEP_V2])
    assert _judge(rules, SLEEP_IP["v2"], HW["v2"].ip, 5000) == "DROP"
    assert _passes(rules, HW["v1"].ip, HW["v2"].ip, 5000)
    denies = [i for i, r in enumerate(rules) if "cnp:default/deny-sleep-v2" in r]
    accepts = [i for i, r in enumerate(rules) if r[-1] == "ACCEPT"]
    assert denies and accepts and max(denies) < min(accepts)


def test_deny_only_policy_isolates_unless_opted_out() -> None:
    assert not _passes(
        ingress_rules([HW["v1"]], IPCACHE, [], [DENY_SLEEP_V2]), "1.2.3.4", HW["v1"].ip, 1
    )
    spec = {**DENY_SLEEP_V2["spec"], "enableDefaultDeny": {"ingress": False}}
    opted = {**DENY_SLEEP_V2, "spec": spec}
    rules = ingress_rules([HW["v1"]], IPCACHE, [], [opted])
    assert _judge(rules, "1.2.3.4", HW["v1"].ip, 1) == "RETURN"
    assert _judge(rules, SLEEP_IP["v2"], HW["v1"].ip, 5000) == "DROP"


# ---------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("expr", "labels", "selected"),
    [
        ({"key": "v", "operator": "In", "values": ["1", "2"]}, {"v": "2"}, True),
        ({"key": "v", "operator": "In", "values": ["1"]}, {}, False),
        ({"key": "v", "operator": "NotIn", "values": ["1"]}, {}, True),
        ({"key": "v", "operator": "NotIn", "values": ["1"]}, {"v": "1"}, False),
        ({"key": "v", "operator": "Exists"}, {"v": ""}, True),
        ({"key": "v", "operator": "DoesNotExist"}, {"v": ""}, False),
    ],
)
def test_match_expressions(expr: Policy, labels: dict[str, str], selected: bool) -> None:
    assert selector_matches({"matchExpressions": [expr]}, labels) is selected
    assert (
        selector_matches({"matchExpressions": [{**expr, "key": "k8s:v"}]}, labels, cilium=True)
        is selected
    )


def test_unknown_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="operator"):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, {})


# ---------------------------------------------------------------- text


def test_equal_inputs_give_equal_text() -> None:
    pods, knps, cnps = [*HW.values(), OTHER], [*SEED_KNP], [*SEED_CNP, DENY_SLEEP_V2]
    cache = dict(IPCACHE)
    first = restore_text(ingress_rules(pods, cache, knps, cnps))
    shuffle = random.Random(7).shuffle
    for seq in (pods, knps, cnps):
        shuffle(seq)
    cache = dict(reversed(list(cache.items())))
    assert restore_text(ingress_rules(pods, cache, knps, cnps)) == first


def test_restore_text_replaces_the_chain_only() -> None:
    text = restore_text(ingress_rules([HW["v1"]], IPCACHE, [], SEED_CNP, "CMS-X"), "CMS-X")
    lines = text.splitlines()
    assert lines[:3] == ["*filter", ":CMS-X - [0:0]", "-F CMS-X"]
    assert lines[-1] == "COMMIT" and text.endswith("\n")
    assert all(line.startswith("-A CMS-X ") for line in lines[3:-1])
    assert hook_rule("CMS-X")[:2] == ["-I", "FORWARD"] and hook_rule("CMS-X")[-2:] == [
        "-j",
        "CMS-X",
    ]
    with pytest.raises(ValueError):
        restore_text([["-A", "OTHER", "-j", "DROP"]], "CMS-X")
    with pytest.raises(ValueError):
        ingress_rules([], {}, [], [], "bad chain")


def _iptables_ok() -> bool:
    return (
        os.geteuid() == 0
        and bool(shutil.which("iptables-restore"))
        and bool(shutil.which("unshare"))
    )


@pytest.mark.skipif(not _iptables_ok(), reason="needs root, iptables-restore and unshare")
def test_iptables_restore_accepts_and_replaces_it() -> None:
    """In a throwaway network namespace: load twice, the second load replaces the first."""
    pods = list(HW.values())
    first = restore_text(ingress_rules(pods, IPCACHE, SEED_KNP, [*SEED_CNP, DENY_SLEEP_V2]))
    second = restore_text(ingress_rules(pods, IPCACHE, [], []))
    hook = " ".join(hook_rule())
    script = "\n".join(
        [
            "set -e",
            'printf "%s" "$1" | iptables-restore --noflush',
            f"iptables -t filter -S {CHAIN} | grep -c -- '^-A' >&2",
            f"iptables -t filter {hook}",
            'printf "%s" "$2" | iptables-restore --noflush',
            f"iptables -t filter -S {CHAIN}",
            "iptables -t filter -S FORWARD",
        ]
    )
    try:
        done = subprocess.run(
            ["unshare", "-n", "sh", "-c", script, "sh", first, second],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("iptables-restore hung")
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"no network namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert int(done.stderr.split()[0]) == len(first.splitlines()) - 4  # all but the frame
    chain_lines = [ln for ln in done.stdout.splitlines() if ln.startswith(f"-A {CHAIN} ")]
    assert len(chain_lines) == 1 and "ESTABLISHED" in chain_lines[0]
    assert f"-j {CHAIN}" in done.stdout
