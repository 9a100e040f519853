"""The preflight: every pack activity's arguments, checked before the run touches the cluster.

The safety net's ``before_experiment_control`` calls :func:`preflight` before the
steady state is first probed. It walks every phase of the experiment (the
steady-state hypothesis' probes, the method, the rollbacks; a ``{"ref": ...}`` is
resolved to the activity it names), takes each activity of the pack (a Python
provider whose module is in ``chaosmesh_sec``), substitutes the configuration and
secrets into its arguments as chaoslib will (``${var}``), fills in the signature's
defaults, and calls the activity's own input check (:func:`chaosmesh_sec._validate.checks`:
the same function the activity calls first). No API call is made. Any refusal stops the
run: chaoslib's ``InterruptExecution``, whose message names the phase, the activity and
the input; the journal's status is then ``interrupted`` and ``chaos run`` exits 1.

Every activity's pauses (``pauses.before`` / ``after``, the pack's or not) must be a
number of seconds up to 24 h: chaoslib would only find a bad one by failing to sleep,
after the activity ran.

What only the cluster can tell (a node that does not exist, more replicas asked for
than run, a baseline not recorded yet) is not known here: the activity refuses it
when it runs (and a fault action's failure stops the method: :mod:`._stops`).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chaoslib import substitute
from chaoslib.exceptions import InterruptExecution

from chaosmesh_sec import _validate
from chaosmesh_sec.client import exception_brief
from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "PHASES",
    "Refusal",
    "activities",
    "pack_activities",
    "preflight",
    "refusals",
    "refused",
]

PACK = "chaosmesh_sec."
PHASES = ("steady-state-hypothesis", "method", "rollbacks")
_PASSED_BY_CHAOSLIB = ("configuration", "secrets")


@dataclass(frozen=True)
class Refusal:
    """One pack activity whose arguments its input check refused."""

    phase: str
    activity: str
    func: str
    input: str
    problem: str

    def message(self) -> str:
        return (
            f"preflight: {self.phase} activity {self.activity!r} ({self.func}): "
            f"invalid input {self.input!r}: {self.problem}"
        )

    def to_json(self) -> dict[str, str]:
        return {
            "phase": self.phase,
            "activity": self.activity,
            "func": self.func,
            "input": self.input,
            "problem": self.problem,
        }


def activities(experiment: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every activity of the experiment, by phase, references resolved (pure)."""
    declared: list[tuple[str, Any]] = [
        ("steady-state-hypothesis", a)
        for a in (experiment.get("steady-state-hypothesis") or {}).get("probes") or []
    ]
    declared += [(phase, a) for phase in PHASES[1:] for a in experiment.get(phase) or []]
    by_name = {
        a["name"]: a
        for _, a in declared
        if isinstance(a, Mapping) and "ref" not in a and "name" in a
    }
    for phase, given in declared:
        if isinstance(given, Mapping):
            yield phase, (by_name.get(given["ref"], {}) if "ref" in given else given)


def pack_activities(experiment: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The pack's activities (a Python provider in ``chaosmesh_sec``), by phase (pure)."""
    for phase, activity in activities(experiment):
        provider = activity.get("provider") or {}
        module = provider.get("module")
        if provider.get("type") == "python" and isinstance(module, str) and module.startswith(PACK):
            yield phase, activity


def refusals(
    experiment: Mapping[str, Any],
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> list[Refusal]:
    """Each pack activity whose arguments (as chaoslib will pass them) its check refuses."""
    found = _pause_refusals(experiment, configuration, secrets)
    for phase, activity in pack_activities(experiment):
        provider = activity["provider"]
        where = f"{provider['module']}.{provider.get('func')}"
        name = str(activity.get("name") or where)
        try:
            func = getattr(importlib.import_module(provider["module"]), str(provider.get("func")))
        except (ImportError, AttributeError):
            continue  # chaoslib's own validation names an activity that does not exist
        check = _validate.check_of(func)
        if check is None:
            continue  # not a public activity
        try:
            check(**_inputs(func, provider.get("arguments") or {}, configuration, secrets))
        except InvalidInput as exc:
            found.append(Refusal(phase, name, where, exc.name, exc.problem))
        except Exception as exc:  # noqa: BLE001 - a check's defect must stop the run too
            found.append(Refusal(phase, name, where, "?", exception_brief(exc)))
    return found


class _Outcome:
    """What the preflight of this process' run found (chaoslib runs one experiment per
    ``chaos run``; each preflight replaces the last)."""

    refused: tuple[Refusal, ...] = ()


def preflight(
    experiment: Mapping[str, Any],
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> None:
    """Check every pack activity's arguments; raise ``InterruptExecution`` on any refusal
    (every refusal is kept for the journal: :func:`refused`)."""
    try:
        found = refusals(experiment, configuration, secrets)
    except Exception as exc:  # noqa: BLE001 - chaoslib would swallow it and run unchecked
        found = [Refusal("experiment", "?", "preflight", "?", exception_brief(exc))]
    _Outcome.refused = tuple(found)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise InterruptExecution(f"{found[0].message()}{more}; nothing was run")


def refused() -> list[Refusal]:
    """The refusals of the last preflight (empty: it passed, or did not run)."""
    return list(_Outcome.refused)


def _pause_refusals(
    experiment: Mapping[str, Any],
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> list[Refusal]:
    """Any activity's pause (``pauses.before`` / ``after``, often a ``${var}``) that is not
    a number of seconds up to 24 h: chaoslib would only find out by failing to sleep,
    after the activity ran."""
    found = []
    for phase, activity in activities(experiment):
        pauses = activity.get("pauses")
        if not isinstance(pauses, Mapping):
            continue
        if configuration or secrets:
            pauses = substitute(dict(pauses), configuration, secrets)
        for when in ("before", "after"):
            if pauses.get(when) is None:
                continue
            try:
                _validate.seconds(f"pauses.{when}", pauses[when], 0)
            except InvalidInput as exc:
                name = str(activity.get("name"))
                found.append(Refusal(phase, name, "pauses", exc.name, exc.problem))
    return found


def _inputs(
    func: Any,
    arguments: Mapping[str, Any],
    configuration: Mapping[str, Any] | None,
    secrets: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The activity's inputs as its check takes them: chaoslib's substitution of the
    configuration and secrets, then the signature's defaults (``configuration`` and
    ``secrets`` left out)."""
    given = dict(arguments)
    if configuration or secrets:
        given = substitute(given, configuration, secrets)
    params = inspect.signature(func).parameters
    for name in given:
        if name not in params or name in _PASSED_BY_CHAOSLIB:
            raise InvalidInput(name, "is not an argument of this activity")
    return {
        name: given.get(name, param.default)
        for name, param in params.items()
        if name not in _PASSED_BY_CHAOSLIB
    }
