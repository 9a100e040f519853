"""``chaosmesh-sec gameday``: run a list of experiments in order, then report on all of them.

The input is a directory (every ``*.json`` / ``*.yaml`` / ``*.yml`` experiment in it, in
name order) or a plan file (YAML)::

    name: mesh-q3                       # names the results directory
    abort_on: deviated                  # deviated | failed | never (default never)
    experiments:
      - path: experiments/smoke.json    # relative to the plan file
      - path: experiments/istiod-kill.json
        vars: {istiod_kill_count: 1}    # configuration values for this experiment only
        var_file: vars/staging.yaml     # a chaos var-file ({"configuration": ...})
        pause_before: prompt            # "prompt" | seconds | 0 (default)
        rollback_strategy: always       # default | always | never | deviated

The whole plan is checked before anything runs: every path exists, every experiment
loads and passes chaoslib's validation, every ``vars`` is a mapping of configuration
keys the experiment declares, every var-file parses. A problem names the plan entry
and nothing runs (exit code 4).

Each experiment runs in a ``chaos run`` process of its own, so module state kept
within a run (the identity matrix's baselines) cannot leak into the next one. Its
journal goes to ``<out>/<YYYY-MM-DD>-<name>/<NN>-<experiment>.json`` (``out``
defaults to ``journals``; ``-2``, ``-3``... when that directory exists), its log
beside it. The run directory then gets the reports
(:func:`chaosmesh_sec.report.write_reports`: ``report.html``, ``report.md``,
``junit.xml``) and ``metrics.prom`` (Prometheus text format), also copied to
``<out>/metrics.prom`` so a textfile collector finds the latest at a fixed path.

Values come, last wins, from: ``--var-file`` (every experiment), the entry's
``var_file``, the entry's ``vars``, ``--var key=value`` (every experiment).

Exit codes (several apply: the highest wins)::

    0  every hypothesis held
    1  a hypothesis deviated: the steady state did not hold after the method, or an
       identity matrix found a fail-open cell (anywhere in the run)
    2  a fault could not be applied: a method activity failed with FaultNotApplied,
       InvalidInput or ClusterUnreachable, or a method action failed at all; or the
       run never reached the method (steady state not met before it, chaos could not
       start) or stopped before its verdict (aborted, interrupted)
    3  a rollback failed: a rollback activity failed, an activity raised
       RollbackFailed, or the safety net recorded an error (something may be left
       in the cluster: run ``chaosmesh-sec rollback``)
    4  the plan is invalid: nothing ran (command-line usage errors too)

A game day stopped by SIGTERM or Ctrl-C exits at least 2: the running experiment
ends as chaos ends it (rollbacks per its strategy, then the safety net) and the
rest never runs. ``abort_on`` stops the plan after the first experiment whose code
reaches 1 (``deviated``) or 2 (``failed``); ``q`` at a prompt stops it too. What
did not run is reported as skipped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TextIO

import yaml

from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "EXIT_DEVIATED",
    "EXIT_HELD",
    "EXIT_NOT_APPLIED",
    "EXIT_PLAN_INVALID",
    "EXIT_ROLLBACK_FAILED",
    "Console",
    "Entry",
    "GamedayResult",
    "Outcome",
    "Plan",
    "exit_code",
    "fail_open_cells",
    "journal_exit_code",
    "load_plan",
    "metrics_text",
    "parse_vars",
    "run_gameday",
]

EXIT_HELD = 0
EXIT_DEVIATED = 1
EXIT_NOT_APPLIED = 2
EXIT_ROLLBACK_FAILED = 3
EXIT_PLAN_INVALID = 4

VERDICTS = {
    EXIT_HELD: "held",
    EXIT_DEVIATED: "deviated",
    EXIT_NOT_APPLIED: "not_applied",
    EXIT_ROLLBACK_FAILED: "rollback_failed",
}
MEANINGS = {
    EXIT_HELD: "every hypothesis held",
    EXIT_DEVIATED: "a hypothesis deviated",
    EXIT_NOT_APPLIED: "a fault could not be applied",
    EXIT_ROLLBACK_FAILED: "a rollback failed: run `chaosmesh-sec rollback`",
    EXIT_PLAN_INVALID: "the plan is invalid",
}
SKIPPED = "skipped"
STATUSES = ("completed", "deviated", "failed", "aborted", "interrupted", SKIPPED)
ABORT_ON = {"never": None, "deviated": EXIT_DEVIATED, "failed": EXIT_NOT_APPLIED}
ROLLBACK_STRATEGIES = ("default", "always", "never", "deviated")
PROMPT = "prompt"
EXPERIMENT_SUFFIXES = (".json", ".yaml", ".yml")
VAR_FILE_SUFFIXES = (".json", ".yaml", ".yml", ".env")
PLAN_KEYS = ("name", "experiments", "abort_on")
ENTRY_KEYS = ("path", "vars", "var_file", "pause_before", "rollback_strategy")

SAFETY_NET_EXTENSION = "chaosmesh-sec-safety-net"  # chaosmesh_sec.controls.safety_net.EXTENSION
GAMEDAY_EXTENSION = "chaosmesh-sec-gameday"
NOT_APPLIED_ERRORS = ("FaultNotApplied", "InvalidInput", "ClusterUnreachable")
ROLLBACK_ERROR = "RollbackFailed"
FAIL_OPEN_ERROR = "FailOpen"
MATRIX_FUNC = "identity_matrix"
CHAOS_ENV = "CHAOSMESH_SEC_CHAOS"
HEARTBEAT_SECONDS = 30.0

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_VAR_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Entry:
    """One experiment of the plan, checked."""

    index: int  # 1-based, its position in the plan
    path: Path
    title: str
    config_keys: frozenset[str] = frozenset()  # the configuration the experiment declares
    vars: Mapping[str, Any] = field(default_factory=dict)
    var_file: Path | None = None
    pause_before: str | float = 0  # PROMPT or seconds
    rollback_strategy: str | None = None

    @property
    def stem(self) -> str:
        """``NN-<experiment>``: the name of its journal, log and metrics label."""
        return f"{self.index:02d}-{self.experiment}"

    @property
    def experiment(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Plan:
    """A checked plan: nothing in it can fail for a reason known before it runs."""

    name: str
    entries: tuple[Entry, ...]
    abort_on: str = "never"
    source: Path | None = None


def load_plan(source: Path) -> Plan:
    """The plan in ``source`` (a directory of experiments or a plan file), fully checked.

    Raises :class:`InvalidInput` naming the plan entry (``experiments[2]
    (istiod-kill.json).vars``) at the first problem.
    """
    if source.is_dir():
        files = sorted(
            p
            for p in source.iterdir()
            if p.is_file() and p.suffix in EXPERIMENT_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise InvalidInput(
                "source", f"directory {str(source)!r} holds no *.json / *.yaml experiment"
            )
        entries = tuple(
            Entry(i, p, *_checked_experiment(p, f"{source.name}/{p.name}", {}))
            for i, p in enumerate(files, 1)
        )
        return Plan(_safe_name(source.resolve().name), entries, "never", source)
    if not source.is_file():
        raise InvalidInput("source", f"{str(source)!r} is neither a directory nor a plan file")
    return _plan_file(source)


def _plan_file(path: Path) -> Plan:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput("plan", f"{str(path)!r} is not readable YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise InvalidInput("plan", f"{str(path)!r} must be a mapping with name and experiments")
    _no_unknown_keys("plan", raw, PLAN_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name", "required: a non-empty string (it names the results directory)")
    abort_on = raw.get("abort_on", "never")
    if abort_on not in ABORT_ON:
        raise InvalidInput("abort_on", f"must be one of {', '.join(ABORT_ON)}, got {abort_on!r}")
    items = raw.get("experiments")
    if not isinstance(items, list) or not items:
        raise InvalidInput("experiments", "required: a non-empty list of {path: ...} entries")
    base = path.parent
    entries = tuple(_plan_entry(i, item, base) for i, item in enumerate(items, 1))
    return Plan(_safe_name(name), entries, str(abort_on), path)


def _plan_entry(index: int, item: Any, base: Path) -> Entry:
    where = f"experiments[{index}]"
    if isinstance(item, str):  # a bare path is allowed
        item = {"path": item}
    if not isinstance(item, Mapping):
        raise InvalidInput(where, "must be a mapping with at least a path")
    raw_path = item.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise InvalidInput(f"{where}.path", "required: the experiment file's path")
    where = f"{where} ({raw_path})"
    _no_unknown_keys(where, item, ENTRY_KEYS)
    path = _resolve(base, raw_path)
    if not path.is_file():
        raise InvalidInput(f"{where}.path", f"no such file: {str(path)!r}")
    if path.suffix not in EXPERIMENT_SUFFIXES:
        raise InvalidInput(f"{where}.path", "an experiment is a .json, .yaml or .yml file")
    variables = _vars(f"{where}.vars", item.get("vars", {}))
    var_file = None
    if item.get("var_file") is not None:
        raw_var_file = item["var_file"]
        if not isinstance(raw_var_file, str) or not raw_var_file.strip():
            raise InvalidInput(f"{where}.var_file", "must be a path")
        var_file = check_var_file(f"{where}.var_file", _resolve(base, raw_var_file))
    pause = _pause_value(f"{where}.pause_before", item.get("pause_before", 0))
    strategy = item.get("rollback_strategy")
    if strategy is not None and strategy not in ROLLBACK_STRATEGIES:
        raise InvalidInput(
            f"{where}.rollback_strategy",
            f"must be one of {', '.join(ROLLBACK_STRATEGIES)}, got {strategy!r}",
        )
    title, keys = _checked_experiment(path, where, variables)
    return Entry(index, path, title, keys, variables, var_file, pause, strategy)


def _resolve(base: Path, raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _no_unknown_keys(where: str, raw: Mapping[Any, Any], known: Sequence[str]) -> None:
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise InvalidInput(where, f"unknown key(s) {unknown}; known: {', '.join(known)}")


def _vars(where: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            where, f"must be a mapping of configuration keys, got {type(raw).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not _VAR_KEY.fullmatch(key):
            raise InvalidInput(where, f"key {key!r} is not a configuration key name")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}.{key}", f"not a JSON value ({exc})") from exc
        out[key] = value
    return out


def _pause_value(where: str, raw: Any) -> str | float:
    if raw == PROMPT:
        return PROMPT
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InvalidInput(where, f'must be "prompt" or a number of seconds, got {raw!r}')
    if not math.isfinite(raw) or raw < 0:
        raise InvalidInput(where, f"must be >= 0 seconds, got {raw}")
    return float(raw)


def check_var_file(where: str, path: Path) -> Path:
    """A chaos var-file that exists and parses (chaos only logs a bad one and goes on)."""
    if not path.is_file():
        raise InvalidInput(where, f"no such file: {str(path)!r}")
    if path.suffix not in VAR_FILE_SUFFIXES:
        raise InvalidInput(where, f"a var-file is {', '.join(VAR_FILE_SUFFIXES)}, got {path.name}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(where, f"cannot read {str(path)!r}: {exc}") from exc
    if path.suffix == ".env":
        bad = [
            n
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#") and "=" not in line
        ]
        if bad:
            raise InvalidInput(where, f"{path.name}: line(s) {bad} are not KEY=VALUE")
        return path
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(where, f"{path.name} does not parse: {exc}") from exc
    if not isinstance(data, Mapping) or not data:
        raise InvalidInput(where, f"{path.name} must be a mapping with configuration / secrets")
    _no_unknown_keys(f"{where} ({path.name})", data, ("configuration", "secrets"))
    for key in ("configuration", "secrets"):
        if key in data and not isinstance(data[key], Mapping):
            raise InvalidInput(where, f"{path.name}: {key} must be a mapping")
    return path


def _var_file_configuration(path: Path) -> Mapping[str, Any]:
    """The configuration a checked var-file gives (none for a .env file)."""
    if path.suffix == ".env":
        return {}
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    config = data.get("configuration") if isinstance(data, Mapping) else None
    return config if isinstance(config, Mapping) else {}


def _checked_experiment(
    path: Path, where: str, variables: Mapping[str, Any]
) -> tuple[str, frozenset[str]]:
    """Load and validate the experiment as ``chaos validate`` does; its title and the
    configuration keys it declares."""
    import logging

    from chaoslib.caching import with_cache
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    chaos_logger = logging.getLogger("chaostoolkit")
    level = chaos_logger.level
    chaos_logger.setLevel(logging.WARNING)  # "Experiment looks valid", once per experiment
    try:
        experiment = load_experiment(str(path))
        if not isinstance(experiment, Mapping):
            raise InvalidInput(where, f"{path.name} is not an experiment (not a mapping)")
        with_cache(ensure_experiment_is_valid)(experiment)
    except InvalidInput:
        raise
    except (ChaosException, OSError, ValueError) as exc:
        raise InvalidInput(where, f"{path.name} is not a valid experiment: {exc}") from exc
    finally:
        chaos_logger.setLevel(level)
    declared = experiment.get("configuration") or {}
    unknown = sorted(k for k in variables if k not in declared)
    if unknown:
        raise InvalidInput(
            f"{where}.vars",
            f"{unknown} not in {path.name}'s configuration (it has: {', '.join(sorted(declared))})",
        )
    return str(experiment.get("title", path.stem)), frozenset(str(k) for k in declared)


def _safe_name(name: str) -> str:
    return _SAFE_NAME.sub("-", name.strip()).strip("-.") or "gameday"


def parse_vars(pairs: Iterable[str]) -> dict[str, Any]:
    """``key=value`` strings; a value that parses as JSON (``30``, ``true``) keeps its type."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not _VAR_KEY.fullmatch(key):
            raise InvalidInput("--var", f"{pair!r} is not key=value")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = value if value is None or isinstance(value, str | int | float | bool) else raw
    return out


