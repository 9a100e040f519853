"""Probe: identity-based denies hold. Every cell of an identity matrix, asked for real.

Each cell is a request from a pod of the source workload: ``curl`` run in its
container, as a person would check by hand, so the request carries the pod's own
network identity (its IP, what L4 policy sees) and mesh identity (its sidecar's
certificate, what AuthorizationPolicy sees). Each source pod is asked once: one exec
runs all its cells' requests at the same time (:mod:`._matrix_batch`); sources are
asked in parallel with a bound.
Each gets a verdict naming the layer that decided, with its evidence; see
:mod:`chaosmesh_sec.probes._matrix_spec` for the file format and
:mod:`chaosmesh_sec.probes._matrix_evidence` for the verdicts.

Matrices come from the probe kit (``probes/<kit>/matrix.yaml``, by the kit's name) or
a file. A run can keep a matrix's verdicts as a named baseline (``record_as``)
and compare a later check with it (``compare_to``): that is how a journal shows a
cell that was ``denied_by_network`` before the fault become ``denied_by_mesh``
during it. ``sample_matrix`` checks a matrix every few seconds across a fault (in
the background) and keeps each cell's verdicts over time, with the pod each was asked
from and the moments a verdict changed. No ``from __future__ import
annotations``: chaoslib reads the signatures.
"""

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
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
from chaosmesh_sec.probes import _matrix_batch as batch
from chaosmesh_sec.probes import _matrix_evidence as evidence
from chaosmesh_sec.probes import _matrix_judgement as judgement
from chaosmesh_sec.probes import _matrix_spec as spec
from chaosmesh_sec.probes import _matrix_timeline as timeline
from chaosmesh_sec.probes._baselines import RunRecords

__all__ = ["identity_matrix", "sample_matrix"]

logger = logging.getLogger("chaostoolkit")


MAX_PARALLEL = 32
MAX_SAMPLING_SECONDS = 3600
_BASELINES: RunRecords[dict[spec.CellKey, str]] = RunRecords("matrix baseline")


def _matrix_inputs(
    matrix: Any,
    sources: Any,
    destinations: Any,
    narrow_sources: Any,
    record_as: Any,
    compare_to: Any,
    wait_seconds: Any,
    fail_on_fail_open: Any,
    parallel: Any,
) -> tuple[spec.Matrix, dict[str, str], str, str, int, bool, int]:
    """:func:`identity_matrix`'s input check (no API call: it reads the matrix file;
    whether `compare_to` was recorded is the run's state, asked when the probe runs)."""
    parsed = _restricted(_load(matrix), sources, destinations)
    return (
        parsed,
        _narrowing("narrow_sources", narrow_sources, parsed),
        _validate.optional_dns_label("record_as", record_as),
        _validate.optional_dns_label("compare_to", compare_to),
        _validate.duration("wait_seconds", wait_seconds, minimum=0, maximum=3600),
        _validate.boolean("fail_on_fail_open", fail_on_fail_open),
        _validate.positive_int("parallel", parallel, maximum=MAX_PARALLEL),
    )


