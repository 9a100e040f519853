"""The game day's plan: a directory of experiments or a plan file, checked before anything runs.

See :mod:`chaosmesh_sec.gameday` for the plan file's format. :func:`load_plan` checks
it whole (every path exists, every experiment loads and passes chaoslib's validation,
every ``vars`` is a mapping of configuration keys the experiment declares, every
var-file parses) and raises :class:`InvalidInput` naming the plan entry at the first
problem. :func:`check_var_file` and :func:`parse_vars` check the command line's
``--var-file`` and ``--var``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_sec.errors import InvalidInput

__all__ = [
    "ABORT_ON",
    "PROMPT",
    "Entry",
    "Plan",
    "check_var_file",
    "load_plan",
    "parse_vars",
    "var_file_configuration",
]

ABORT_ON = ("never", "deviated", "failed")
ROLLBACK_STRATEGIES = ("default", "always", "never", "deviated")
PROMPT = "prompt"
EXPERIMENT_SUFFIXES = (".json", ".yaml", ".yml")
VAR_FILE_SUFFIXES = (".json", ".yaml", ".yml", ".env")
PLAN_KEYS = ("name", "experiments", "abort_on")
ENTRY_KEYS = ("path", "vars", "var_file", "pause_before", "rollback_strategy")

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_VAR_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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


def var_file_configuration(path: Path) -> Mapping[str, Any]:
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
