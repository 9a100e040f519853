"""Benchmark the lab's lifecycle: warm ``lab up`` to all-Ready, ``lab down``, resident memory.

    sudo .venv/bin/python bench/lab_lifecycle.py [--rounds 3] [--cold]

``--cold`` also times a build from nothing (fresh Go build cache and binary cache in a
temporary directory; the module download cache is kept): tens of minutes on 2 cores.
Prints a JSON summary; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from chaosmesh_sec.lab import build, manager, procs
from chaosmesh_sec.lab.inspect import container_processes
from chaosmesh_sec.lab.paths import LabPaths


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def resident_memory(paths: LabPaths) -> dict[str, float]:
    """MiB of resident memory per program of the running lab (lab processes + pod processes)."""
    pids = set(procs.lab_pids(str(paths.state))) | {p.pid for p in container_processes()}
    by_name: dict[str, float] = {}
    for pid in pids:
        by_name[_name(pid)] = by_name.get(_name(pid), 0.0) + _rss_kib(pid) / 1024
    by_name["total"] = sum(by_name.values())
    return {k: round(v, 1) for k, v in sorted(by_name.items())}


def cold_build() -> float:
    with tempfile.TemporaryDirectory(prefix="cms-cold-") as tmp:
        os.environ["GOCACHE"] = str(Path(tmp) / "gocache")
        paths = LabPaths(cache=Path(tmp) / "cache", state=Path(tmp) / "state")
        started = time.monotonic()
        build.build_all(paths, lambda m: print(f"  {m}", flush=True))
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="warm up/down rounds")
    parser.add_argument("--cold", action="store_true", help="also time a build from nothing")
    args = parser.parse_args()
    paths = LabPaths.default()
    result: dict[str, object] = {}
    if args.cold:
        result["cold_build_s"] = round(cold_build(), 1)
    build.build_all(paths, lambda _m: None)
    manager.down(paths, progress=lambda _m: None)
    ups: list[float] = []
    downs: list[float] = []
    for n in range(args.rounds):
        started = time.monotonic()
        manager.up(paths, progress=lambda _m: None)
        ups.append(time.monotonic() - started)
        if n == 0:
            time.sleep(5)  # let istiod settle before reading memory
            result["resident_mib"] = resident_memory(paths)
        started = time.monotonic()
        manager.down(paths, progress=lambda _m: None)
        downs.append(time.monotonic() - started)
    result["warm_up_to_all_ready_s"] = {
        "median": round(statistics.median(ups), 1),
        "runs": [round(u, 1) for u in ups],
    }
    result["down_s"] = {
        "median": round(statistics.median(downs), 1),
        "runs": [round(d, 1) for d in downs],
    }
    result["machine"] = {
        "cpus": os.cpu_count(),
        "go": build.go_version(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
