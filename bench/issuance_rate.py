"""Benchmark the issuance probes against the lab's istiod: CSRs per second, CPU per CSR.

    KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig .venv/bin/python bench/issuance_rate.py

Three ways the pack sends CSRs, each for SECONDS seconds:

- ``one_channel``: one replica, one port-forward, one gRPC channel reused (what the
  client itself sustains; a key pair and CSR made per request);
- ``probe_round``: ``certificate_issuance`` calls back to back (every replica and the
  Service; each call opens its own port-forward and TLS channel per istiod pod);
- ``sampler``: ``sample_issuance`` at a short interval (``INTERVAL``, default 0.02 s,
  the probe's floor): each replica and the Service on its own grid (one lane per
  target, one CSR in flight each), on one port-forward and one channel per istiod pod
  for the whole run. Its ``per_target`` entry gives each target's CSRs per second,
  the share of its grid slots it used, and its median latency.

Each CSR still carries a fresh key and a real token. Each CSR is also one TokenReview
that istiod sends to the API server, through a client limited to 80 requests/s
(burst 160) per istiod by default (``--kubernetesApiQPS``): that is one replica's
ceiling, whatever the client does.

CPU is this process's (user + system), so it is the probe's own cost; istiod and the
API server run in other processes. Needs a running lab. Prints JSON; asserts nothing.
"""

import json
import os
import time
from collections.abc import Callable
from typing import Any

from chaosmesh_sec.client import core_v1
from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes import issuance
from chaosmesh_sec.probes._ca_client import CaClient
from chaosmesh_sec.probes._tunnel import PodTunnel

SECONDS = float(os.environ.get("SECONDS_PER_MODE", "15"))
INTERVAL = float(os.environ.get("INTERVAL", "0.02"))


def measure(run: Callable[[], int]) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    csrs = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "csrs": csrs,
        "seconds": round(wall, 2),
        "csrs_per_second": round(csrs / wall, 1),
        "cpu_ms_per_csr": round(1000 * cpu / csrs, 2),
    }


def one_channel() -> int:
    core = core_v1(None, None)
    who = ca.caller(core, "default", "default", "istio-ca", "cluster.local")
    [target, *_] = ca.replica_targets(core, "istio-system", "app=istiod")
    done = 0
    with (
        PodTunnel(core, str(target.pod), "istio-system", ca.CA_PORT) as address,
        CaClient(
            address,
            root_pem=who.root_pem,
            server_name="istiod.istio-system.svc",
            token=who.token,
            channel_options=[("grpc.enable_http_proxy", 0)],
        ) as client,
    ):
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            assert client.issue().issued
            done += 1
    return done


def probe_round() -> int:
    done = 0
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        result = issuance.certificate_issuance(min_issuing_replicas=3)
        assert result["ok"], result["reason"]
        done += result["replica_count"] + 1
    return done


PER_TARGET: dict[str, Any] = {}


def sampler() -> int:
    result = issuance.sample_issuance(duration_seconds=int(SECONDS), interval_seconds=INTERVAL)
    slots = int(SECONDS) / INTERVAL
    for target, stats in result["summary"].items():
        PER_TARGET[target] = {
            "csrs_per_second": round(stats["issued"] / int(SECONDS), 1),
            "slots_used": round(stats["attempts"] / slots, 2),
            "latency_p50_ms": stats["latency_ms"]["p50"],
        }
    return sum(s["issued"] for s in result["samples"])


def main() -> None:
    out = {name: measure(fn) for name, fn in [
        ("one_channel", one_channel), ("probe_round", probe_round), ("sampler", sampler)
    ]}  # fmt: skip
    out["sampler"]["per_target"] = PER_TARGET
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
