"""``chaosmesh-sec gameday``: plan checks, order, the exit-code table, metrics, and whole
game days run against a stand-in ``chaos`` that writes canned journals (no cluster)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import signal
import stat
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import chaosmesh_sec.report
from chaosmesh_sec import gameday as gd
from chaosmesh_sec.cli import main as cli_main
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.gameday import run as gd_run
from chaosmesh_sec.gameday import verdict as gd_verdict

# ---------------------------------------------------------------- experiments and journals


def experiment(title: str = "an experiment", **configuration: Any) -> dict[str, Any]:
    """A minimal experiment chaoslib validates (its probe is ``os.path.exists('/')``)."""
    return {
        "version": "1.0.0",
        "title": title,
        "description": "for the game day tests",
        "configuration": configuration or {"target": "a", "count": 1},
        "method": [
            {
                "type": "probe",
                "name": "root-exists",
                "provider": {
                    "type": "python",
                    "module": "os.path",
                    "func": "exists",
                    "arguments": {"path": "/"},
                },
            }
        ],
    }


def write_experiment(path: Path, **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(experiment(**kwargs)))
    return path


def run_record(
    status: str = "succeeded",
    kind: str = "action",
    func: str = "do_it",
    output: Any = None,
    exception: str = "",
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "activity": {
            "type": kind,
            "name": func,
            "provider": {"type": "python", "module": "chaosmesh_sec.x", "func": func},
        },
        "status": status,
        "output": output,
    }
    if exception:
        record["exception"] = [f"{exception}\n"]
    return record


def matrix_output(*fail_open: bool) -> dict[str, Any]:
    return {
        "holds": not any(fail_open),
        "cells": [
            {"source": "a", "destination": f"d{i}", "fail_open": bad}
            for i, bad in enumerate(fail_open)
        ],
    }


def journal(
    status: str = "completed",
    deviated: bool = False,
    before_met: bool | None = True,
    method: list[dict[str, Any]] | None = None,
    rollbacks: list[dict[str, Any]] | None = None,
    after: list[dict[str, Any]] | None = None,
    extensions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    j: dict[str, Any] = {
        "experiment": {"title": "t"},
        "status": status,
        "deviated": deviated,
        "steady_states": {
            "before": None
            if before_met is None
            else {"steady_state_met": before_met, "probes": [run_record(kind="probe")]},
            "after": None if after is None else {"steady_state_met": True, "probes": after},
            "during": [],
        },
        "run": [run_record()] if method is None else method,
        "rollbacks": rollbacks or [],
    }
    if extensions is not None:
        j["extensions"] = extensions
    return j


HELD = journal()
DEVIATED = journal(deviated=True)
NOT_APPLIED = journal(
    method=[run_record("failed", exception="chaosmesh_sec.errors.FaultNotApplied: no pod")]
)
ROLLBACK_FAILED = journal(rollbacks=[run_record("failed", exception="ActivityFailed: nope")])


# ---------------------------------------------------------------- the exit-code table

EXIT_TABLE: list[tuple[str, dict[str, Any], int]] = [
    ("held", HELD, 0),
    ("no steady state, nothing failed", journal(before_met=None), 0),
    ("after-hypothesis deviated", DEVIATED, 1),
    (
        "fail-open cell in the after hypothesis",
        journal(
            after=[run_record(kind="probe", func="identity_matrix", output=matrix_output(True))]
        ),
        1,
    ),
    (
        "fail-open cell in a method probe",
        journal(
            method=[
                run_record(kind="probe", func="identity_matrix", output=matrix_output(False, True))
            ]
        ),
        1,
    ),
    (
        "FailOpen raised by a method probe",
        journal(
            method=[
                run_record(
                    "failed",
                    kind="probe",
                    func="identity_matrix",
                    exception="chaosmesh_sec.errors.FailOpen: fail-open cells in m: a -> b",
                )
            ]
        ),
        1,
    ),
    (
        "a matrix cell that held is not a fail-open",
        journal(
            method=[run_record(kind="probe", func="identity_matrix", output=matrix_output(False))]
        ),
        0,
    ),
    ("FaultNotApplied in the method", NOT_APPLIED, 2),
    (
        "InvalidInput in a method probe",
        journal(
            method=[
                run_record("failed", kind="probe", exception="chaosmesh_sec.errors.InvalidInput: x")
            ]
        ),
        2,
    ),
    (
        "ClusterUnreachable in a method probe",
        journal(
            method=[
                run_record(
                    "failed", kind="probe", exception="chaosmesh_sec.errors.ClusterUnreachable: x"
                )
            ]
        ),
        2,
    ),
    (
        "a method action failed for another reason (e.g. 403)",
        journal(
            method=[
                run_record(
                    "failed", exception="chaosmesh_sec.errors.ChaosMeshSecError: API error 403"
                )
            ]
        ),
        2,
    ),
    (
        "a method probe failed for another reason: not a fault",
        journal(method=[run_record("failed", kind="probe", exception="ActivityFailed: boom")]),
        0,
    ),
    (
        "steady state failed before the method (probe raised)",
        journal(status="failed", before_met=False, method=[]),
        2,
    ),
    (
        "steady state not met before the method (tolerance), status completed",
        journal(status="completed", before_met=False, method=[]),
        2,
    ),
    ("aborted before the method", journal(status="aborted", method=[]), 2),
    ("aborted during the method", journal(status="aborted"), 2),
    ("interrupted (SIGTERM)", journal(status="interrupted"), 2),
    ("a rollback failed", ROLLBACK_FAILED, 3),
    (
        "the safety net recorded an error",
        journal(extensions=[{"name": "chaosmesh-sec-safety-net", "error": "RollbackFailed: x"}]),
        3,
    ),
    (
        "the safety net healed without error",
        journal(
            extensions=[{"name": "chaosmesh-sec-safety-net", "healed": {"nothing_left": True}}]
        ),
        0,
    ),
    (
        "RollbackFailed from a heal in the method",
        journal(
            method=[run_record("failed", exception="chaosmesh_sec.errors.RollbackFailed: 2 rules")]
        ),
        3,
    ),
    ("deviated and a rollback failed: the highest wins", {**ROLLBACK_FAILED, "deviated": True}, 3),
    (
        "not applied and deviated: the highest wins",
        {**NOT_APPLIED, "deviated": True},
        2,
    ),
]


@pytest.mark.parametrize(
    ("journal_", "expected"),
    [(j, code) for _, j, code in EXIT_TABLE],
    ids=[name for name, _, _ in EXIT_TABLE],
)
def test_journal_exit_code(journal_: dict[str, Any], expected: int) -> None:
    assert gd.journal_exit_code(journal_) == expected
    assert gd.exit_code([journal_]) == expected


@pytest.mark.parametrize(
    ("journals", "expected"),
    [
        ([], 0),
        ([HELD, HELD], 0),
        ([HELD, DEVIATED, HELD], 1),
        ([DEVIATED, NOT_APPLIED], 2),
        ([ROLLBACK_FAILED, NOT_APPLIED, DEVIATED, HELD], 3),
    ],
)
def test_exit_code_is_the_highest(journals: list[dict[str, Any]], expected: int) -> None:
    assert gd.exit_code(journals) == expected


def test_exit_code_constants_are_the_documented_table() -> None:
    assert (gd.EXIT_HELD, gd.EXIT_DEVIATED, gd.EXIT_NOT_APPLIED) == (0, 1, 2)
    assert (gd.EXIT_ROLLBACK_FAILED, gd.EXIT_PLAN_INVALID) == (3, 4)
    doc = gd.__doc__ or ""
    for code in range(5):
        assert re.search(rf"^\s+{code}  \S", doc, re.M), f"exit code {code} not documented"


def test_fail_open_cells_counted_everywhere() -> None:
    j = journal(
        after=[run_record(kind="probe", func="identity_matrix", output=matrix_output(True, True))],
        method=[
            run_record(kind="probe", func="identity_matrix", output=matrix_output(False, True)),
            run_record(
                "failed",
                kind="probe",
                func="identity_matrix",
                exception="chaosmesh_sec.errors.FailOpen: fail-open cells in wrong-identity: "
                "sleep-v2 -> helloworld-v1, sleep-v1 -> helloworld-v2",
            ),
            # not a matrix: its fail_open field is not counted
            run_record(kind="probe", func="other", output=matrix_output(True)),
        ],
    )
    j["steady_states"]["during"] = [
        {"probes": [run_record(kind="probe", func="identity_matrix", output=matrix_output(True))]}
    ]
    assert gd.fail_open_cells(j) == 2 + 1 + 2 + 1


# ---------------------------------------------------------------- metrics

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_exposition(
    text: str,
) -> tuple[dict[str, tuple[str, str]], list[tuple[str, dict[str, str], float]]]:
    """Families (name -> (type, help)) and samples; fails on anything out of place."""
    families: dict[str, tuple[str, str]] = {}
    helps: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP ") :].partition(" ")
            assert name not in helps, f"HELP twice for {name}"
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[len("# TYPE ") :].partition(" ")
            assert kind in ("gauge", "counter"), line
            assert name in helps, f"TYPE before HELP for {name}"
            assert name not in families, f"TYPE twice for {name}"
            families[name] = (kind, helps[name])
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, raw_labels, value = m.groups()
            assert name in families, f"sample before its TYPE: {line!r}"
            labels: dict[str, str] = {}
            pos = 0
            while pos < len(raw_labels):
                lm = LABEL.match(raw_labels, pos)
                assert lm, f"bad labels in {line!r} at {raw_labels[pos:]!r}"
                labels[lm.group(1)] = re.sub(
                    r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), lm.group(2)
                )
                pos = lm.end()
            samples.append((name, labels, float(value)))
    # a family's samples are contiguous, right after its TYPE line
    order = [s[0] for s in samples]
    for name in families:
        idx = [i for i, n in enumerate(order) if n == name]
        assert idx == list(range(idx[0], idx[0] + len(idx))) if idx else True
    return families, samples


def outcome(index: int, name: str, j: dict[str, Any] | None, seconds: float = 1.5) -> gd.Outcome:
    entry = gd.Entry(index, Path(f"/x/{name}.json"), f"title {name}")
    return gd.Outcome(entry, None if j is None else Path(f"/r/{index}.json"), j, seconds)


def test_metrics_text_parses_and_says_what_happened() -> None:
    outcomes = [
        outcome(1, "smoke", HELD),
        outcome(
            2,
            "wrong-identity",
            journal(
                deviated=True,
                after=[
                    run_record(
                        kind="probe", func="identity_matrix", output=matrix_output(True, True)
                    )
                ],
            ),
        ),
        outcome(3, "istiod-kill", NOT_APPLIED),
        outcome(4, "cni-restart", None),
    ]
    families, samples = parse_exposition(gd.metrics_text("nightly", outcomes, 1700000000.25))
    assert set(families) == {
        "chaosmesh_sec_experiment_status",
        "chaosmesh_sec_experiment_exit_code",
        "chaosmesh_sec_fail_open_cells",
        "chaosmesh_sec_experiment_duration_seconds",
        "chaosmesh_sec_gameday_experiments_total",
        "chaosmesh_sec_gameday_exit_code",
        "chaosmesh_sec_gameday_last_run_timestamp_seconds",
    }
    assert all(kind == "gauge" and help_ for kind, help_ in families.values())

    def values(name: str, **match: str) -> list[float]:
        return [
            v
            for n, labels, v in samples
            if n == name and all(labels.get(k) == x for k, x in match.items())
        ]

    status = {
        (labels["experiment"], labels["status"]): v
        for n, labels, v in samples
        if n == "chaosmesh_sec_experiment_status"
    }
    assert status[("smoke", "completed")] == 1
    assert status[("wrong-identity", "deviated")] == 1
    assert status[("istiod-kill", "completed")] == 1
    assert status[("cni-restart", "skipped")] == 1
    # exactly one status per experiment is 1
    for name in ("smoke", "wrong-identity", "istiod-kill", "cni-restart"):
        assert sum(v for (e, _), v in status.items() if e == name) == 1
    assert values("chaosmesh_sec_fail_open_cells", experiment="wrong-identity") == [2]
    assert values("chaosmesh_sec_fail_open_cells", experiment="smoke") == [0]
    assert values("chaosmesh_sec_fail_open_cells", experiment="cni-restart") == []
    assert values("chaosmesh_sec_experiment_exit_code", experiment="istiod-kill") == [2]
    totals = {
        labels["verdict"]: v
        for n, labels, v in samples
        if n == "chaosmesh_sec_gameday_experiments_total"
    }
    assert totals == {
        "held": 1,
        "deviated": 1,
        "not_applied": 1,
        "rollback_failed": 0,
        "skipped": 1,
    }
    assert values("chaosmesh_sec_gameday_exit_code", gameday="nightly") == [2]
    assert values("chaosmesh_sec_gameday_last_run_timestamp_seconds") == [1700000000.25]
    assert values("chaosmesh_sec_experiment_duration_seconds", experiment="smoke") == [1.5]
    assert {labels["index"] for _, labels, _ in samples if "index" in labels} == {
        "01",
        "02",
        "03",
        "04",
    }


def test_metrics_label_values_are_escaped() -> None:
    tricky = 'a "quoted"\\back\nslash'
    text = gd.metrics_text(tricky, [outcome(1, "smoke", HELD)], 1.0)
    assert '"a \\"quoted\\"\\\\back\\nslash"' in text
    assert "\nslash" not in text  # no raw newline inside a label value
    _, samples = parse_exposition(text)
    assert {labels["gameday"] for _, labels, _ in samples} == {tricky}


# ---------------------------------------------------------------- plan checks


@pytest.fixture
def exps(tmp_path: Path) -> Path:
    """A directory with three valid experiments (deliberately created out of order)."""
    d = tmp_path / "exps"
    for name in ("c-third", "a-first", "b-second"):
        write_experiment(d / f"{name}.json", title=name)
    (d / "notes.txt").write_text("not an experiment")
    return d


def write_plan(tmp_path: Path, plan: Any) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan))
    return path


def test_directory_runs_in_name_order(exps: Path) -> None:
    plan = gd.load_plan(exps)
    assert [e.path.name for e in plan.entries] == ["a-first.json", "b-second.json", "c-third.json"]
    assert [e.stem for e in plan.entries] == ["01-a-first", "02-b-second", "03-c-third"]
    assert [e.title for e in plan.entries] == ["a-first", "b-second", "c-third"]
    assert plan.name == "exps" and plan.abort_on == "never"


def test_plan_keeps_its_own_order_and_settings(tmp_path: Path, exps: Path) -> None:
    (tmp_path / "vars.yaml").write_text("configuration: {target: b}\n")
    path = write_plan(
        tmp_path,
        {
            "name": "Q3 game day!",
            "abort_on": "deviated",
            "experiments": [
                {"path": "exps/c-third.json", "pause_before": "prompt"},
                {
                    "path": str(exps / "a-first.json"),
                    "vars": {"count": 3},
                    "var_file": "vars.yaml",
                    "pause_before": 2.5,
                    "rollback_strategy": "always",
                },
                "exps/c-third.json",
            ],
        },
    )
    plan = gd.load_plan(path)
    assert plan.name == "Q3-game-day"
    assert plan.abort_on == "deviated"
    assert [e.stem for e in plan.entries] == ["01-c-third", "02-a-first", "03-c-third"]
    second = plan.entries[1]
    assert second.vars == {"count": 3}
    assert second.var_file == tmp_path / "vars.yaml"
    assert second.pause_before == 2.5
    assert second.rollback_strategy == "always"
    assert plan.entries[0].pause_before == "prompt"


def _bad_experiment(tmp_path: Path) -> str:
    bad = experiment()
    del bad["title"]
    (tmp_path / "exps" / "bad.json").write_text(json.dumps(bad))
    return "exps/bad.json"


PLAN_ERRORS: list[tuple[str, Callable[[Path], Any], str]] = [
    ("not a mapping", lambda t: "- a\n- b\n", "must be a mapping"),
    ("not YAML", lambda t: "name: [unclosed\n", "not readable YAML"),
    ("no name", lambda t: {"experiments": ["exps/a-first.json"]}, "'name'"),
    (
        "unknown key",
        lambda t: {"name": "x", "experiments": ["exps/a-first.json"], "abort": "x"},
        "unknown key",
    ),
    (
        "bad abort_on",
        lambda t: {"name": "x", "experiments": ["exps/a-first.json"], "abort_on": "sometimes"},
        "'abort_on'",
    ),
    ("no experiments", lambda t: {"name": "x", "experiments": []}, "'experiments'"),
    ("entry not a mapping", lambda t: {"name": "x", "experiments": [3]}, "'experiments[1]'"),
    (
        "entry without path",
        lambda t: {"name": "x", "experiments": [{"vars": {}}]},
        "experiments[1].path",
    ),
    (
        "path does not exist",
        lambda t: {"name": "x", "experiments": ["exps/a-first.json", "exps/nope.json"]},
        "experiments[2] (exps/nope.json).path",
    ),
    (
        "unknown entry key",
        lambda t: {"name": "x", "experiments": [{"path": "exps/a-first.json", "var": {}}]},
        "experiments[1] (exps/a-first.json)",
    ),
    (
        "vars not a mapping",
        lambda t: {"name": "x", "experiments": [{"path": "exps/a-first.json", "vars": ["a=1"]}]},
        "experiments[1] (exps/a-first.json).vars",
    ),
    (
        "vars not in the experiment's configuration",
        lambda t: {
            "name": "x",
            "experiments": [{"path": "exps/a-first.json", "vars": {"fault_namespace": "f"}}],
        },
        "not in a-first.json's configuration",
    ),
    (
        "pause_before a word",
        lambda t: {
            "name": "x",
            "experiments": [{"path": "exps/a-first.json", "pause_before": "later"}],
        },
        "pause_before",
    ),
    (
        "pause_before negative",
        lambda t: {"name": "x", "experiments": [{"path": "exps/a-first.json", "pause_before": -1}]},
        "pause_before",
    ),
    (
        "pause_before a boolean",
        lambda t: {
            "name": "x",
            "experiments": [{"path": "exps/a-first.json", "pause_before": True}],
        },
        "pause_before",
    ),
    (
        "bad rollback_strategy",
        lambda t: {
            "name": "x",
            "experiments": [{"path": "exps/a-first.json", "rollback_strategy": "sometimes"}],
        },
        "rollback_strategy",
    ),
    (
        "var_file missing",
        lambda t: {
            "name": "x",
            "experiments": [{"path": "exps/a-first.json", "var_file": "nope.yaml"}],
        },
        "experiments[1] (exps/a-first.json).var_file",
    ),
    (
        "invalid experiment",
        lambda t: {"name": "x", "experiments": ["exps/a-first.json", _bad_experiment(t)]},
        "experiments[2] (exps/bad.json)",
    ),
]


@pytest.mark.parametrize(
    ("make", "message"), [(m, msg) for _, m, msg in PLAN_ERRORS], ids=[n for n, _, _ in PLAN_ERRORS]
)
def test_plan_errors_name_the_entry(
    tmp_path: Path, exps: Path, make: Callable[[Path], Any], message: str
) -> None:
    path = write_plan(tmp_path, make(tmp_path))
    with pytest.raises(InvalidInput) as err:
        gd.load_plan(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("[1, 2]", ".json", "must be a mapping"),
        ("{bad json", ".json", "does not parse"),
        ("configuration: [a]\n", ".yaml", "configuration must be a mapping"),
        ("config: {a: 1}\n", ".yaml", "unknown key"),
        ("A=1\nnot a pair\n", ".env", "line(s) [2]"),
        ("a: 1\n", ".txt", "a var-file is"),
    ],
)
def test_var_file_checks(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    path = tmp_path / f"vars{suffix}"
    path.write_text(content)
    with pytest.raises(InvalidInput) as err:
        gd.check_var_file("--var-file", path)
    assert message in str(err.value)


def test_directory_without_experiments(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="holds no"):
        gd.load_plan(tmp_path)


def test_parse_vars_keeps_json_types() -> None:
    assert gd.parse_vars(
        ["n=30", "flag=true", "name=sleep-v1", "ratio=0.5", "word=no", "list=[1]"]
    ) == {
        "n": 30,
        "flag": True,
        "name": "sleep-v1",
        "ratio": 0.5,
        "word": "no",
        "list": "[1]",
    }
    with pytest.raises(InvalidInput, match="--var"):
        gd.parse_vars(["novalue"])


# ---------------------------------------------------------------- a stand-in chaos

FAKE_CHAOS = """#!{python}
# a stand-in `chaos run`: copies a canned journal, records how it was called
import json, os, sys
from chaoslib import merge_vars

