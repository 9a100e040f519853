"""Benchmark the identity-matrix probe: one exec per source vs one exec per cell.

    flock /tmp/cmslab.lock env KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig \\
        .venv/bin/python bench/matrix_parallel.py

Builds matrices on the fly from the kit's pods (nothing is deployed): every source is
sleep-v1 (one row per source, so one exec per row), every destination is
helloworld-v1 with a query of its own (``?d=j``): each cell is a real request, through
both sidecars and the L4 agent, that is allowed. For 10 x 10 and 30 x 10, in one run:

- ``sequential``: one exec per cell, one after the other (a shell loop of
  ``kubectl exec``), with the slowest single cell;
- ``per_cell_parallel``: one exec per cell, 8 at a time (the probe before issue 17);
- ``batched``: the probe as it is, one exec per source, 8 sources at a time (the
  whole ``identity_matrix`` call: pod picking and endpoint reads included);
- ``exec_rtt``: one bare exec (``true``) round trip.

Prints JSON (medians over ``ROUNDS`` rounds, default 3; the 30-wide sequential loop
runs once) with the ratios the goals are stated in; asserts only that every cell was
allowed.
"""

import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_sec._kube import exec_in_pod
from chaosmesh_sec.client import core_v1
from chaosmesh_sec.probes import _matrix_evidence, _matrix_spec, matrix

ROUNDS = int(os.environ.get("ROUNDS", "3"))
PARALLEL = 8
SHAPES = ((10, 10), (30, 10))


def matrix_file(rows: int, cols: int) -> Path:
    doc = {
        "name": f"bench-{rows}x{cols}",
        "timeout_seconds": 5,
        "sources": {
            f"src-{i}": {"namespace": "default", "selector": "app=sleep,version=v1",
                         "container": "sleep"}
            for i in range(rows)
        },
        "destinations": {
            f"dst-{j}": {"url": f"http://helloworld-v1.default:5000/hello?d={j}"}
            for j in range(cols)
        },
        "default": "allowed",
    }  # fmt: skip
    path = Path(tempfile.mkdtemp()) / f"bench-{rows}x{cols}.matrix.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def one_cell(config: Any, pod: Any, cell: _matrix_spec.Cell) -> float:
    started = time.perf_counter()
    seen = matrix._exec(config, pod, cell.source.container, cell.command(), cell)
    assert _matrix_evidence.classify(seen) == "allowed", (cell.id, seen)
    return time.perf_counter() - started


def sequential(config: Any, pod: Any, parsed: _matrix_spec.Matrix) -> tuple[float, float]:
    """Wall time of the loop, and its slowest cell."""
    started = time.perf_counter()
    cells = [one_cell(config, pod, cell) for cell in parsed.cells()]
    return time.perf_counter() - started, max(cells)


def per_cell_parallel(config: Any, pod: Any, parsed: _matrix_spec.Matrix) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        list(pool.map(lambda cell: one_cell(config, pod, cell), parsed.cells()))
    return time.perf_counter() - started


def batched(path: Path) -> float:
    started = time.perf_counter()
    result = matrix.identity_matrix(matrix=str(path), parallel=PARALLEL)
    assert result["holds"], [c for c in result["cells"] if not c["ok"]]
    return time.perf_counter() - started


def exec_rtt(config: Any, pod: Any) -> float:
    started = time.perf_counter()
    exec_in_pod(config, pod, "sleep", ["true"], 20)
    return time.perf_counter() - started


def main() -> None:
    core = core_v1()
    config = core.api_client.configuration
    pod = core.list_namespaced_pod("default", label_selector="app=sleep,version=v1").items[0]
    out: dict[str, Any] = {"rounds": ROUNDS, "parallel": PARALLEL}
    for rows, cols in SHAPES:
        path = matrix_file(rows, cols)
        parsed = _matrix_spec.parse_matrix(path.read_text())
        batched(path)  # warm
        runs: dict[str, list[float]] = {k: [] for k in
                                        ("sequential", "slowest_cell", "per_cell_parallel",
                                         "batched", "exec_rtt")}  # fmt: skip
        for r in range(ROUNDS):
            if r == 0 or rows * cols <= 100:
                wall, slowest = sequential(config, pod, parsed)
                runs["sequential"].append(wall)
                runs["slowest_cell"].append(slowest)
            runs["per_cell_parallel"].append(per_cell_parallel(config, pod, parsed))
            runs["batched"].append(batched(path))
            runs["exec_rtt"].extend(exec_rtt(config, pod) for _ in range(3))
        med = {k: statistics.median(v) for k, v in runs.items()}
        floor = med["slowest_cell"] + med["exec_rtt"]
        out[f"{rows}x{cols}"] = {
            **{f"{k}_s": round(v, 3) for k, v in med.items()},
            "runs": {k: [round(x, 3) for x in v] for k, v in runs.items()},
            "sequential_over_batched": round(med["sequential"] / med["batched"], 1),
            "per_cell_parallel_over_batched": round(med["per_cell_parallel"] / med["batched"], 1),
            "batched_over_slowest_cell_plus_rtt": round(med["batched"] / floor, 2),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
