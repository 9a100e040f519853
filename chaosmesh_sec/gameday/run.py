"""Running a game day: each experiment in a ``chaos run`` of its own, in order, then the reports.

See :mod:`chaosmesh_sec.gameday` for what a run writes, the order values win in, how
``abort_on``, prompts, SIGTERM and Ctrl-C stop it. :func:`main` is the command
(``chaosmesh-sec gameday``); :func:`run_gameday` runs a checked :class:`~.plan.Plan`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal, TextIO

from chaosmesh_sec import _run
from chaosmesh_sec.client import exception_brief
from chaosmesh_sec.errors import ChaosMeshSecError, InvalidInput
from chaosmesh_sec.gameday.lease import held_for, lease_place
from chaosmesh_sec.gameday.metrics import metrics_text
from chaosmesh_sec.gameday.plan import (
    PROMPT,
    Entry,
    Plan,
    check_var_file,
    load_plan,
    parse_vars,
    var_file_configuration,
)
from chaosmesh_sec.gameday.verdict import (
    ABORT_AT,
    EXIT_HELD,
    EXIT_NOT_APPLIED,
    EXIT_PLAN_INVALID,
    MEANINGS,
    Outcome,
    exit_code,
)

__all__ = [
    "CHAOS_ENV",
    "Console",
    "GamedayResult",
    "chaos_command",
    "main",
    "run_directory",
    "run_gameday",
]

GAMEDAY_EXTENSION = "chaosmesh-sec-gameday"
CHAOS_ENV = "CHAOSMESH_SEC_CHAOS"
HEARTBEAT_SECONDS = 30.0


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
    """Make and return ``<out>/<today>-<name>``, or ``-2``, ``-3``... after it when that one
    exists. Each is made without ``exist_ok``: of two game days started at once, each
    gets a directory of its own (the one that loses a name tries the next)."""
    out_root.mkdir(parents=True, exist_ok=True)
    base = out_root / f"{today}-{name}"
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir()
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
            continue
        return candidate


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _write_atomically(path: Path, text: str) -> None:
    """Write `path` whole or not at all, through a temporary file of this write's own (two
    game days writing the same ``metrics.prom`` at once never share one)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the metrics from a collector
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    holder: str,
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
            env = {**os.environ, _run.HOLDER_ENV: holder}  # its safety net joins our lease
            proc = subprocess.Popen(cmd, stdout=output, stderr=output, env=env)
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
    """Run every entry of ``plan`` in order (see :mod:`chaosmesh_sec.gameday`), then report.

    The run Lease is held for the whole game day (:mod:`.lease`); another run holding it
    stops the game day before anything runs (exit 2, no results directory).
    """
    console = console or Console()
    variables = dict(variables or {})
    with contextlib.ExitStack() as stack:
        try:
            namespace, configuration = lease_place(plan, var_files, variables)
        except InvalidInput as exc:
            console.say(f"error: the plan is invalid, nothing ran: {exc}")
            return GamedayResult(EXIT_PLAN_INVALID, out_root, (), {}, "invalid")
        try:
            held = stack.enter_context(held_for(plan, namespace, configuration))
        except ChaosMeshSecError as exc:
            console.say(f"game day {plan.name}: not started: {exception_brief(exc)}")
            return GamedayResult(EXIT_NOT_APPLIED, out_root, (), {}, "refused")
        return _run_plan(
            plan,
            out_root,
            held.identity,
            yes=yes,
            quiet=quiet,
            var_files=var_files,
            variables=variables,
            console=console,
            sleep=sleep,
            today=today,
        )


def _run_plan(
    plan: Plan,
    out_root: Path,
    holder: str,
    *,
    yes: bool,
    quiet: bool,
    var_files: Sequence[Path],
    variables: Mapping[str, Any],
    console: Console,
    sleep: Callable[[float], None],
    today: str | None,
) -> GamedayResult:
    today = today or datetime.now().astimezone().strftime("%Y-%m-%d")
    run_dir = run_directory(out_root, plan.name, today)
    total = len(plan.entries)
    threshold = ABORT_AT[plan.abort_on]
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
                holder=holder,
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
        common |= set(var_file_configuration(path))
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