args = sys.argv[1:]
assert args[:1] == ["--no-version-check"], args
journal = args[args.index("--journal-path") + 1]
var_files = [args[i + 1] for i, a in enumerate(args) if a == "--var-file"]
strategy = args[args.index("--rollback-strategy") + 1] if "--rollback-strategy" in args else None
experiment = args[-1]
stem = os.path.splitext(os.path.basename(experiment))[0]
canned = os.path.join(os.environ["FAKE_JOURNALS"], stem + ".json")
calls = os.environ["FAKE_CALLS"]
config, _ = merge_vars(None, var_files)
with open(calls, "a") as f:
    f.write(json.dumps({{"experiment": stem, "pid": os.getpid(), "config": config,
                        "rollback_strategy": strategy, "argv": args}}) + "\\n")
if os.environ.get("FAKE_SLEEP"):  # wait to be stopped: SIGTERM makes an interrupted run
    import signal, time

    def interrupted(signum, frame):
        with open(journal, "w") as f:
            json.dump({{"status": "interrupted", "deviated": False, "run": [], "rollbacks": []}}, f)
        sys.exit(1)

    signal.signal(signal.SIGTERM, interrupted)
    open(os.environ["FAKE_SLEEP"], "w").close()
    time.sleep(60)
if not os.path.exists(canned):
    print("no canned journal for", stem, file=sys.stderr)
    sys.exit(1)