@_validate.checks(_matrix_inputs)
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
    Each source pod is asked once, all its cells at the same time in one exec;
    `parallel` bounds how many sources are asked at once.
    A source with no Ready pod is an InvalidInput, raised before any request (so a
    steady-state check fails before a fault is injected). `record_as` keeps these
    verdicts as a baseline under that name for the rest of the run; `compare_to`
    lists every cell whose verdict changed since that baseline. With
    `fail_on_fail_open`, a fail-open cell also fails the activity (for checks in the
    method, which Chaos Toolkit does not hold against a tolerance).

    Returns `{"holds", "matrix", "cells": [{"source", "destination", "expected",
    "verdict", "ok", "evidence": {"exit_code", "http_code", "body", "error",
    "responder", "answered_by"}, "fail_open", "unexpected_deny", "layer_mismatch",
    "baseline", "layer_change"}], "fail_open", "unexpected_denies", "layer_mismatches",
    "layer_changes", "errors", "counts", "pods": {source: {"name", "node", "pod_ip"}},
    "baseline", "checked_at", "seconds"}`. Tolerance: `$.holds` (every cell as
    expected); fail-open cells are listed under `fail_open`, the worst result. A
    request that could not connect to a Service with no Ready endpoint (the
    EndpointSlices are read for such cells) is an `error` whose evidence names it under
    `unserved`: no policy decided it. Who answered, when curl (7.83 or later) reported
    the response headers: `responder` holds its `server` and `x-envoy-*` headers (when
    it had any), and `answered_by` is `envoy` for Envoy's own reply (`server: envoy` or
    `istio-envoy` with no `x-envoy-upstream-service-time`: the RBAC 403, a sidecar's
    503) or `app` for any other response (it came through Envoy, or no Envoy named
    itself). Only the last Envoy on the way shows: behind a client's sidecar, the
    server sidecar's reply reads `app`. Evidence only: no verdict depends on it.
    """
    parsed, narrowing, record_as, compare_to, wait_seconds, fail_on_fail_open, parallel = (
        _matrix_inputs(
            matrix,
            sources,
            destinations,
            narrow_sources,
            record_as,
            compare_to,
            wait_seconds,
            fail_on_fail_open,
            parallel,
        )
    )
    baseline = None
    if compare_to:
        baseline = _BASELINES.get(compare_to)
        if baseline is None:
            raise InvalidInput(
                "compare_to", f"no baseline {compare_to!r} recorded earlier in this run"
            )

    core = core_v1(configuration, secrets)
    started = time.monotonic()
    senders, outcome = _check(core, parsed, narrowing, wait_seconds, parallel, baseline)
    if record_as:
        _BASELINES.record(record_as, outcome.verdicts())  # once per run: the first wins
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


def _sampling_inputs(
    matrix: Any,
    sources: Any,
    destinations: Any,
    narrow_sources: Any,
    prefer_sources: Any,
    duration_seconds: Any,
    interval_seconds: Any,
    wait_seconds: Any,
    parallel: Any,
) -> tuple[spec.Matrix, dict[str, str], dict[str, str], int, float, int, int]:
    """:func:`sample_matrix`'s input check (no API call: it reads the matrix file)."""
    parsed = _restricted(_load(matrix), sources, destinations)
    return (
        parsed,
        _narrowing("narrow_sources", narrow_sources, parsed),
        _narrowing("prefer_sources", prefer_sources, parsed),
        _validate.positive_int("duration_seconds", duration_seconds, maximum=MAX_SAMPLING_SECONDS),
        _validate.positive_number("interval_seconds", interval_seconds),
        _validate.non_negative_int("wait_seconds", wait_seconds),
        _validate.positive_int("parallel", parallel, maximum=MAX_PARALLEL),
    )


