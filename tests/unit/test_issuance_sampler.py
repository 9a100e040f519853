"""sample_issuance's lanes: each target sampled on its own, against fake istiods.

The fakes are gRPC servers in this process (those of ``test_ca_client``), reached
by address as inside the cluster; the run's token and target reads are stood in for,
so that no cluster is involved. What is checked is order and independence, never
speed: a hung target's CSR does not hold back the others' samples, a broken channel
is that sample's verdict and is opened again, a pod gone ends its lane while a new
one joins, and a refusal is a sample per kind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes import issuance
from chaosmesh_sec.probes._ca_client import METHOD
from tests.unit.test_ca_client import IDENTITY, TOKEN, FakeIstiod, Pki
from tests.unit.test_ca_client import pki as pki

KINDS = ("replicas", "service")


class Istiods:
    """Fake istiods started on demand, all stopped at the end of the test."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self._servers: list[grpc.Server] = []

    def start(self, fake: FakeIstiod | None = None) -> FakeIstiod:
        fake = fake or FakeIstiod(self.pki)
        service, method = METHOD.strip("/").split("/")
        handler = grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(fake.create_certificate)}
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials([fake.pki.serving])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        fake.address = f"127.0.0.1:{port}"
        server.start()
        self._servers.append(server)
        return fake

    def stop(self) -> None:
        for server in self._servers:
            server.stop(grace=None)


