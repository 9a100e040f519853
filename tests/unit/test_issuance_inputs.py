"""Issuance probes: malformed inputs are refused before any API call; statistics are right.

No cluster is involved (the ``no_cluster`` fixture fails the test on any client or
request). What only the cluster can refuse (an unknown ServiceAccount, no istiod)
is a verdict, tested against the lab in ``tests/integration/test_issuance.py``.
"""

from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import issuance

COMMON: list[tuple[dict[str, Any], str]] = [
    ({"namespace": "Default"}, "namespace"),
    ({"service_account": "a b"}, "service_account"),
    ({"istiod_namespace": ""}, "istiod_namespace"),
    ({"istiod_selector": "app in (x"}, "istiod_selector"),
    ({"istiod_service": "istiod.svc"}, "istiod_service"),
    ({"via": "ssh"}, "via"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"trust_domain": "Cluster Local"}, "trust_domain"),
    ({"cluster_id": ""}, "cluster_id"),
    ({"cluster_id": "a\nb"}, "cluster_id"),
    ({"server_name": "-bad"}, "server_name"),
]


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        *COMMON,
        ({"min_issuing_replicas": -1}, "min_issuing_replicas"),
        ({"require_service": "yes"}, "require_service"),
        ({"max_latency_ms": 0}, "max_latency_ms"),
        ({"token_audience": "two words"}, "token_audience"),
    ],
)
def test_certificate_issuance_rejects(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        issuance.certificate_issuance(**kwargs)
    assert info.value.name == bad_input


HUGE = "sekret" * 3000  # past MAX_TOKEN


@pytest.mark.parametrize(
    "token",
    [42, ["sekr"], "sekr et", "sekr\net", " sekret", "sekret\t", "sekr\x00et", "sekr\u00e9t", HUGE],
    ids=["int", "list", "space", "newline", "leading", "tab", "nul", "non-ascii", "huge"],
)
def test_a_given_token_is_one_ascii_word_refused_without_showing_it(
    no_cluster: None, token: Any
) -> None:
    """Before any request (a TokenRequest first, then a raw ValueError from gRPC, before)."""
    for probe in (issuance.certificate_issuance, issuance.identity_is_enforced):
        with pytest.raises(InvalidInput) as info:
            probe(secrets={"ca_token": token})
        assert info.value.name == "ca_token"
        assert "sekr" not in str(info.value) and "42" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [*COMMON, ({"requested_identity": "https://evil"}, "requested_identity")],
)
def test_identity_is_enforced_rejects(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        issuance.identity_is_enforced(**kwargs)
    assert info.value.name == bad_input


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        *COMMON,
        ({"duration_seconds": 0}, "duration_seconds"),
        ({"duration_seconds": 99999}, "duration_seconds"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": float("nan")}, "interval_seconds"),
        ({"targets": "pods"}, "targets"),
        ({"targets": ""}, "targets"),
    ],
)
def test_sample_issuance_rejects(no_cluster: None, kwargs: dict[str, Any], bad_input: str) -> None:
    with pytest.raises(InvalidInput) as info:
        issuance.sample_issuance(**kwargs)
    assert info.value.name == bad_input


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 50, None), ([5.0], 99, 5.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 90, 4)],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert issuance._percentile(values, q) == expected


def test_summary_reports_the_outage_window() -> None:
    ok = {"kind": "service", "pod": "p", "code": "OK", "latency_ms": 10.0}
    bad = {**ok, "code": "DEADLINE_EXCEEDED", "latency_ms": 2000.0}
    samples = [
        {**(bad if t in (2, 3, 4, 7) else ok), "t": float(t), "target": "service",
         "issued": t not in (2, 3, 4, 7)}
        for t in range(10)
    ]  # fmt: skip
    [(target, summary)] = issuance._summary(samples, 1.0).items()
    assert target == "service"
    assert summary["attempts"] == 10 and summary["issued"] == 6
    assert summary["success_rate"] == 0.6
    assert summary["first_failure_s"] == 2.0 and summary["last_failure_s"] == 7.0
    assert summary["longest_outage_s"] == 3.0
    assert summary["latency_ms"]["max"] == 10.0  # failures do not count as latencies