@_validate.checks(_sampling_inputs)
def sample_matrix(
    matrix: str = "",
    sources: str = "",
    destinations: str = "",
    narrow_sources: str = "",
    prefer_sources: str = "",
    duration_seconds: int = 60,
    interval_seconds: float = 5.0,
    wait_seconds: int = 0,
    parallel: int = 8,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Check `matrix` (or the cells of `sources` x `destinations`) every
    `interval_seconds` for `duration_seconds`: each cell's verdicts over time.

    Declare it with `"background": true` before the fault in the method: Chaos Toolkit
    runs it alongside and puts its result in the journal when it ends. The arguments
    are `identity_matrix`'s. Source pods are picked again at each round (a replaced
    pod joins the timeline); a source (or a pod destination) with no Ready pod in a
    round makes its cells `error` in that round, the sample's `pod` None (at the start,
    within `wait_seconds`, it is an InvalidInput, as for `identity_matrix`).
    `prefer_sources` (`source=selector` pairs separated by `;`, as `narrow_sources`)
    picks, in each round, among the source's pods that also match the selector when
    one of them is Ready, else among all: with
    `sleep-v2=chaosmesh-sec.io/recycled-from`, sleep-v2's cells are asked from the pod
    the IP hunt labels as soon as it has labelled one. Returns `{"matrix",
    "started_at", "ended_at", "interval_seconds", "holds", "rounds", "fail_open": [{"t",
    "cell"}], "deviating_cells", "cells": [{"cell", "source", "destination",
    "expected", "samples": [{"t", "verdict", "ok", "fail_open", "pod", "pod_ip"}],
    "verdicts", "changes": [{"t", "from", "to", "pod", "evidence"}], "deviations",
    "first_deviation_s", "last_deviation_s", "fail_open_s", "first_deviation"}],
    "reason"}` (`t`: seconds since `started_at`, when the round began; `changes`: each
    round in which a cell's verdict differed from its previous one, e.g.
    `denied_by_network` -> `denied_by_mesh` and back). Tolerance: `$.holds` (every
    cell as expected in every round); `fail_open` lists each moment a cell was
    fail-open.
    """
    parsed, narrowing, preferring, duration_seconds, interval, wait_seconds, parallel = (
        _sampling_inputs(
            matrix,
            sources,
            destinations,
            narrow_sources,
            prefer_sources,
            duration_seconds,
            interval_seconds,
            wait_seconds,
            parallel,
        )
    )
    core = core_v1(configuration, secrets)
    _check(core, parsed, narrowing, wait_seconds, 1, None, ask=False)  # pods there, or raise
    started_at = datetime.now(UTC)
    start = time.monotonic()
    rounds: list[timeline.Round] = []
    reason = None
    while (now := time.monotonic()) - start < duration_seconds:
        t = round(now - start, 3)
        senders, outcome, missing = _sampling_round(core, parsed, narrowing, preferring, parallel)
        if missing:  # a source's pods are gone for now: its cells are errors
            reason = reason or f"at {t}s: {missing[0]}"
        pods = {name: _kube.pod_brief(pod) for name, pod in senders.items()}
        rounds.append(timeline.Round(t, outcome, pods))
        if len(rounds) % 10 == 0:
            logger.info("matrix sampling %s: %.0fs of %ds", parsed.name, now - start,
                        duration_seconds)  # fmt: skip
        # the next slot on the grid; slots missed while a round hung are skipped
        elapsed = time.monotonic() - start
        time.sleep((math.floor(elapsed / interval) + 1) * interval - elapsed)
    out = timeline.timeline(rounds)
    logger.info(
        "identity matrix %s sampled %d times: %s (fail-open moments: %d)",
        parsed.name,
        len(rounds),
        "held" if out["holds"] else "DEVIATED",
        len(out["fail_open"]),
    )
    return {
        "matrix": parsed.name,
        "started_at": started_at.isoformat(),
        "ended_at": datetime.now(UTC).isoformat(),
        "interval_seconds": interval,
        **out,
        "reason": reason,
    }


def _sampling_round(
    core: Any,
    parsed: spec.Matrix,
    narrowing: Mapping[str, str],
    preferring: Mapping[str, str],
    parallel: int,
) -> tuple[dict[str, Any], judgement.MatrixOutcome, list[str]]:
    """One round of :func:`sample_matrix`: each source's pod picked again (a preferred
    one first), every cell asked whose source and pod destination have a Ready pod now;
    the others are `error`, not asked. The senders, the outcome, why cells were not."""
    why: dict[tuple[str, str], str] = {}  # ("source" | "destination", name) -> why not asked
    pick = _picker(core, 0)
    senders: dict[str, Any] = {}
    for s in parsed.sources:
        selector = _and(s.selector, narrowing.get(s.name))
        try:
            senders[s.name] = pick(s.namespace, selector, s.name, preferring.get(s.name))
        except InvalidInput as exc:
            why[("source", s.name)] = str(exc)
    targets: dict[str, Any] = {}
    for d in parsed.destinations:
        if d.pod is not None:
            try:
                targets[d.name] = pick(d.pod.namespace, d.pod.selector, d.name)
            except InvalidInput as exc:
                why[("destination", d.name)] = str(exc)
    rows = [s.name for s in parsed.sources if s.name in senders]
    cols = [d.name for d in parsed.destinations if ("destination", d.name) not in why]
    results: dict[spec.CellKey, evidence.Evidence] = {}
    if rows and cols:
        asked = _restricted(parsed, ",".join(rows), ",".join(cols))
        results = _ask(core.api_client.configuration, asked, senders, targets, parallel)
        results = _unserved_marked(DiscoveryV1Api(core.api_client), asked, results)
    for cell in parsed.cells():
        if cell.key not in results:
            missing = why.get(("source", cell.source.name)) or why.get(
                ("destination", cell.destination.name), ""
            )
            results[cell.key] = evidence.Evidence.exec_failed(f"not asked in this round: {missing}")
    return senders, judgement.compare(parsed, results), list(why.values())


def _pick_preferred(
    core: Any, namespace: str, selector: str, preferred: str | None, role: str
) -> Any:
    """The pod :func:`_pick_pod` picks among those also matching `preferred` when one of
    them is Ready, else among all those of `selector` (no wait)."""
    if preferred:
        try:
            return _pick_pod(core, namespace, _and(selector, preferred), role, 0)
        except InvalidInput:
            pass
    return _pick_pod(core, namespace, selector, role, 0)


def _check(
    core: Any,
    parsed: spec.Matrix,
    narrowing: Mapping[str, str],
    wait_seconds: int,
    parallel: int,
    baseline: Mapping[spec.CellKey, str] | None,
    ask: bool = True,
) -> tuple[dict[str, Any], judgement.MatrixOutcome]:
    """Pick the pods (InvalidInput if a source or pod destination has none), ask every
    cell (unless not `ask`), judge: the senders and the outcome."""
    pick = _picker(core, wait_seconds)
    senders = {
        s.name: pick(s.namespace, _and(s.selector, narrowing.get(s.name)), s.name)
        for s in parsed.sources
    }
    targets = {
        d.name: pick(d.pod.namespace, d.pod.selector, d.name)
        for d in parsed.destinations
        if d.pod is not None
    }
    if not ask:
        return senders, judgement.compare(parsed, {})
    results = _ask(core.api_client.configuration, parsed, senders, targets, parallel)
    results = _unserved_marked(DiscoveryV1Api(core.api_client), parsed, results)
    return senders, judgement.compare(parsed, results, baseline)


# ---------------------------------------------------------------- inputs


def _load(matrix: Any) -> spec.Matrix:
    if not isinstance(matrix, str) or not matrix:
        raise InvalidInput("matrix", "required: a kit matrix's name or a matrix file's path")
    matrix = _validate.file_or_name("matrix", matrix)
    path = kit.matrix_file(matrix) if matrix in kit.matrices() else Path(matrix)
    if not path.is_file():
        known = kit.matrices()
        raise InvalidInput(
            "matrix", f"{matrix!r} is neither a kit matrix ({', '.join(known)}) nor a file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise InvalidInput("matrix", f"{str(path)!r:.200} cannot be read: {why}") from None
    return spec.parse_matrix(text, origin=str(path))


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


def _narrowing(name: str, value: Any, matrix: spec.Matrix) -> dict[str, str]:
    """`source=selector` pairs separated by `;` (`name`: the input's, for errors)."""
    if not isinstance(value, str):
        raise InvalidInput(name, "must be a string of source=selector pairs")
    names = {s.name for s in matrix.sources}
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in value.split(";"))):
        source, sep, selector = part.partition("=")
        if not sep or source.strip() not in names:
            raise InvalidInput(
                name, f"{part!r}: expected source=selector, sources: {sorted(names)}"
            )
        out[source.strip()] = _validate.label_selector(name, selector.strip())
    return out


