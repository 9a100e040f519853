"""Running ``chaos run`` the way a user does, and reading back its journal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
BIN = Path(sys.executable).parent
SECRET_SHAPES = re.compile(r"BEGIN (?:[A-Z]+ )?PRIVATE KEY|eyJhbGciOi[A-Za-z0-9_-]{10,}")


def chaos_run(
    experiment: Path,
    kubeconfig: Path,
    journal: Path,
    variables: dict[str, Any] | None = None,
    *options: str,
    timeout: float = 300,
) -> dict[str, Any]:
    """``chaos run`` ``experiment`` with ``variables`` as a var-file; the journal, checked
    to hold no private key and no JWT."""
    args = [str(BIN / "chaos"), "--no-version-check", "run", "--journal-path", str(journal)]
    if variables:
        var_file = journal.with_suffix(".vars.json")
        var_file.write_text(json.dumps({"configuration": variables}))
        args += ["--var-file", str(var_file)]
    done = subprocess.run(
        [*args, *options, str(experiment)],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    text = journal.read_text() if journal.exists() else ""
    assert text, f"no journal; exit {done.returncode}: {done.stderr[-3000:]}"
    assert not SECRET_SHAPES.search(text), "a key or a token in the journal"
    run: dict[str, Any] = json.loads(text)
    run["_exit_code"] = done.returncode
    run["_stderr"] = done.stderr
    return run


def outputs(run: dict[str, Any]) -> dict[str, Any]:
    """The method's activity outputs by name (the last one wins)."""
    return {r["activity"]["name"]: r.get("output") for r in run["run"]}


def assert_caught_or_redirected(pod: dict[str, Any]) -> None:
    """A canary either missed the window (redirected), was caught in it (126, no
    rules) or was caught and then repaired in place (126 before, rules in now; until
    its validation runs again the app has not started)."""
    assert pod["verdict"] in ("redirected", "caught"), pod
    if pod["verdict"] == "caught":
        assert pod["validation_exit_code"] == 126 and pod["nat"]["chains"] == [], pod
    else:
        assert pod["nat"]["redirected"], pod
        assert pod["validation_exit_code"] in (0, None) or not pod["app_running"], pod
