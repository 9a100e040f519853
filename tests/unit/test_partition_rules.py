"""The partition's rules and scripts (pure): what is installed is what is removed."""

from __future__ import annotations

import shlex

import pytest

from chaosmesh_sec.faults._partition_rules import (
    APPLIED_MARK,
    HEALED_MARK,
    SCOPES,
    Endpoint,
    is_run_id,
    new_run_id,
    plan,
    removal_script,
    verify_script,
)

ENDPOINTS = [Endpoint("10.96.0.1", 443), Endpoint("10.77.0.1", 6443), Endpoint("10.77.0.1", 6443)]


def _hooks(commands: list[list[str]], op: str) -> list[tuple[str, str]]:
    return [(c[1], c[-1]) for c in commands if c[0] == op]


@pytest.mark.parametrize(
    ("scope", "hooks"),
    [
        ("host", {"OUTPUT", "INPUT"}),
        ("pods", {"FORWARD"}),
        ("node", {"OUTPUT", "INPUT", "FORWARD"}),
    ],
)
def test_every_jump_installed_is_removed(scope: str, hooks: set[str]) -> None:
    p = plan("abcd1234", scope, ENDPOINTS, 30)
    installed = _hooks(p.apply_commands(), "-I")
    assert {hook for hook, _ in installed} == hooks
    assert installed == _hooks(p.remove_commands(), "-D")
    assert len(p.endpoints) == 2  # the duplicate endpoint is dropped
    drops = [c for c in p.apply_commands() if c[-1] == "DROP"]
    assert len(drops) == 4  # both directions for each endpoint
    assert ["-X", p.chain_out] in p.remove_commands()


def test_node_scope_cuts_host_and_pod_traffic() -> None:
    assert set(SCOPES) == {"host", "pods", "node"}
    node = plan("r1", "node", ENDPOINTS[:1], 5).apply_commands()
    host = plan("r1", "host", ENDPOINTS[:1], 5).apply_commands()
    pods = plan("r1", "pods", ENDPOINTS[:1], 5).apply_commands()
    jumps = [c for c in node if c[0] == "-I"]
    assert jumps == [c for c in host + pods if c[0] == "-I"]


def test_all_ports_endpoint_has_no_port_match() -> None:
    p = plan("r2", "host", [Endpoint("10.77.0.1", 0)], 5)
    assert not any("--dport" in c or "--sport" in c for c in p.apply_commands())


def test_pod_script_heals_on_term_and_after_the_duration() -> None:
    script = plan("r3", "pods", ENDPOINTS, 42).pod_script()
    assert "trap 'heal; exit 0' TERM INT" in script
    assert "sleep 42 &" in script
    assert script.rstrip().endswith("heal")
    assert APPLIED_MARK in script
    assert "CMS-0123abcd" in verify_script("0123abcd")


@pytest.mark.parametrize(
    ("scope", "endpoints"), [("cluster", ENDPOINTS), ("host", [])], ids=["scope", "empty"]
)
def test_plan_refuses(scope: str, endpoints: list[Endpoint]) -> None:
    with pytest.raises(ValueError):
        plan("r4", scope, endpoints, 5)


def test_endpoint_needs_an_ip() -> None:
    with pytest.raises(ValueError):
        Endpoint("api.example", 443)


@pytest.mark.parametrize("scope", SCOPES)
def test_the_removal_built_from_the_run_id_removes_every_scope(scope: str) -> None:
    p = plan("0123abcd", scope, ENDPOINTS, 30)
    script = removal_script("0123abcd")
    for command in p.remove_commands():
        assert f"iptables -t mangle {shlex.join(command)} 2>/dev/null || true" in script
    assert script.splitlines()[-1] == f"echo {shlex.quote(HEALED_MARK)}"


@pytest.mark.parametrize(
    "run_id",
    ["", "0123abc", "0123abcde", "0123ABCD", "0123abc;", "$(touch x)", "0123abcd\n", 12345678],
)
def test_scripts_refuse_what_is_not_a_run_id(run_id: object) -> None:
    assert not is_run_id(run_id)
    with pytest.raises(ValueError):
        removal_script(run_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_script(run_id)  # type: ignore[arg-type]


def test_new_run_ids_are_run_ids() -> None:
    assert all(is_run_id(new_run_id()) for _ in range(50))


def test_ipv4_endpoints_get_host_routes_and_ipv6_ones_are_refused() -> None:
    p = plan("0123abcd", "host", [Endpoint("192.0.2.10", 6443)], 5)
    assert [
        "-A",
        p.chain_out,
        "-d",
        "192.0.2.10/32",
        "-p",
        "tcp",
        "--dport",
        "6443",
        "-j",
        "DROP",
    ] in (p.apply_commands())
    for v6 in ("2001:db8::1", "::ffff:192.0.2.10", "fd00::10"):
        with pytest.raises(ValueError, match="IPv6"):
            plan("0123abcd", "host", [Endpoint("192.0.2.10", 443), Endpoint(v6, 443)], 5)
