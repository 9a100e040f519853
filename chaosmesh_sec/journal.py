"""How a Chaos Toolkit journal is read: the vocabulary the game day, the report and JUnit share.

One module owns each thing that is written in one place and read in another:

- where each activity ran (:func:`activity_runs`): the hypothesis before the method,
  while it runs (``steady_states.during``) and after it, the method, the rollbacks;
  :func:`steady_state`, :func:`method_runs` and :func:`rollback_runs` give each part;
- the identity matrix (:data:`MATRIX_MODULE`, :data:`MATRIX_FUNC`; sampled over time:
  :data:`MATRIX_SAMPLING_FUNC`) and the fail-open it raises with ``fail_on_fail_open``
  (such a run has no output, only its exception): :func:`fail_open_message` writes the
  message (the probe raises it), :func:`fail_open_raised` reads it back from the
  exception; :func:`fail_open_cells` counts them all;
- the safety net's record in ``extensions`` (:data:`SAFETY_NET_EXTENSION`), written by
  :mod:`chaosmesh_sec.controls.safety_net`, read with :func:`safety_net_records`;
- a scenario's story (the IP hunt's stale-cache precondition): an activity output's
  ``scenario`` sentence, written with :func:`scenario_sentence`, read back with
  :func:`scenarios_not_reproduced` (a run whose story did not happen held nothing).

Pure: a parsed journal in, plain values out. A part that is missing or of another
type reads as absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chaosmesh_sec.errors import FailOpen

__all__ = [
    "FAIL_OPEN_ERROR",
    "MATRIX_FUNC",
    "MATRIX_MODULE",
    "MATRIX_SAMPLING_FUNC",
    "SAFETY_NET_EXTENSION",
    "FailOpenRaised",
    "activity",
    "activity_runs",
    "exception_text",
    "fail_open_cells",
    "fail_open_message",
    "fail_open_raised",
    "method_runs",
    "rollback_runs",
    "safety_net_records",
    "scenario_sentence",
    "scenarios_not_reproduced",
    "steady_state",
]

SAFETY_NET_EXTENSION = "chaosmesh-sec-safety-net"
"""The ``name`` of the safety net's record in a journal's ``extensions``."""
MATRIX_MODULE = "chaosmesh_sec.probes.matrix"
MATRIX_FUNC = "identity_matrix"
"""The identity matrix probe, as a journal's ``provider`` names it."""
MATRIX_SAMPLING_FUNC = "sample_matrix"
"""The identity matrix checked every few seconds (a timeline), as ``provider`` names it."""
FAIL_OPEN_ERROR = FailOpen.__name__
"""The class name an exception text carries when a matrix raised on fail-open cells."""

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
"""How an activity's ``scenario`` sentence begins: did the story it needs happen?"""

_FAIL_OPEN = re.compile(r"fail-open cells in (?P<matrix>[^:]+): (?P<cells>.+)$")


# ---------------------------------------------------------------- where activities ran


def steady_state(
    journal: Mapping[str, Any], phase: Literal["before", "after"]
) -> Mapping[str, Any] | None:
    """The hypothesis as checked ``before`` or ``after`` the method; None when it was not."""
    states = journal.get("steady_states")
    state = states.get(phase) if isinstance(states, Mapping) else None
    return state if isinstance(state, Mapping) else None


def method_runs(journal: Mapping[str, Any]) -> list[Any]:
    """The method's activity runs (``run``), in the journal's order."""
    runs = journal.get("run")
    return runs if isinstance(runs, list) else []


def rollback_runs(journal: Mapping[str, Any]) -> list[Any]:
    """The rollbacks' activity runs, in the journal's order."""
    runs = journal.get("rollbacks")
    return runs if isinstance(runs, list) else []


