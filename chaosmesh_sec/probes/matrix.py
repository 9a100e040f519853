"""Probe: identity-based denies hold. Every cell of an identity matrix, asked for real.

Each cell is a request from a pod of the source workload: ``curl`` exec'd in its
container, as a person would check by hand, so the request carries the pod's own
network identity (its IP, what L4 policy sees) and mesh identity (its sidecar's
certificate, what AuthorizationPolicy sees). Cells run in parallel with a bound.
Each gets a verdict naming the layer that decided, with its evidence; see
:mod:`chaosmesh_sec.probes._matrix_spec` for the file format and
:mod:`chaosmesh_sec.probes._matrix_evidence` for the verdicts.

Matrices come from the probe kit (``probes/<kit>/matrix.yaml``, by the kit's name) or
a file. A run can keep a matrix's verdicts as a named baseline (``record_as``)
and compare a later check with it (``compare_to``): that is how a journal shows a
cell that was ``denied_by_network`` before the fault become ``denied_by_mesh``
during it. No ``from __future__ import annotations``: chaoslib reads the signature.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client import DiscoveryV1Api

from chaosmesh_sec import _kube, _validate, kit
from chaosmesh_sec._kube import exec_in_pod
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import core_v1
from chaosmesh_sec.errors import FailOpen, InvalidInput
from chaosmesh_sec.journal import fail_open_message
from chaosmesh_sec.probes import _endpoints
from chaosmesh_sec.probes import _matrix_evidence as evidence
from chaosmesh_sec.probes import _matrix_judgement as judgement
from chaosmesh_sec.probes import _matrix_spec as spec

__all__ = ["identity_matrix"]

logger = logging.getLogger("chaostoolkit")


MAX_PARALLEL = 32
_BASELINES: dict[str, dict[spec.CellKey, str]] = {}
_BASELINES_LOCK = threading.Lock()


def identity_matrix(
    matrix: str = "",
    sources: str = "",
    destinations: str = "",
    narrow_sources: str = "",
    record_as: str = "",
    compare_to: str = "",
    wait_seconds: int = 0,
    fail_on_fail_open: bool = False,
    parallel: int = 8,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Check every cell of `matrix` (a kit matrix's name, or a YAML file's path).

    `sources` / `destinations` (comma-separated names) restrict the check to those
    rows / columns. Each source's requests come from one Ready pod matching its
    selector (the oldest). `narrow_sources` narrows a source to some of its pods, as
    `source=selector` pairs separated by `;` (e.g.
    `sleep-v2=chaosmesh-sec.io/recycled-from`: the pod the IP hunt labelled).
    `wait_seconds`: how long to wait for a Ready pod per source (0: it must be there).
    A source with no Ready pod is an InvalidInput, raised before any request (so a
    steady-state check fails before a fault is injected). `record_as` keeps these
    verdicts as a baseline under that name for the rest of the run; `compare_to`
    lists every cell whose verdict changed since that baseline. With
    `fail_on_fail_open`, a fail-open cell also fails the activity (for checks in the
    method, which Chaos Toolkit does not hold against a tolerance).

    Returns `{"holds", "matrix", "cells": [{"source", "destination", "expected",
    "verdict", "ok", "evidence": {"exit_code", "http_code", "body", "error"},
    "fail_open", "unexpected_deny", "layer_mismatch", "baseline", "layer_change"}],
    "fail_open", "unexpected_denies", "layer_mismatches", "layer_changes", "errors",
    "counts", "pods": {source: {"name", "node", "pod_ip"}}, "baseline", "checked_at",
    "seconds"}`. Tolerance: `$.holds` (every cell as expected); fail-open cells are
    listed under `fail_open`, the worst result. A request that could not connect to a
    Service with no Ready endpoint (the EndpointSlices are read for such cells) is an
    `error` whose evidence names it under `unserved`: no policy decided it.
    """
    parsed = _restricted(_load(_validate.file_or_name("matrix", matrix)), sources, destinations)
    narrowing = _narrowing(narrow_sources, parsed)
    wait_seconds = _validate.duration("wait_seconds", wait_seconds, minimum=0, maximum=3600)
    fail_on_fail_open = _validate.boolean("fail_on_fail_open", fail_on_fail_open)
    record_as = _validate.optional_dns_label("record_as", record_as)
    compare_to = _validate.optional_dns_label("compare_to", compare_to)
    parallel = _validate.positive_int("parallel", parallel, maximum=MAX_PARALLEL)
    baseline = None
    if compare_to:
        with _BASELINES_LOCK:
            baseline = _BASELINES.get(compare_to)
        if baseline is None:
            raise InvalidInput(
                "compare_to", f"no baseline {compare_to!r} recorded earlier in this run"
            )

    core = core_v1(configuration, secrets)
    started = time.monotonic()
    senders = {
        s.name: _pick_pod(
            core, s.namespace, _and(s.selector, narrowing.get(s.name)), s.name, wait_seconds
        )
        for s in parsed.sources
    }
    targets = {
        d.name: _pick_pod(core, d.pod.namespace, d.pod.selector, d.name, wait_seconds)
        for d in parsed.destinations
        if d.pod is not None
    }
    config = core.api_client.configuration

    def ask(cell: spec.Cell) -> tuple[spec.CellKey, evidence.Evidence]:
        sender = senders[cell.source.name]
        target = targets.get(cell.destination.name)
        argv = cell.command(target.status.pod_ip if target is not None else None)
        return cell.key, _exec(config, sender, cell.source.container, argv, cell)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = dict(pool.map(ask, parsed.cells()))
    results = _unserved_marked(DiscoveryV1Api(core.api_client), parsed, results)
    outcome = judgement.compare(parsed, results, baseline)
    if record_as:
        with _BASELINES_LOCK:
            _BASELINES.setdefault(record_as, outcome.verdicts())  # first write wins
    out = outcome.to_json()
    out.update(
        {
            "pods": {name: _kube.pod_brief(pod) for name, pod in senders.items()},
            "baseline": compare_to or None,
            "checked_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    logger.info(
        "identity matrix %s: %s (%d cells, fail-open: %s)",
        parsed.name,
        "holds" if outcome.holds else "DEVIATES",
        len(outcome.cells),
        out["fail_open"] or "none",
    )
    if fail_on_fail_open and out["fail_open"]:
        raise FailOpen(fail_open_message(parsed.name, out["fail_open"]))
    return out


# ---------------------------------------------------------------- inputs


def _load(matrix: Any) -> spec.Matrix:
    if not isinstance(matrix, str) or not matrix:
        raise InvalidInput("matrix", "required: a kit matrix's name or a matrix file's path")
    path = kit.matrix_file(matrix) if matrix in kit.matrices() else Path(matrix)
    if not path.is_file():
        known = kit.matrices()
        raise InvalidInput(
            "matrix", f"{matrix!r} is neither a kit matrix ({', '.join(known)}) nor a file"
        )
    return spec.parse_matrix(path.read_text(), origin=str(path))


def _restricted(matrix: spec.Matrix, sources: Any, destinations: Any) -> spec.Matrix:
    """The matrix with only the named rows and columns (all when a list is empty)."""
    rows = _names("sources", sources, [s.name for s in matrix.sources])
    cols = _names("destinations", destinations, [d.name for d in matrix.destinations])
    keep_rows = [i for i, s in enumerate(matrix.sources) if not rows or s.name in rows]
    keep_cols = [j for j, d in enumerate(matrix.destinations) if not cols or d.name in cols]
    return dataclasses.replace(
        matrix,
        sources=tuple(matrix.sources[i] for i in keep_rows),
        destinations=tuple(matrix.destinations[j] for j in keep_cols),
        expectations=tuple(tuple(matrix.expectations[i][j] for j in keep_cols) for i in keep_rows),
    )


def _names(name: str, value: Any, known: list[str]) -> set[str]:
    if not isinstance(value, str):
        raise InvalidInput(name, "must be a comma-separated string of names")
    names = {n.strip() for n in value.split(",") if n.strip()}
    unknown = sorted(names - set(known))
    if unknown:
        raise InvalidInput(name, f"not in the matrix: {unknown}; it has {known}")
    return names


def _narrowing(value: Any, matrix: spec.Matrix) -> dict[str, str]:
    if not isinstance(value, str):
        raise InvalidInput("narrow_sources", "must be a string of source=selector pairs")
    names = {s.name for s in matrix.sources}
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(";"))):
        name, sep, selector = part.partition("=")
        if not sep or name.strip() not in names:
            raise InvalidInput(
                "narrow_sources", f"{part!r}: expected source=selector, sources: {sorted(names)}"
            )
        out[name.strip()] = _validate.label_selector("narrow_sources", selector.strip())
    return out