def _and(selector: str, extra: str | None) -> str:
    return f"{selector},{extra}" if extra else selector


# ---------------------------------------------------------------- the cluster


def _picker(core: Any, wait_seconds: int) -> Callable[..., Any]:
    """``pick(namespace, selector, role, preferred=None)``: :func:`_pick_pod` (with
    `preferred`: :func:`_pick_preferred`, which does not wait), each namespace, selector
    and preference read once for the picker's life (one check, or one sampling round)."""
    picked: dict[tuple[str, str, str | None], Any] = {}

    def pick(namespace: str, selector: str, role: str, preferred: str | None = None) -> Any:
        key = (namespace, selector, preferred)
        if key not in picked:
            picked[key] = (
                _pick_preferred(core, namespace, selector, preferred, role)
                if preferred
                else _pick_pod(core, namespace, selector, role, wait_seconds)
            )
        return picked[key]

    return pick


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


def _ask(
    config: Any,
    matrix: spec.Matrix,
    senders: Mapping[str, Any],
    targets: Mapping[str, Any],
    parallel: int,
) -> dict[spec.CellKey, evidence.Evidence]:
    """Every cell's evidence: one exec per source pod, all its cells at once in the pod
    (:mod:`._matrix_batch`), at most `parallel` sources at a time."""
    rows: dict[str, list[spec.Cell]] = {}
    for cell in matrix.cells():
        rows.setdefault(cell.source.name, []).append(cell)

    def ask_row(cells: list[spec.Cell]) -> list[tuple[spec.CellKey, evidence.Evidence]]:
        source = cells[0].source
        found = _exec_batch(config, senders[source.name], source.container, cells, targets)
        return [(cell.key, seen) for cell, seen in zip(cells, found, strict=True)]

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return {key: seen for row in pool.map(ask_row, rows.values()) for key, seen in row}