def activity_runs(journal: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every activity run, with where it ran: ``before``, ``after``, ``during`` (the
    hypothesis checked while the method runs), ``method``, ``rollbacks``."""
    phases: tuple[Literal["before", "after"], ...] = ("before", "after")
    for phase in phases:
        state = steady_state(journal, phase)
        yield from ((phase, run) for run in _mappings((state or {}).get("probes")))
    states = journal.get("steady_states")
    during = states.get("during") if isinstance(states, Mapping) else None
    for state in _mappings(during):
        yield from (("during", run) for run in _mappings(state.get("probes")))
    yield from (("method", run) for run in _mappings(method_runs(journal)))
    yield from (("rollbacks", run) for run in _mappings(rollback_runs(journal)))


def activity(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The activity a run ran (its ``type``, ``name``, ``provider``), or an empty mapping."""
    found = run.get("activity")
    return found if isinstance(found, Mapping) else {}


def exception_text(run: Mapping[str, Any]) -> str:
    """A run's exception as one text (a journal keeps it as a list of lines); "" for none."""
    exc = run.get("exception")
    if isinstance(exc, list):
        return "".join(str(line) for line in exc)
    return str(exc) if exc else ""


def _mappings(value: Any) -> Iterator[Mapping[str, Any]]:
    return (
        item for item in (value if isinstance(value, list) else []) if isinstance(item, Mapping)
    )


# ---------------------------------------------------------------- the identity matrix's fail-open


@dataclass(frozen=True)
class FailOpenRaised:
    """What a matrix's :class:`~chaosmesh_sec.errors.FailOpen` names: its matrix and cells."""

    matrix: str
    cells: tuple[str, ...]


def fail_open_message(matrix: str, cells: Iterable[str]) -> str:
    """The message of the ``FailOpen`` a matrix raises: ``fail-open cells in M: a -> b, ...``."""
    return f"fail-open cells in {matrix}: {', '.join(cells)}"


def fail_open_raised(text: str) -> FailOpenRaised | None:
    """The matrix and cells a :func:`fail_open_message` names, read from the last line of
    an exception text (None when that line is not one); cells are ``source -> dest``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = _FAIL_OPEN.search(lines[-1]) if lines else None
    if found is None:
        return None
    cells = tuple(c.strip() for c in found["cells"].split(",") if " -> " in c)
    return FailOpenRaised(found["matrix"].strip(), cells)


def _func(run: Mapping[str, Any]) -> Any:
    provider = activity(run).get("provider")
    return provider.get("func") if isinstance(provider, Mapping) else None


def fail_open_cells(journal: Mapping[str, Any]) -> int:
    """Cells with ``fail_open: true`` in every identity matrix output of the journal, in
    any phase (a cell found open before and after counts twice), plus those a matrix
    named in a ``FailOpen`` it raised (``fail_on_fail_open``: such a run has no output),
    plus each fail-open moment of a sampled matrix (its output's ``fail_open`` list)."""
    count = 0
    for _phase, run in activity_runs(journal):
        func = _func(run)
        if func == MATRIX_SAMPLING_FUNC:
            moments = run.get("output")
            moments = moments.get("fail_open") if isinstance(moments, Mapping) else None
            count += len(moments) if isinstance(moments, list) else 0
            continue
        if func != MATRIX_FUNC:
            continue
        output = run.get("output")
        if isinstance(output, Mapping):
            count += sum(
                1
                for c in output.get("cells") or []
                if isinstance(c, Mapping) and c.get("fail_open")
            )
            continue
        text = exception_text(run)
        if FAIL_OPEN_ERROR in text:
            raised = fail_open_raised(text)
            count += max(1, len(raised.cells) if raised else 0)
    return count


# ---------------------------------------------------------------- the safety net


def safety_net_records(journal: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The safety net's records in ``extensions`` (one per run that declares it)."""
    return [
        e for e in _mappings(journal.get("extensions")) if e.get("name") == SAFETY_NET_EXTENSION
    ]


# ---------------------------------------------------------------- a scenario's story


def scenario_sentence(reproduced: bool, why: str) -> str:
    """The ``scenario`` an activity writes: ``reproduced: ...`` or ``not reproduced: ...``."""
    return f"{REPRODUCED if reproduced else NOT_REPRODUCED}: {why}"


def scenarios_not_reproduced(journal: Mapping[str, Any]) -> list[str]:
    """The ``scenario`` sentences of method activities whose story did not happen."""
    found = []
    for run in method_runs(journal):
        output = run.get("output") if isinstance(run, Mapping) else None
        if not isinstance(output, Mapping) or output.get("reproduced") is not False:
            continue
        sentence = output.get("scenario")
        found.append(sentence if isinstance(sentence, str) else NOT_REPRODUCED)
    return found