def _and(selector: str, extra: str | None) -> str:
    return f"{selector},{extra}" if extra else selector


# ---------------------------------------------------------------- the cluster


def _pick_pod(core: Any, namespace: str, selector: str, role: str, wait_seconds: int) -> Any:
    """The oldest Ready pod matching ``selector`` (waiting up to ``wait_seconds``, by
    watch); InvalidInput naming ``role`` if there is none."""

    def ready(objects: Mapping[str, Any]) -> list[Any]:
        return sorted(
            (p for p in objects.values() if _kube.pod_ready(p) and p.status.pod_ip),
            key=lambda p: (p.metadata.creation_timestamp, p.metadata.name),
        )

    _held, objects = _kube.watch_until(
        core.list_namespaced_pod,
        lambda objects: bool(ready(objects)),
        time.monotonic() + wait_seconds,
        f"pods {selector!r} in {namespace!r}",
        namespace,
        label_selector=selector,
    )
    found = ready(objects)
    if not found:
        raise InvalidInput(
            "matrix", f"{role!r}: no Ready pod matches {selector!r} in namespace {namespace!r}"
        )
    return found[0]


def _unserved_marked(
    discovery: DiscoveryV1Api,
    matrix: spec.Matrix,
    results: dict[spec.CellKey, evidence.Evidence],
) -> dict[spec.CellKey, evidence.Evidence]:
    """The results, with each network-looking failure to a Service that has no Ready
    endpoint marked as such (one read per Service, only for cells that failed so)."""
    served: dict[tuple[str, str], int | None] = {}
    marked = dict(results)
    for cell in matrix.cells():
        seen = results[cell.key]
        url = cell.destination.url
        if url is None or evidence.classify(seen) != "denied_by_network":
            continue
        service = _endpoints.service_of(url, cell.source.namespace)
        if service is None:
            continue
        if service not in served:
            served[service] = _endpoints.ready_endpoints(discovery, *service)
        if served[service] == 0:
            marked[cell.key] = seen.unserved_by("/".join(service))
    return marked


def _exec(
    config: Any, pod: Any, container: str | None, argv: list[str], cell: spec.Cell
) -> evidence.Evidence:
    """Run ``argv`` in the pod; its output as evidence (exec failures are evidence too)."""
    try:
        out, err = exec_in_pod(config, pod, container, argv, cell.destination.timeout_seconds + 15)
    except Exception as exc:  # noqa: BLE001 - the cell's verdict is `error`, with why
        return evidence.Evidence.exec_failed(f"exec in {pod.metadata.name}: {exc}")
    return evidence.parse_curl_output(out, err)
