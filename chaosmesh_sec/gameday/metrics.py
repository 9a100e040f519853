"""The game day's results as Prometheus metrics (text format 0.0.4), for a textfile collector.

Pure: the outcomes in, the exposition text out (:func:`metrics_text`). The run writes
it as ``metrics.prom`` in its directory and at ``<out>/metrics.prom``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chaosmesh_sec.gameday.verdict import SKIPPED, VERDICTS, Outcome, exit_code

__all__ = ["STATUSES", "metrics_text"]

STATUSES = ("completed", "deviated", "failed", "aborted", "interrupted", SKIPPED)


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