with open(canned) as f:
    data = json.load(f)
with open(journal, "w") as f:
    json.dump(data, f)
sys.exit(0 if data.get("status") == "completed" and not data.get("deviated") else 1)
"""


class Fake:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.journals = root / "canned"
        self.journals.mkdir()
        self.calls_file = root / "calls.jsonl"
        bin_dir = root / "bin"
        bin_dir.mkdir()
        chaos = bin_dir / "chaos"
        chaos.write_text(FAKE_CHAOS.format(python=sys.executable))
        chaos.chmod(chaos.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        # the pack prefers the chaos beside its own Python: point it at the stand-in
        monkeypatch.setenv(gd_run.CHAOS_ENV, str(chaos))
        monkeypatch.setenv("FAKE_JOURNALS", str(self.journals))
        monkeypatch.setenv("FAKE_CALLS", str(self.calls_file))
        self.reports: list[tuple[list[Path], Path, str]] = []

        def write_reports(journals: Any, out_dir: Path, title: str = "") -> dict[str, Path]:
            self.reports.append((list(journals), out_dir, title))
            for name in ("report.html", "report.md", "junit.xml"):
                (out_dir / name).write_text("stub")
            return {"html": out_dir / "report.html", "markdown": out_dir / "report.md",
                    "junit": out_dir / "junit.xml"}  # fmt: skip

        monkeypatch.setattr(chaosmesh_sec.report, "write_reports", write_reports, raising=False)
        self.leases: list[str] = []

        @contextlib.contextmanager
        def held_for(plan: Any, namespace: str, configuration: Any) -> Iterator[Any]:
            # Where this fake stops: the run Lease (no cluster in the unit tier; the real
            # one is tested against the lab in tests/integration/test_run_lease.py).
            self.leases.append(namespace)
            yield types.SimpleNamespace(identity="fake-holder")

        monkeypatch.setattr(gd_run, "held_for", held_for)

    def can(self, stem: str, j: dict[str, Any]) -> None:
        (self.journals / f"{stem}.json").write_text(json.dumps(j))

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    return Fake(tmp_path, monkeypatch)


def quiet_console(answers: str = "", interactive: bool = False) -> gd.Console:
    return gd.Console(out=io.StringIO(), stdin=io.StringIO(answers), interactive=interactive)


def test_chaos_command_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(gd_run.CHAOS_ENV, "/opt/x/chaos")
    assert gd_run.chaos_command() == ["/opt/x/chaos"]
    monkeypatch.delenv(gd_run.CHAOS_ENV)
    assert gd_run.chaos_command() == [str(Path(sys.executable).parent / "chaos")]
    # no chaos beside the interpreter: the first on PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "chaos").write_text("#!/bin/sh\n")
    (bin_dir / "chaos").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(bin_dir))
    assert gd_run.chaos_command() == [str(bin_dir / "chaos")]


def test_whole_game_day_with_a_stand_in_chaos(fake: Fake, exps: Path, tmp_path: Path) -> None:
    fake.can("a-first", HELD)
    deviated = journal(
        deviated=True,
        after=[run_record(kind="probe", func="identity_matrix", output=matrix_output(True))],
    )
    fake.can("b-second", deviated)
    fake.can("c-third", HELD)
    out = tmp_path / "results"
    result = CliRunner().invoke(
        cli_main, ["gameday", str(exps), "--out", str(out), "--yes", "--quiet"]
    )
    assert result.exit_code == 1, result.output
    runs = [d for d in out.iterdir() if d.is_dir()]
    assert len(runs) == 1
    run_dir = runs[0]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-exps", run_dir.name)
    assert sorted(p.name for p in run_dir.glob("*.json")) == [
        "01-a-first.json",
        "02-b-second.json",
        "03-c-third.json",
    ]
    assert json.loads((run_dir / "02-b-second.json").read_text())["deviated"] is True
    # one process per experiment, in order: no module state shared between them
    calls = fake.calls()
    assert [c["experiment"] for c in calls] == ["a-first", "b-second", "c-third"]
    assert len({c["pid"] for c in calls}) == 3
    # the reports over every journal, into the same directory
    assert fake.reports == [
        (
            [
                run_dir / "01-a-first.json",
                run_dir / "02-b-second.json",
                run_dir / "03-c-third.json",
            ],
            run_dir,
            "exps",
        )
    ]
    metrics = (run_dir / "metrics.prom").read_text()
    assert (out / "metrics.prom").read_text() == metrics
    _, samples = parse_exposition(metrics)
    fail_open = {
        labels["experiment"]: v for n, labels, v in samples if n == "chaosmesh_sec_fail_open_cells"
    }
    assert fail_open == {"a-first": 0, "b-second": 1, "c-third": 0}
    assert (
        "[2/3] b-second.json: deviated -> deviated (exit 1), 1 fail-open cell(s)" in result.output
    )
    assert "exit code 1: a hypothesis deviated" in result.output


def test_a_second_run_the_same_day_gets_its_own_directory(
    fake: Fake, exps: Path, tmp_path: Path
) -> None:
    for stem in ("a-first", "b-second", "c-third"):
        fake.can(stem, HELD)
    plan = gd.load_plan(exps)
    first = gd.run_gameday(
        plan, tmp_path / "r", yes=True, quiet=True, console=quiet_console(), today="2030-01-02"
    )
    second = gd.run_gameday(
        plan, tmp_path / "r", yes=True, quiet=True, console=quiet_console(), today="2030-01-02"
    )
    assert first.code == second.code == 0
    assert first.run_dir.name == "2030-01-02-exps"
    assert second.run_dir.name == "2030-01-02-exps-2"


def test_a_write_never_takes_another_game_day_s_temporary_file(tmp_path: Path) -> None:
    """Two game days writing ``<out>/metrics.prom`` at once: each through its own file."""
    path = tmp_path / "metrics.prom"
    theirs = tmp_path / ".metrics.prom.tmp"  # another game day's write, half done
    theirs.write_text("# theirs, half written")
    gd_run._write_atomically(path, "# mine\n")
    assert path.read_text() == "# mine\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert theirs.read_text() == "# theirs, half written"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".metrics.prom.tmp", "metrics.prom"]


def test_abort_on_deviated_stops_the_plan(fake: Fake, exps: Path, tmp_path: Path) -> None:
    fake.can("a-first", DEVIATED)
    fake.can("b-second", HELD)
    plan = write_plan(
        tmp_path,
        {
            "name": "strict",
            "abort_on": "deviated",
            "experiments": ["exps/a-first.json", "exps/b-second.json"],
        },
    )
    result = gd.run_gameday(
        gd.load_plan(plan), tmp_path / "r", yes=True, quiet=True, console=quiet_console()
    )
    assert result.code == 1
    assert [c["experiment"] for c in fake.calls()] == ["a-first"]
    assert [o.status for o in result.outcomes] == ["deviated", "skipped"]
    assert result.stopped and "abort_on deviated" in result.stopped


def test_abort_on_failed_ignores_a_deviation(fake: Fake, exps: Path, tmp_path: Path) -> None:
    fake.can("a-first", DEVIATED)
    fake.can("b-second", NOT_APPLIED)
    fake.can("c-third", HELD)
    plan = write_plan(
        tmp_path,
        {
            "name": "lenient",
            "abort_on": "failed",
            "experiments": ["exps/a-first.json", "exps/b-second.json", "exps/c-third.json"],
        },
    )
    result = gd.run_gameday(
        gd.load_plan(plan), tmp_path / "r", yes=True, quiet=True, console=quiet_console()
    )
    assert result.code == 2
    assert [c["experiment"] for c in fake.calls()] == ["a-first", "b-second"]


def test_no_journal_counts_as_not_applied(fake: Fake, exps: Path, tmp_path: Path) -> None:
    fake.can("a-first", HELD)
    fake.can("c-third", ROLLBACK_FAILED)  # b-second has none: the stand-in exits 1 without one
    result = gd.run_gameday(
        gd.load_plan(exps), tmp_path / "r", yes=True, quiet=True, console=quiet_console()
    )
    assert [o.code for o in result.outcomes] == [0, 2, 3]
    assert result.code == 3
    synthetic = json.loads((result.run_dir / "02-b-second.json").read_text())
    assert synthetic["status"] == "aborted"
    assert synthetic["experiment"]["title"] == "b-second"
    assert "chaos wrote no journal" in synthetic["extensions"][0]["error"]
    assert (result.run_dir / "02-b-second.out").read_text().startswith("no canned journal")


def test_values_last_wins(fake: Fake, exps: Path, tmp_path: Path) -> None:
    fake.can("a-first", HELD)
    common = tmp_path / "common.yaml"
    common.write_text("configuration: {target: common, count: 1, extra: common}\n")
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"configuration": {"target": "own", "count": 2}}))
    plan = write_plan(
        tmp_path,
        {
            "name": "vars",
            "experiments": [
                {
                    "path": "exps/a-first.json",
                    "var_file": "own.json",
                    "vars": {"count": 3},
                    "rollback_strategy": "never",
                }
            ],
        },
    )
    gd.run_gameday(
        gd.load_plan(plan),
        tmp_path / "r",
        yes=True,
        quiet=True,
        var_files=[common],
        variables={"extra": "cli"},
        console=quiet_console(),
    )
    (call,) = fake.calls()
    assert call["config"] == {"target": "own", "count": 3, "extra": "cli"}
    assert call["rollback_strategy"] == "never"


def test_prompts_skip_stop_and_yes(fake: Fake, exps: Path, tmp_path: Path) -> None:
    for stem in ("a-first", "b-second", "c-third"):
        fake.can(stem, HELD)
    plan = write_plan(
        tmp_path,
        {
            "name": "room",
            "experiments": [
                {"path": f"exps/{s}.json", "pause_before": "prompt"}
                for s in ("a-first", "b-second", "c-third")
            ],
        },
    )
    loaded = gd.load_plan(plan)
    # run the first, skip the second, stop at the third
    console = quiet_console("\ns\nq\n", interactive=True)
    result = gd.run_gameday(loaded, tmp_path / "r1", quiet=True, console=console)
    assert [c["experiment"] for c in fake.calls()] == ["a-first"]
    assert [o.status for o in result.outcomes] == ["completed", "skipped", "skipped"]
    assert "Enter to run it" in console.out.getvalue()  # type: ignore[attr-defined]
    assert result.stopped == "stopped at the prompt before 03-c-third"
    # --yes: no question asked
    console = quiet_console("", interactive=True)
    gd.run_gameday(loaded, tmp_path / "r2", yes=True, quiet=True, console=console)
    assert "Enter to run it" not in console.out.getvalue()  # type: ignore[attr-defined]
    # not a terminal: not waiting, said so
    console = quiet_console("", interactive=False)
    gd.run_gameday(loaded, tmp_path / "r3", quiet=True, console=console)
    assert "stdin is not a terminal" in console.out.getvalue()  # type: ignore[attr-defined]
    assert len(fake.calls()) == 1 + 3 + 3


def test_pause_seconds_sleeps(fake: Fake, exps: Path, tmp_path: Path) -> None:
    fake.can("a-first", HELD)
    plan = write_plan(
        tmp_path, {"name": "p", "experiments": [{"path": "exps/a-first.json", "pause_before": 7}]}
    )
    slept: list[float] = []
    gd.run_gameday(
        gd.load_plan(plan), tmp_path / "r", quiet=True, console=quiet_console(), sleep=slept.append
    )
    assert slept == [7.0]


def test_invalid_plan_exits_4_and_runs_nothing(fake: Fake, exps: Path, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path, {"name": "x", "experiments": ["exps/a-first.json", "exps/missing.json"]}
    )
    out = tmp_path / "r"
    result = CliRunner().invoke(cli_main, ["gameday", str(plan), "--out", str(out), "--yes"])
    assert result.exit_code == 4, result.output
    assert "experiments[2] (exps/missing.json).path" in result.output
    assert not out.exists()
    assert fake.calls() == []


@pytest.mark.parametrize(
    "args",
    [
        ["--var", "novalue"],
        ["--var-file", "/nonexistent/vars.yaml"],
        ["--no-such-option"],
    ],
)
def test_bad_command_line_exits_4(fake: Fake, exps: Path, tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(
        cli_main, ["gameday", str(exps), "--out", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 4, result.output
    assert fake.calls() == []


def test_values_no_experiment_declares_are_warned_about(exps: Path, tmp_path: Path) -> None:
    var_file = tmp_path / "cluster.yaml"
    var_file.write_text("configuration: {target: x, fault_namespace: f}\n")
    result = CliRunner().invoke(
        cli_main,
        [
            "gameday",
            str(exps),
            "--check",
            "--var-file",
            str(var_file),
            "--var",
            "typo=1",
            "--var",
            "count=2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no experiment of the plan declares 'fault_namespace'" in result.output
    assert "no experiment of the plan declares 'typo'" in result.output
    assert "'target'" not in result.output and "'count'" not in result.output


def test_check_only_validates(exps: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_main, ["gameday", str(exps), "--check", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "3 experiment(s), valid" in result.output
    assert not (tmp_path / "r").exists()


def test_report_failure_does_not_change_the_verdict(
    fake: Fake, exps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for stem in ("a-first", "b-second", "c-third"):
        fake.can(stem, copy.deepcopy(HELD))

    def broken(*args: Any, **kwargs: Any) -> dict[str, Path]:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(chaosmesh_sec.report, "write_reports", broken, raising=False)
    console = quiet_console()
    result = gd.run_gameday(
        gd.load_plan(exps), tmp_path / "r", yes=True, quiet=True, console=console
    )
    assert result.code == 0
    assert "could not write the reports: renderer broke" in console.out.getvalue()  # type: ignore[attr-defined]
    assert (result.run_dir / "metrics.prom").is_file()


def test_shipped_experiments_form_a_valid_plan() -> None:
    root = Path(__file__).resolve().parents[2]
    plan = gd.load_plan(root / "experiments")
    assert [e.path.name for e in plan.entries] == sorted(
        p.name for p in (root / "experiments").glob("*.json")
    )


def test_sigterm_stops_the_game_day_after_the_running_experiment(
    fake: Fake, exps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = tmp_path / "started"
    monkeypatch.setenv("FAKE_SLEEP", str(started))

    def terminate_once_started() -> None:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # as the kubelet stops the Job's pod

    threading.Thread(target=terminate_once_started, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    result = gd.run_gameday(
        gd.load_plan(exps), tmp_path / "r", yes=True, quiet=True, console=quiet_console()
    )
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
    assert [c["experiment"] for c in fake.calls()] == ["a-first"]
    assert [o.status for o in result.outcomes] == ["interrupted", "skipped", "skipped"]
    assert result.stopped == "stopped by SIGTERM"
    assert result.code == 2
    _, samples = parse_exposition((result.run_dir / "metrics.prom").read_text())
    assert [v for n, _, v in samples if n == "chaosmesh_sec_gameday_exit_code"] == [2]


def test_names_shared_with_the_pack_agree() -> None:
    from chaosmesh_sec import errors, journal
    from chaosmesh_sec.controls.safety_net import SAFETY_NET_EXTENSION as EXTENSION
    from chaosmesh_sec.probes.matrix import identity_matrix

    assert journal.SAFETY_NET_EXTENSION == EXTENSION
    assert identity_matrix.__name__ == journal.MATRIX_FUNC
    names = (*gd_verdict.NOT_APPLIED_ERRORS, gd_verdict.ROLLBACK_ERROR, journal.FAIL_OPEN_ERROR)
    for name in names:
        assert issubclass(getattr(errors, name), errors.ChaosMeshSecError)
