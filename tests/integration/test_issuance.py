"""Issuance probes against the lab's real istiod: real CSRs, real tokens, real refusals.

Faults around issuance are in ``tests/e2e/test_issuance_experiments.py``; here the
probes themselves: what they report when everything works, and the verdict (never a
crash) for each thing a user can get wrong that only the cluster can tell.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes import issuance
from tests.lab_fixtures import channels_made, deploy_pause, eventually

IDENTITY = "spiffe://cluster.local/ns/default/sa/default"


def test_every_replica_and_the_service_issue_for_the_callers_identity(
    core: client.CoreV1Api,
) -> None:
    result = issuance.certificate_issuance(min_issuing_replicas=3)
    assert result["ok"] is True, result["reason"]
    assert result["via"] == "port-forward"
    istiods = core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
    assert {r["pod"] for r in result["replicas"]} == {p.metadata.name for p in istiods}
    for r in [*result["replicas"], result["service"]]:
        assert r["issued"] is True and r["code"] == "OK", r
        assert r["leaf"]["spiffe_uris"] == [IDENTITY]
        assert r["leaf"]["root_matches"] is True and r["leaf"]["chain_length"] >= 2
        assert r["identity_ok"] is True and 0 < r["latency_ms"] < 2000
    serials = {r["leaf"]["serial"] for r in result["replicas"]}
    assert len(serials) == 3  # one certificate per CSR
    assert result["service"]["pod"] in {r["pod"] for r in result["replicas"]}


def test_istiod_overwrites_a_foreign_identity_in_the_csr() -> None:
    result = issuance.identity_is_enforced()
    assert result["requested_identity"] == "spiffe://cluster.local/ns/istio-system/sa/istiod"
    assert result["ok"] is True, result["reason"]
    assert len(result["results"]) == 4
    for r in result["results"]:
        assert r["spiffe_uris"] == [IDENTITY] and r["enforced"] is True


def test_a_token_for_another_audience_is_unauthenticated() -> None:
    result = issuance.certificate_issuance(token_audience="not-istio-ca")
    assert result["ok"] is False
    assert "0 of 3 replicas issued" in result["reason"]
    for r in [*result["replicas"], result["service"]]:
        assert r["code"] == "UNAUTHENTICATED" and r["issued"] is False, r


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"service_account": "no-such-sa"}, "ServiceAccount 'no-such-sa' not found"),
        ({"namespace": "no-such-namespace"}, "not found in namespace 'no-such-namespace'"),
        ({"istiod_selector": "app=no-istiod"}, "no istiod pod matches 'app=no-istiod'"),
        ({"istiod_service": "no-service"}, "Service path did not issue"),
    ],
)
def test_what_only_the_cluster_can_refuse_is_a_verdict(kwargs: dict[str, str], reason: str) -> None:
    result = issuance.certificate_issuance(**kwargs)
    assert result["ok"] is False
    assert reason in result["reason"], result["reason"]


def test_a_replica_that_does_not_answer_is_reported_per_replica(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """Pods that look like istiod but serve nothing on 15012 (pause containers)."""
    deploy_pause(api, namespace, "fake-istiod", 1)

    def running() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=fake-istiod").items
        return bool(pods) and all(p.status.pod_ip for p in pods)

    eventually(running, 60, "the fake istiod pod")
    result = issuance.certificate_issuance(
        istiod_namespace=namespace,
        istiod_selector="app=fake-istiod",
        require_service=False,
        timeout_seconds=3,
    )
    assert result["ok"] is False
    [replica] = result["replicas"]
    assert replica["issued"] is False
    assert replica["code"] in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), replica
    assert replica["pod_ip"] and replica["leaf"] is None


def test_sampling_gives_a_timeline_per_target() -> None:
    result = issuance.sample_issuance(duration_seconds=3, interval_seconds=0.5)
    summary = result["summary"]
    assert set(summary) >= {"service"} and len(summary) == 4
    for target, stats in summary.items():
        assert stats["attempts"] >= 4, target
        assert stats["success_rate"] == 1.0 and stats["longest_outage_s"] == 0
        assert stats["latency_ms"]["p50"] <= stats["latency_ms"]["p99"]
    times = [s["t"] for s in result["samples"]]
    assert times == sorted(times) and times[0] < 0.5 and times[-1] < 3


def test_one_channel_per_replica_serves_many_csrs_and_a_broken_one_is_reopened(
    core: client.CoreV1Api,
) -> None:
    who = ca.caller(core, "default", "default", "istio-ca", "cluster.local")
    [target, *_] = ca.replica_targets(core, "istio-system", "app=istiod")
    with ca.Channels(
        core, "port-forward", server_name="istiod.istio-system.svc", cluster_id="Kubernetes"
    ) as channels:
        first = [channels.issue(target, who, timeout_seconds=5) for _ in range(5)]
        assert all(o.issued for o in first), first
        assert channels.opened == 1
        assert len({o.leaf.serial for o in first if o.leaf}) == 5  # a fresh CSR each
        # the port-forward dies under the channel, as when the API server drops it
        [(_token, tunnel, _client)] = channels._open.values()
        assert tunnel is not None
        tunnel.close()
        time.sleep(1)  # the tunnel's pumps notice and hang up
        broken = channels.issue(target, who, timeout_seconds=3)
        assert not broken.issued and broken.code in ca.BROKEN_CODES, broken
        again = channels.issue(target, who, timeout_seconds=5)
        assert again.issued and again.leaf and again.leaf.spiffe_uris == (IDENTITY,)
        assert channels.opened == 2


def test_a_sampler_keeps_one_channel_per_istiod_pod_for_its_whole_run(
    core: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = channels_made(monkeypatch)
    result = issuance.sample_issuance(duration_seconds=3, interval_seconds=0.2)
    istiods = core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
    assert all(s["issued"] for s in result["samples"]), result["samples"]
    assert len(result["samples"]) >= 4 * 5
    [channels] = made
    assert channels.opened == len(istiods)  # the Service's endpoint shares its pod's
    assert not channels._open  # all closed when the run ended
