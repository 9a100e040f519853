"""sample_issuance against the lab's istiod: each target sampled on its own.

A lane per target (each replica, and the Service), one CSR in flight each: each
target's samples are in order; a replica's port-forward dying under its channel is
that replica's failed sample (a broken channel), its channel is opened again and it
issues again, while the other replicas go on issuing. No speed is asserted here
(``bench/issuance_rate.py`` measures it).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes import issuance
from tests.lab_fixtures import channels_made


def _istiods(core: client.CoreV1Api) -> list[str]:
    pods = core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
    return sorted(str(p.metadata.name) for p in pods if p.metadata)


def _lanes(samples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        out.setdefault(s["target"], []).append(s)
    return out


def test_each_target_is_sampled_on_its_own_in_order(core: client.CoreV1Api) -> None:
    result = issuance.sample_issuance(duration_seconds=3, interval_seconds=0.05)
    lanes = _lanes(result["samples"])
    assert set(lanes) == {*_istiods(core), "service"}
    assert result["reason"] is None
    for target, samples in lanes.items():
        times = [s["t"] for s in samples]
        assert times == sorted(times) and len(set(times)) == len(times), target
        assert all(s["issued"] and s["code"] == "OK" for s in samples), (target, samples)
        assert len(samples) >= 5, target
    assert [s["t"] for s in result["samples"]] == sorted(s["t"] for s in result["samples"])


def test_a_replicas_broken_tunnel_is_its_verdict_then_it_issues_again(
    core: client.CoreV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = channels_made(monkeypatch)
    istiods = _istiods(core)
    cut = istiods[0]
    cut_at: list[float] = []

    def cut_its_tunnel() -> None:
        """Once the lanes run: close the replica's port-forward under its channel."""
        key = f"pod:istio-system/{cut}"
        for _ in range(100):
            if made and key in made[0]._open:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        _token, tunnel, _client = made[0]._open[key]
        assert tunnel is not None
        cut_at.append(time.monotonic())
        tunnel.close()

    cutter = threading.Thread(target=cut_its_tunnel)
    cutter.start()
    result = issuance.sample_issuance(
        duration_seconds=5, interval_seconds=0.05, targets="replicas", timeout_seconds=3
    )
    cutter.join()
    assert cut_at, "the tunnel was never cut"
    lanes = _lanes(result["samples"])
    mine = lanes[cut]
    failed = [i for i, s in enumerate(mine) if not s["issued"]]
    assert failed, mine
    assert all(mine[i]["code"] in ca.BROKEN_CODES for i in failed), [mine[i] for i in failed]
    assert mine[-1]["issued"] and all(s["issued"] for s in mine[failed[-1] + 1 :])
    for other, samples in lanes.items():
        if other != cut:
            assert all(s["issued"] for s in samples), (other, samples)
            times = [s["t"] for s in samples]
            assert times == sorted(times)
    [channels] = made
    assert channels.opened == len(istiods) + 1  # the cut replica's, opened again once
    assert not channels._open
