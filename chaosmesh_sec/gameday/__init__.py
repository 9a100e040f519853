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
       start) or stopped before its verdict (aborted, interrupted); or its scenario
       was not reproduced (an activity said ``not reproduced``: nothing was tested;
       the entry's verdict is ``not_reproduced``)
    3  a rollback failed: a rollback activity failed, an activity raised
       RollbackFailed, or the safety net recorded an error (something may be left
       in the cluster: run ``chaosmesh-sec rollback``)
    4  the plan is invalid: nothing ran (command-line usage errors too)

The game day holds the cluster's run Lease for its whole length (:mod:`.lease`): its
``chaos run`` children join it, any other run is refused while it lasts. A game day
that finds the Lease held by another run does not start (exit 2, the holder named);
fault namespaces the entries disagree on make the plan invalid (exit 4). Each game day
gets a results directory of its own, even when two start at once.

A game day stopped by SIGTERM or Ctrl-C exits at least 2: the running experiment
ends as chaos ends it (rollbacks per its strategy, then the safety net) and the
rest never runs. ``abort_on`` stops the plan after the first experiment whose code
reaches 1 (``deviated``) or 2 (``failed``); ``q`` at a prompt stops it too. What
did not run is reported as skipped.

The package: :mod:`.plan` (the plan and its checks), :mod:`.verdict` (the exit code
each journal calls for), :mod:`.metrics` (``metrics.prom``), :mod:`.run` (running it:
:func:`run_gameday`, and :func:`main`, the command), :mod:`.lease` (its run Lease).
"""

from __future__ import annotations

from chaosmesh_sec.gameday.metrics import metrics_text
from chaosmesh_sec.gameday.plan import Entry, Plan, check_var_file, load_plan, parse_vars
from chaosmesh_sec.gameday.run import Console, GamedayResult, main, run_gameday
from chaosmesh_sec.gameday.verdict import (
    EXIT_DEVIATED,
    EXIT_HELD,
    EXIT_NOT_APPLIED,
    EXIT_PLAN_INVALID,
    EXIT_ROLLBACK_FAILED,
    Outcome,
    exit_code,
    fail_open_cells,
    journal_exit_code,
)

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
    "check_var_file",
    "exit_code",
    "fail_open_cells",
    "journal_exit_code",
    "load_plan",
    "main",
    "metrics_text",
    "parse_vars",
    "run_gameday",
]
