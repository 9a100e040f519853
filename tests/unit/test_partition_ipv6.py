"""IPv6: the partition cuts IPv4 only, and says so before any change (pure parts)."""

import pytest

from chaosmesh_sec.errors import FaultNotApplied, InvalidInput
from chaosmesh_sec.faults import apiserver_partition as ap
from chaosmesh_sec.faults._partition_rules import Endpoint


def test_extra_hosts_are_ipv4_with_optional_ports() -> None:
    assert ap._extra_hosts(" 10.0.0.1, 10.0.0.2:6443 ,") == [("10.0.0.1", None), ("10.0.0.2", 6443)]
    assert ap._extra_hosts("") == []


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2001:db8::1", "IPv6"),
        ("fd00::1,10.0.0.1", "IPv6"),
        ("[2001:db8::1]:443", "not an IP"),
        ("10.0.0.1:0", "1-65535"),
        ("10.0.0.1:65536", "1-65535"),
        ("10.0.0.1:99999999999999999999", "1-65535"),
        ("10.0.0.1:-1", "1-65535"),
        ("10.0.0.1:http", "1-65535"),
        ("not-an-ip", "not an IP"),
        ("10.0.0.256", "not an IP"),
    ],
)
def test_bad_extra_hosts_are_refused_naming_the_input(value: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as info:
        ap._extra_hosts(value)
    assert info.value.name == "extra_hosts"


def test_an_ipv6_api_server_address_stops_the_fault_before_any_change() -> None:
    v4 = [Endpoint("10.96.0.1", 443), Endpoint("192.0.2.10", 6443)]
    assert ap._ipv4_only(v4) == v4
    with pytest.raises(FaultNotApplied, match="IPv6 addresses \\(fd00::1\\)"):
        ap._ipv4_only([*v4, Endpoint("fd00::1", 6443)])