# ---------------------------------------------------------------- reading journals (pure)


def _activity_runs(journal: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every activity run in a journal, with where it ran: before, during, method, after,
    rollbacks."""
    states = journal.get("steady_states") or {}
    for phase in ("before", "after"):
        for run in (states.get(phase) or {}).get("probes") or []:
            yield phase, run
    for state in states.get("during") or []:
        for run in (state or {}).get("probes") or []:
            yield "during", run
    for run in journal.get("run") or []:
        yield "method", run
    for run in journal.get("rollbacks") or []:
        yield "rollbacks", run


def _exception_text(run: Mapping[str, Any]) -> str:
    exc = run.get("exception")
    if isinstance(exc, list):
        return "".join(str(line) for line in exc)
    return str(exc) if exc else ""


def _activity(run: Mapping[str, Any]) -> Mapping[str, Any]:
    activity = run.get("activity")
    return activity if isinstance(activity, Mapping) else {}


def _is_matrix(run: Mapping[str, Any]) -> bool:
    provider = _activity(run).get("provider")
    return isinstance(provider, Mapping) and provider.get("func") == MATRIX_FUNC


def fail_open_cells(journal: Mapping[str, Any]) -> int:
    """Cells with ``fail_open: true`` in every identity matrix output of the journal
    (a cell found open before and after counts twice), plus those a matrix named in a
    ``FailOpen`` it raised (``fail_on_fail_open``: such a run has no output)."""
    count = 0
    for _phase, run in _activity_runs(journal):
        if not _is_matrix(run):
            continue
        output = run.get("output")
        if isinstance(output, Mapping):
            count += sum(
                1
                for c in output.get("cells") or []
                if isinstance(c, Mapping) and c.get("fail_open")
            )
            continue
        text = _exception_text(run)
        if FAIL_OPEN_ERROR in text:
            _, _, cells = text.strip().splitlines()[-1].partition(": fail-open cells in ")
            named = cells.partition(": ")[2]
            count += max(1, len([c for c in named.split(", ") if c.strip()]))
    return count


def journal_status(journal: Mapping[str, Any]) -> str:
    """The run's status as ``chaos`` reports it: ``deviated`` or the journal's status."""
    if journal.get("deviated"):
        return "deviated"
    return str(journal.get("status") or "aborted")


def journal_exit_code(journal: Mapping[str, Any]) -> int:
    """The exit code one journal calls for (see the module docstring)."""
    codes = {EXIT_HELD}
    extensions = journal.get("extensions") or []
    if any(
        isinstance(e, Mapping) and e.get("name") == SAFETY_NET_EXTENSION and e.get("error")
        for e in extensions
    ):
        codes.add(EXIT_ROLLBACK_FAILED)
    status = journal.get("status")
    before = (journal.get("steady_states") or {}).get("before")
    method = journal.get("run") or []
    if isinstance(before, Mapping) and before.get("steady_state_met") is False:
        codes.add(EXIT_NOT_APPLIED)  # the method never ran: the system was not steady
    if status in ("failed", "aborted", "interrupted") and not method:
        codes.add(EXIT_NOT_APPLIED)
    if status in ("aborted", "interrupted"):
        codes.add(EXIT_NOT_APPLIED)  # stopped before its verdict
    if journal.get("deviated"):
        codes.add(EXIT_DEVIATED)
    for phase, run in _activity_runs(journal):
        text = _exception_text(run)
        failed = run.get("status") == "failed"
        if ROLLBACK_ERROR in text or (phase == "rollbacks" and failed):
            codes.add(EXIT_ROLLBACK_FAILED)
        if FAIL_OPEN_ERROR in text:
            codes.add(EXIT_DEVIATED)
        if phase == "method" and failed:
            action = _activity(run).get("type") == "action"
            if action or any(name in text for name in NOT_APPLIED_ERRORS):
                codes.add(EXIT_NOT_APPLIED)
    if fail_open_cells(journal):
        codes.add(EXIT_DEVIATED)
    return max(codes)


def exit_code(journals: Iterable[Mapping[str, Any]]) -> int:
    """The game day's exit code: the highest any journal calls for (0 with none)."""
    return max((journal_exit_code(j) for j in journals), default=EXIT_HELD)


# ---------------------------------------------------------------- metrics (pure)


@dataclass(frozen=True)
class Outcome:
    """What became of one plan entry."""

    entry: Entry
    journal_path: Path | None = None
    journal: Mapping[str, Any] | None = None
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.journal is None

    @property
    def status(self) -> str:
        return SKIPPED if self.journal is None else journal_status(self.journal)

    @property
    def code(self) -> int | None:
        return None if self.journal is None else journal_exit_code(self.journal)

    @property
    def verdict(self) -> str:
        code = self.code
        return SKIPPED if code is None else VERDICTS[code]

    @property
    def fail_open(self) -> int:
        return 0 if self.journal is None else fail_open_cells(self.journal)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Exposition:
    """Prometheus text exposition (format 0.0.4): HELP, TYPE, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines += [f"# HELP {name} {escaped}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self.lines.append(f"{name}{{{_labels(labels)}}} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def metrics_text(
    gameday: str, outcomes: Sequence[Outcome], finished_at: float, code: int | None = None
) -> str:
    """The game day's results in the Prometheus text format, for a textfile collector.

    ``code`` is the game day's exit code (default: the one its journals call for)."""
    out = _Exposition()
    per_run = [
        (o, {"gameday": gameday, "index": f"{o.entry.index:02d}", "experiment": o.entry.experiment})
        for o in outcomes
    ]
    out.family(
        "chaosmesh_sec_experiment_status",
        "gauge",
        "Status of each experiment of the last game day: 1 for its status, 0 for the others.",
    )
    for o, labels in per_run:
        for status in STATUSES:
            out.sample(
                "chaosmesh_sec_experiment_status",
                {**labels, "status": status},
                1 if o.status == status else 0,
            )
    out.family(
        "chaosmesh_sec_experiment_exit_code",
        "gauge",
        "Exit code each experiment calls for: 0 held, 1 deviated, 2 not applied, "
        "3 rollback failed.",
    )
    for o, labels in per_run:
        if o.code is not None:
            out.sample("chaosmesh_sec_experiment_exit_code", labels, o.code)
    out.family(
        "chaosmesh_sec_fail_open_cells",
        "gauge",
        "Identity matrix cells expected to be denied that were allowed, in the experiment.",
    )
    for o, labels in per_run:
        if not o.skipped:
            out.sample("chaosmesh_sec_fail_open_cells", labels, o.fail_open)
    out.family(
        "chaosmesh_sec_experiment_duration_seconds",
        "gauge",
        "Wall-clock time of each experiment's run.",
    )
    for o, labels in per_run:
        if not o.skipped:
            out.sample("chaosmesh_sec_experiment_duration_seconds", labels, round(o.seconds, 3))
    out.family(
        "chaosmesh_sec_gameday_experiments_total",
        "gauge",
        "Experiments of the last game day, by verdict.",
    )
    for verdict in (*VERDICTS.values(), SKIPPED):
        out.sample(
            "chaosmesh_sec_gameday_experiments_total",
            {"gameday": gameday, "verdict": verdict},
            sum(1 for o in outcomes if o.verdict == verdict),
        )
    out.family(
        "chaosmesh_sec_gameday_exit_code",
        "gauge",
        "Exit code of the last game day (0 held, 1 deviated, 2 not applied, 3 rollback failed).",
    )
    if code is None:
        code = exit_code(o.journal for o in outcomes if o.journal is not None)
    out.sample("chaosmesh_sec_gameday_exit_code", {"gameday": gameday}, code)
    out.family(
        "chaosmesh_sec_gameday_last_run_timestamp_seconds",
        "gauge",
        "When the last game day finished (Unix time).",
    )
    out.sample(
        "chaosmesh_sec_gameday_last_run_timestamp_seconds",
        {"gameday": gameday},
        round(finished_at, 3),
    )
    return out.text()


# ---------------------------------------------------------------- running


class Console:
    """Where the people in the room see progress and answer prompts."""

    def __init__(
        self,
        out: TextIO | None = None,
        stdin: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.stdin = stdin or sys.stdin
        self.interactive = self.stdin.isatty() if interactive is None else interactive

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def ask(self, question: str) -> str:
        print(question, end="", file=self.out, flush=True)
        line = self.stdin.readline()
        if not line:
            raise EOFError
        return line.strip().lower()


@dataclass(frozen=True)
class GamedayResult:
    code: int
    run_dir: Path
    outcomes: tuple[Outcome, ...]
    reports: Mapping[str, Path]
    stopped: str | None  # why the plan stopped early, if it did


def chaos_command() -> list[str]:
    """``chaos``: ``$CHAOSMESH_SEC_CHAOS``, else the one installed beside this Python (it can
    import this pack), else the first on ``PATH``."""
    override = os.environ.get(CHAOS_ENV)
    if override:
        return [override]
    sibling = Path(sys.executable).parent / "chaos"
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return [str(sibling)]
    found = shutil.which("chaos")
    if found:
        return [found]
    return [sys.executable, "-m", "chaostoolkit"]


def run_directory(out_root: Path, name: str, today: str) -> Path:
    """``<out>/<today>-<name>``, or ``-2``, ``-3``... after it when that one exists."""
    base = out_root / f"{today}-{name}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _synthetic_journal(entry: Entry, started: float, problem: str) -> dict[str, Any]:
    """A journal for a run that produced none, so reports and exit code count it."""
    try:
        experiment: Any = json.loads(entry.path.read_text()) if entry.path.suffix == ".json" else {}
    except (OSError, ValueError):
        experiment = {}
    if not isinstance(experiment, dict) or not experiment:
        experiment = {"title": entry.title}
    now = time.time()
    return {
        "chaoslib-version": None,
        "experiment": experiment,
        "start": datetime.fromtimestamp(started).astimezone().isoformat(),
        "end": datetime.fromtimestamp(now).astimezone().isoformat(),
        "duration": round(now - started, 3),
        "status": "aborted",
        "deviated": False,
        "steady_states": {"before": None, "after": None, "during": []},
        "run": [],
        "rollbacks": [],
        "extensions": [{"name": GAMEDAY_EXTENSION, "error": problem}],
    }


class _Stop:
    """SIGTERM / Ctrl-C during a game day: the running experiment ends (chaos rolls back and
    its safety net heals), nothing after it starts."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signalled = False
        self.child: subprocess.Popen[bytes] | None = None

    def stopping(self) -> bool:
        return self.reason is not None

    def interrupted(self) -> None:
        self.reason = "interrupted (Ctrl-C)"
        self.signalled = True

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.reason = "stopped by SIGTERM"
        self.signalled = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)  # chaos: interrupted, then the safety net

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self.on_sigterm)
            try:
                yield
            finally:
                signal.signal(signal.SIGTERM, previous)
        else:
            yield


def _pause(
    entry: Entry, total: int, console: Console, yes: bool, sleep: Callable[[float], None]
) -> Literal["run", "skip", "stop"]:
    """Wait as the entry asks, and say whether to run it, skip it or stop the game day."""
    head = f"[{entry.index}/{total}] next: {entry.path.name} ({entry.title})"
    if entry.pause_before == PROMPT:
        if yes:
            return "run"
        if not console.interactive:
            console.say(f"{head}: pause_before is prompt, stdin is not a terminal: not waiting")
            return "run"
        while True:
            try:
                answer = console.ask(f"{head}\n  Enter to run it, s to skip it, q to stop here: ")
            except EOFError:
                return "run"
            if answer in ("", "y", "yes", "r", "run"):
                return "run"
            if answer in ("s", "skip"):
                console.say(f"[{entry.index}/{total}] {entry.path.name}: skipped")
                return "skip"
            if answer in ("q", "quit", "stop"):
                return "stop"
    seconds = float(entry.pause_before)
    if seconds > 0:
        console.say(f"{head}: starting in {_elapsed(seconds)}")
        sleep(seconds)
    return "run"


def _command(
    entry: Entry, journal: Path, log: Path, var_files: Sequence[Path], generated: Path | None
) -> list[str]:
    """The ``chaos run`` command line (absolute paths: it does not depend on a directory)."""
    cmd = [*chaos_command(), "--no-version-check", "--log-file", str(log.resolve()), "run"]
    cmd += ["--journal-path", str(journal.resolve())]
    files = [*var_files, *([entry.var_file] if entry.var_file else [])]
    files += [generated] if generated is not None else []
    for var_file in files:
        cmd += ["--var-file", str(var_file.resolve())]
    if entry.rollback_strategy:
        cmd += ["--rollback-strategy", entry.rollback_strategy]
    return [*cmd, str(entry.path.resolve())]


def _wait(
    proc: subprocess.Popen[bytes],
    entry: Entry,
    total: int,
    console: Console,
    stop: _Stop,
    started: float,
    heartbeat: bool,
) -> None:
    """Wait for ``chaos``; on Ctrl-C let it roll back (a second Ctrl-C stops waiting)."""
    while True:
        try:
            proc.wait(timeout=HEARTBEAT_SECONDS)
            return
        except subprocess.TimeoutExpired:
            if heartbeat:
                elapsed = _elapsed(time.monotonic() - started)
                console.say(f"[{entry.index}/{total}] {entry.path.name}: running, {elapsed}")
        except KeyboardInterrupt:
            if stop.reason == "interrupted (Ctrl-C)":
                proc.kill()
                proc.wait()
                raise
            stop.interrupted()
            console.say(
                f"[{entry.index}/{total}] interrupted: waiting for chaos to roll back "
                "(Ctrl-C again to stop waiting)"
            )


def _run_one(
    entry: Entry,
    total: int,
    run_dir: Path,
    tmp: Path,
    *,
    console: Console,
    stop: _Stop,
    var_files: Sequence[Path],
    variables: Mapping[str, Any],
    quiet: bool,
) -> Outcome:
    journal_path = run_dir / f"{entry.stem}.json"
    log = run_dir / f"{entry.stem}.log"
    merged = {**entry.vars, **variables}
    generated = None
    if merged:
        generated = tmp / f"{entry.stem}.vars.json"
        generated.write_text(json.dumps({"configuration": merged}))
    cmd = _command(entry, journal_path, log, var_files, generated)
    console.say(f"[{entry.index}/{total}] {entry.path.name}: {entry.title}")
    started_wall, started = time.time(), time.monotonic()
    problem = None
    with contextlib.ExitStack() as stack:
        output: Any = None
        if quiet:
            output = stack.enter_context((run_dir / f"{entry.stem}.out").open("wb"))
        try:
            proc = subprocess.Popen(cmd, stdout=output, stderr=output)
        except OSError as exc:
            problem = f"could not start chaos ({cmd[0]}): {exc}"
        else:
            stop.child = proc
            try:
                _wait(proc, entry, total, console, stop, started, heartbeat=quiet)
            finally:
                stop.child = None
            if proc.returncode not in (0, 1):
                problem = f"chaos exited {proc.returncode}"
    seconds = time.monotonic() - started
    journal: Mapping[str, Any] | None = None
    if journal_path.is_file():
        try:
            loaded = json.loads(journal_path.read_text())
            journal = loaded if isinstance(loaded, Mapping) else None
        except (OSError, ValueError) as exc:
            problem = f"its journal does not parse ({exc})"
    if journal is None:
        problem = problem or "chaos wrote no journal"
        journal = _synthetic_journal(entry, started_wall, f"{problem}; see {log.name}")
        _write_atomically(journal_path, json.dumps(journal, indent=2))
    outcome = Outcome(entry, journal_path, journal, seconds)
    extra = f", {outcome.fail_open} fail-open cell(s)" if outcome.fail_open else ""
    note = f" ({problem})" if problem else ""
    console.say(
        f"[{entry.index}/{total}] {entry.path.name}: {outcome.status} -> {outcome.verdict} "
        f"(exit {outcome.code}){extra} in {_elapsed(seconds)}{note}"
    )
    return outcome


def run_gameday(
    plan: Plan,
    out_root: Path,
    *,
    yes: bool = False,
    quiet: bool = False,
    var_files: Sequence[Path] = (),
    variables: Mapping[str, Any] | None = None,
    console: Console | None = None,
    sleep: Callable[[float], None] = time.sleep,
    today: str | None = None,
) -> GamedayResult:
    """Run every entry of ``plan`` in order (see the module docstring), then report."""
    console = console or Console()
    variables = dict(variables or {})
    today = today or datetime.now().astimezone().strftime("%Y-%m-%d")
    run_dir = run_directory(out_root, plan.name, today)
    run_dir.mkdir(parents=True)
    total = len(plan.entries)
    threshold = ABORT_ON[plan.abort_on]
    stop = _Stop()
    outcomes: list[Outcome] = []
    began = time.monotonic()
    console.say(f"game day {plan.name}: {total} experiment(s), results in {run_dir}")
    with stop.installed(), tempfile.TemporaryDirectory(prefix="chaosmesh-sec-gameday-") as tmp:
        for entry in plan.entries:
            if stop.stopping():
                break
            try:
                decision = _pause(entry, total, console, yes, sleep)
            except KeyboardInterrupt:
                stop.interrupted()
                break
            if stop.stopping():  # SIGTERM while pausing
                break
            if decision == "stop":
                stop.reason = f"stopped at the prompt before {entry.stem}"
                break
            if decision == "skip":
                outcomes.append(Outcome(entry))
                continue
            outcome = _run_one(
                entry,
                total,
                run_dir,
                Path(tmp),
                console=console,
                stop=stop,
                var_files=var_files,
                variables=variables,
                quiet=quiet,
            )
            outcomes.append(outcome)
            if threshold is not None and (outcome.code or 0) >= threshold and not stop.stopping():
                stop.reason = f"abort_on {plan.abort_on}: {entry.stem} ended {outcome.verdict}"
    for entry in plan.entries[len(outcomes) :]:
        outcomes.append(Outcome(entry))
    if stop.reason:
        console.say(f"game day {plan.name}: {stop.reason}; the rest did not run")

    journals = [o.journal_path for o in outcomes if o.journal_path is not None]
    code = exit_code(o.journal for o in outcomes if o.journal is not None)
    if stop.signalled:
        code = max(code, EXIT_NOT_APPLIED)  # the rest never ran: no verdict for them
    reports: Mapping[str, Path] = {}
    if journals:
        try:
            from chaosmesh_sec.report import write_reports

            reports = write_reports(journals, run_dir, title=plan.name)
        except Exception as exc:  # noqa: BLE001 - the verdict stands; say the report failed
            console.say(f"game day {plan.name}: could not write the reports: {exc}")
    metrics = metrics_text(plan.name, outcomes, time.time(), code)
    _write_atomically(run_dir / "metrics.prom", metrics)
    _write_atomically(out_root / "metrics.prom", metrics)
    _summary(console, plan, outcomes, code, time.monotonic() - began, run_dir, reports)
    return GamedayResult(code, run_dir, tuple(outcomes), reports, stop.reason)


def _summary(
    console: Console,
    plan: Plan,
    outcomes: Sequence[Outcome],
    code: int,
    seconds: float,
    run_dir: Path,
    reports: Mapping[str, Path],
) -> None:
    console.say("")
    console.say(f"game day {plan.name} ({_elapsed(seconds)}):")
    width = max((len(o.entry.stem) for o in outcomes), default=0)
    for o in outcomes:
        extra = f"  fail-open: {o.fail_open}" if o.fail_open else ""
        duration = "" if o.skipped else f"  {_elapsed(o.seconds)}"
        console.say(f"  {o.entry.stem:<{width}}  {o.status:<11} {o.verdict:<15}{duration}{extra}")
    meaning = MEANINGS[code]
    console.say(f"exit code {code}: {meaning}")
    for name, path in sorted(reports.items()):
        console.say(f"  {name}: {path}")
    console.say(f"  metrics: {run_dir / 'metrics.prom'}")


def main(
    source: Path,
    out_root: Path,
    *,
    yes: bool,
    quiet: bool,
    check_only: bool,
    var_files: Sequence[Path],
    var_pairs: Sequence[str],
    console: Console | None = None,
) -> int:
    """The ``gameday`` command: check the plan (exit 4 on a problem), run it, return the code."""
    console = console or Console()
    try:
        variables = parse_vars(var_pairs)
        checked_var_files = [check_var_file("--var-file", p) for p in var_files]
        plan = load_plan(source)
    except InvalidInput as exc:
        console.say(f"error: the plan is invalid, nothing ran: {exc}")
        return EXIT_PLAN_INVALID
    declared = frozenset().union(*(e.config_keys for e in plan.entries))
    common = set(variables)
    for path in checked_var_files:
        common |= set(_var_file_configuration(path))
    for key in sorted(common - declared):
        console.say(f"warning: no experiment of the plan declares {key!r}: it has no effect")
    if check_only:
        console.say(f"plan {plan.name}: {len(plan.entries)} experiment(s), valid")
        for entry in plan.entries:
            console.say(f"  {entry.stem}  {entry.title}")
        return EXIT_HELD
    result = run_gameday(
        plan,
        out_root,
        yes=yes,
        quiet=quiet,
        var_files=checked_var_files,
        variables=variables,
        console=console,
    )
    return result.code
