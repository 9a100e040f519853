"""Benchmark the partition fault in the lab: action call -> partition effective, and
rollback call -> healed (a real connection from the node to the API server).

    sudo KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig .venv/bin/python bench/partition_timing.py

Needs a running lab (``chaosmesh-sec lab up``). Prints a JSON summary; asserts nothing.
"""

import json
import os
import statistics
import time

from chaosmesh_sec.faults.apiserver_partition import (
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.topology import DEFAULT

ROUNDS = int(os.environ.get("ROUNDS", "5"))


def reaches(netns: str) -> bool:
    return inspect.http_status_from(netns, f"{DEFAULT.apiserver_url}/healthz", 0.5) != "000"


def until(state: bool, netns: str, started: float) -> float:
    while reaches(netns) != state:
        time.sleep(0.02)
    return time.monotonic() - started


def main() -> None:
    node = DEFAULT.nodes[1]
    cfg = {"kubeconfig_path": os.environ["KUBECONFIG"]}
    apply_calls, effective, heal_calls, healed = [], [], [], []
    for _ in range(ROUNDS):
        started = time.monotonic()
        partition_node_from_apiserver(
            node=node.name, duration_seconds=120, fault_namespace="default", configuration=cfg
        )
        apply_calls.append(time.monotonic() - started)
        effective.append(until(False, node.netns, started))
        started = time.monotonic()
        heal_apiserver_partition(node=node.name, fault_namespace="default", configuration=cfg)
        heal_calls.append(time.monotonic() - started)
        healed.append(until(True, node.netns, started))
        time.sleep(1)

    def summary(xs: list[float]) -> dict[str, float]:
        return {"median_s": round(statistics.median(xs), 3), "max_s": round(max(xs), 3)}

    print(
        json.dumps(
            {
                "rounds": ROUNDS,
                "action_call_returns": summary(apply_calls),
                "call_to_partition_effective": summary(effective),
                "rollback_call_returns": summary(heal_calls),
                "rollback_call_to_healed": summary(healed),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