class HangsFirst(FakeIstiod):
    """Hangs on its first CSR (until the caller's deadline), then signs."""

    def __init__(self, pki: Pki) -> None:
        super().__init__(pki, answer="sleep")
        self._lock = threading.Lock()
        self.calls = 0

    def create_certificate(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            return super().create_certificate(request, context)
        self.answer = "sign"
        return super().create_certificate(request, context)


@pytest.fixture
def istiods(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Iterator[Istiods]:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    started = Istiods(pki)
    yield started
    started.stop()


def replica(name: str, address: str) -> ca.CaTarget:
    return ca.CaTarget(name=name, kind="replica", namespace="x", pod=name, dns_name=address)


def service(pod: str, address: str) -> ca.CaTarget:
    return ca.CaTarget(name="service", kind="service", namespace="x", pod=pod, dns_name=address)


def new_run(pki: Pki, read: Any) -> issuance._IssuanceRun:
    """A run whose token is given and whose targets are `read(kinds)`'s."""
    fields = issuance._IssuanceRun.fields(
        {
            "namespace": "chaos",
            "service_account": "prober",
            "istiod_namespace": "x",
            "istiod_selector": "app=istiod",
            "istiod_service": "istiod",
            "via": "pod-ip",
            "timeout_seconds": 1,
            "trust_domain": "cluster.local",
            "cluster_id": "Kubernetes",
            "server_name": "istiod.istio-system.svc",
        }
    )
    run = issuance._IssuanceRun(**fields, given_token=None, core=None, discovery=None)
    who = ca.Caller("chaos", "prober", IDENTITY, root_pem=pki.root.pem, token=TOKEN)
    run._caller = lambda refresh_after: who  # type: ignore[method-assign]
    run._read_targets = read  # type: ignore[method-assign]
    return run


def by_target(samples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        out.setdefault(s["target"], []).append(s)
    return out


def in_order(samples: list[dict[str, Any]]) -> bool:
    times = [s["t"] for s in samples]
    return times == sorted(times) and len(set(times)) == len(times)


def test_a_hung_replica_holds_back_only_itself_and_its_broken_channel_is_a_verdict(
    istiods: Istiods,
    pki: Pki,
) -> None:
    good, hung = istiods.start(), istiods.start(HangsFirst(pki))
    targets = [replica("istiod-a", good.address), replica("istiod-b", hung.address)]
    targets.append(service("istiod-a", good.address))
    run = new_run(pki, lambda kinds: list(targets))
    with run:
        samples, reason = issuance._Sampler(run, KINDS, 0.05, 2.5).run()
        opened = run.channels.opened
    assert reason is None
    assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)
    lanes = by_target(samples)
    assert set(lanes) == {"istiod-a", "istiod-b", "service"}
    assert all(in_order(lane) for lane in lanes.values())
    first, *after = lanes["istiod-b"]
    assert (first["issued"], first["code"]) == (False, "DEADLINE_EXCEEDED")
    assert after and all(s["issued"] for s in after), after  # reopened, and issuing
    assert opened == 3  # istiod-a's (the Service's too), istiod-b's, then its new one
    # while istiod-b's first CSR hung, the other targets kept issuing (a tick would wait)
    while_hung = [
        s for s in lanes["istiod-a"] + lanes["service"] if first["t"] < s["t"] < after[0]["t"]
    ]
    assert while_hung and all(s["issued"] for s in while_hung)
    assert all(s["issued"] for s in lanes["istiod-a"] + lanes["service"])
    assert {s["pod"] for s in lanes["service"]} == {"istiod-a"}


def test_a_pod_gone_ends_its_lane_and_closes_its_channel_and_a_new_one_joins(
    istiods: Istiods,
    pki: Pki,
) -> None:
    listed: list[ca.CaTarget] = []
    signed = threading.Event()

    class Replaced(FakeIstiod):
        def create_certificate(self, request: bytes, context: grpc.ServicerContext) -> bytes:
            if len(self.serials) >= 5:
                listed[:] = [new]  # the old pod is deleted, a replacement is up
                signed.set()
            return super().create_certificate(request, context)

    replaced = istiods.start(Replaced(pki))
    port = replaced.address.rsplit(":", 1)[1]
    old, new = replica("istiod-old", replaced.address), replica("istiod-new", f"localhost:{port}")
    listed[:] = [old]
    run = new_run(pki, lambda kinds: list(listed))
    with run:
        samples, _reason = issuance._Sampler(run, ("replicas",), 0.05, 3).run()
        channels = run.channels
        still_open = set(channels._open)
        opened = channels.opened
    assert signed.is_set()
    lanes = by_target(samples)
    assert set(lanes) == {"istiod-old", "istiod-new"}
    assert all(in_order(lane) for lane in lanes.values())
    assert lanes["istiod-old"][-1]["t"] < lanes["istiod-new"][0]["t"]
    assert all(s["issued"] for s in lanes["istiod-new"])
    assert opened == 2 and still_open == {new.dns_name}  # the old pod's channel was closed


def test_a_refusal_is_a_sample_per_kind_and_sampling_starts_once_it_clears(
    istiods: Istiods,
    pki: Pki,
) -> None:
    fake = istiods.start()
    reads = {"n": 0}

    def read(kinds: Any) -> list[ca.CaTarget]:
        reads["n"] += 1
        if reads["n"] <= 3:
            raise ca.Refusal("no istiod pod matches 'app=istiod' in 'x'")
        return [replica("istiod-a", fake.address), service("istiod-a", fake.address)]

    run = new_run(pki, read)
    with run:
        samples, reason = issuance._Sampler(run, KINDS, 0.05, 2).run()
    assert reason == "no istiod pod matches 'app=istiod' in 'x'"
    refused = [s for s in samples if s["code"] == "REFUSED"]
    assert [s["target"] for s in refused] == ["replicas", "service"] * 3
    assert not any(s["issued"] for s in refused)
    issued = [s for s in samples if s["code"] != "REFUSED"]
    assert issued and all(s["issued"] for s in issued)
    assert max(s["t"] for s in refused) < min(s["t"] for s in issued)
    assert samples == sorted(samples, key=lambda s: s["t"])


def test_what_a_lane_raises_is_raised_by_the_run(
    istiods: Istiods,
    pki: Pki,
) -> None:
    fake = istiods.start()
    run = new_run(pki, lambda kinds: [replica("istiod-a", fake.address)])

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in a lane")

    run.issue_one = broken  # type: ignore[method-assign]
    with run, pytest.raises(RuntimeError, match="a bug in a lane"):
        issuance._Sampler(run, ("replicas",), 0.05, 30).run()


def test_the_longest_outage_counts_slots_skipped_while_a_csr_hung() -> None:
    ok = {"target": "istiod-a", "kind": "replica", "pod": "p", "code": "OK", "latency_ms": 5.0}
    bad = {**ok, "code": "DEADLINE_EXCEEDED", "latency_ms": 1000.0, "issued": False}
    # a CSR at 2 hung past slot 3; the one at 4 failed too; 5 issued again
    samples = [
        {**ok, "t": 0.0, "issued": True},
        {**ok, "t": 1.0, "issued": True},
        {**bad, "t": 2.0},
        {**bad, "t": 4.0},
        {**ok, "t": 5.0, "issued": True},
    ]
    assert issuance._longest_outage(samples, 1.0) == 3.0
    assert issuance._longest_outage(samples[:2], 1.0) == 0
    assert issuance._longest_outage([{**bad, "t": 7.5}], 0.5) == 0.5