def _exec_batch(
    config: Any,
    pod: Any,
    container: str | None,
    cells: list[spec.Cell],
    targets: Mapping[str, Any],
) -> list[evidence.Evidence]:
    """The evidence of `cells` (one source's), asked in one exec in `pod`."""
    requests = []
    for cell in cells:
        target = targets.get(cell.destination.name)
        url = cell.destination.target_url(target.status.pod_ip if target is not None else None)
        requests.append((url, cell.destination.method, cell.destination.timeout_seconds))
    nonce = batch.new_nonce()
    script = batch.batch_script(requests, nonce)
    timeout = max(c.destination.timeout_seconds for c in cells) + 15
    try:
        out, err = exec_in_pod(config, pod, container, ["sh", "-c", script], timeout)
    except Exception as exc:  # noqa: BLE001 - each cell's verdict is `error`, with why
        failed = evidence.Evidence.exec_failed(f"exec in {pod.metadata.name}: {exc}")
        return [failed] * len(cells)
    return batch.parse_records(out, err, len(cells), nonce)


def _exec(
    config: Any, pod: Any, container: str | None, argv: list[str], cell: spec.Cell
) -> evidence.Evidence:
    """Run one cell's ``argv`` in the pod; its output as evidence (exec failures are
    evidence too). One exec per cell: the probe's path before batching, kept for the
    bench (``bench/matrix_parallel.py``) to compare with."""
    try:
        out, err = exec_in_pod(config, pod, container, argv, cell.destination.timeout_seconds + 15)
    except Exception as exc:  # noqa: BLE001 - the cell's verdict is `error`, with why
        return evidence.Evidence.exec_failed(f"exec in {pod.metadata.name}: {exc}")
    return evidence.parse_curl_output(out, err)
