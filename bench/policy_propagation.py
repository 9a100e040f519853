"""Benchmark how long an AuthorizationPolicy takes to reach the real Envoy, through istiod.

    flock /tmp/cmslab.lock env KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig \\
        .venv/bin/python bench/policy_propagation.py [--rounds 10]

In the wrong-identity kit, sleep-v1 -> helloworld-v1 is allowed. Each round creates a
DENY policy naming sleep-v1's principal on helloworld-v1, then asks the matrix cell
until it reads ``denied_by_mesh`` (istiod has pushed the new RBAC filter to
helloworld-v1's Envoy), deletes it, and asks until the cell is ``allowed`` again.
The baseline, in the same run, is one matrix check of that cell with nothing changed:
the probe's own round trip, which bounds how finely a delay can be seen. Prints JSON
(medians and maxima, and the ratio to the baseline); asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from chaosmesh_sec.client import api_client
from chaosmesh_sec.probes import matrix

NS = "default"
POLICY = "bench-deny-sleep-v1"


def _matrix_file() -> str:
    doc = {
        "name": "bench-propagation",
        "timeout_seconds": 3,
        "sources": {
            "sleep-v1": {"namespace": NS, "selector": "app=sleep,version=v1", "container": "sleep"}
        },
        "destinations": {"helloworld-v1": {"url": "http://helloworld-v1.default:5000/hello"}},
        "expect": {"sleep-v1": {"helloworld-v1": "allowed"}},
    }
    path = Path(tempfile.mkdtemp()) / "propagation.matrix.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _verdict(path: str) -> str:
    [cell] = matrix.identity_matrix(matrix=path)["cells"]
    return str(cell["verdict"])


def _until(path: str, verdict: str, limit: float = 60.0) -> float:
    started = time.monotonic()
    while _verdict(path) != verdict:
        if time.monotonic() - started > limit:
            raise SystemExit(f"the cell never read {verdict} within {limit:.0f}s")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    custom = client.CustomObjectsApi(api_client())
    path = _matrix_file()
    assert _verdict(path) == "allowed", "the kit's sleep-v1 -> helloworld-v1 must be allowed"
    body: dict[str, Any] = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": POLICY, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "helloworld", "version": "v1"}},
            "action": "DENY",
            "rules": [{"from": [{"source": {"principals": [
                "cluster.local/ns/default/sa/sleep-v1"]}}]}],
        },
    }  # fmt: skip
    baseline, applied, removed = [], [], []
    for n in range(rounds):
        started = time.monotonic()
        _verdict(path)
        baseline.append(time.monotonic() - started)
        custom.create_namespaced_custom_object(
            "security.istio.io", "v1", NS, "authorizationpolicies", body
        )
        applied.append(_until(path, "denied_by_mesh"))
        custom.delete_namespaced_custom_object(
            "security.istio.io", "v1", NS, "authorizationpolicies", POLICY
        )
        removed.append(_until(path, "allowed"))
        print(f"round {n + 1}/{rounds}: deny {applied[-1]:.2f}s, allow again {removed[-1]:.2f}s")
    base = statistics.median(baseline)
    summary = {
        "rounds": rounds,
        "baseline_check_s": round(base, 3),
        "deny_reaches_envoy_s": {
            "median": round(statistics.median(applied), 2),
            "max": round(max(applied), 2),
        },
        "delete_reaches_envoy_s": {
            "median": round(statistics.median(removed), 2),
            "max": round(max(removed), 2),
        },
        "deny_over_baseline": round(statistics.median(applied) / base, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
