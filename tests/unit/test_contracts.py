"""The import contracts (pyproject.toml, ``make contracts``) hold, and they bite.

Each test copies the package and pyproject.toml to a temporary folder, changes the copy
if it must, and runs ``lint-imports`` on the copy alone (``PYTHONPATH`` names it, so the
installed package is not what is read). The real tree is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "chaosmesh_sec",
        tmp_path / "chaosmesh_sec",
        ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]", "_data"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env["PYTHONPATH"] = str(tree)
    env["COLUMNS"] = "200"  # one line per contract in the report
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _add(tree: Path, module: str, line: str) -> None:
    path = tree / "chaosmesh_sec" / module
    path.write_text(f"{path.read_text()}\n{line}  # noqa: E402 - a forbidden import, on purpose\n")


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("probes/redirection.py", "from chaosmesh_sec.faults import _workloads", "Probes stand"),
        ("faults/churn.py", "from chaosmesh_sec.probes import _netpol", "Faults stand"),
        ("faults/cni.py", "from chaosmesh_sec.lab import procs", "Faults stand"),
        ("lab/nodes.py", "from chaosmesh_sec.probes import matrix", "The lab imports"),
        ("lab/network.py", "from chaosmesh_sec.faults import churn", "The lab imports"),
        # the lab's one former exception (its sidecar stand-in took its certificate with
        # the issuance probe's CA client): gone with the stand-in, forbidden like the rest
        ("lab/pki.py", "from chaosmesh_sec.probes._ca_client import CaClient", "The lab imports"),
        ("_kube.py", "from chaosmesh_sec.faults import _workloads", "The floor imports"),
        ("kit.py", "from chaosmesh_sec.probes import matrix", "The floor imports"),
        ("report/html.py", "from chaosmesh_sec.probes import _matrix_spec", "The report stands"),
        ("gameday/run.py", "from chaosmesh_sec.lab import procs", "The game day"),
        ("controls/safety_net.py", "from chaosmesh_sec.report import scrub", "The safety net"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy(tmp_path)
    _add(tree, module, line)
    done = _lint(tree)
    assert done.returncode != 0, done.stdout
    broken = [row for row in done.stdout.splitlines() if " BROKEN" in row]
    assert any(row.startswith(contract) for row in broken), done.stdout  # (others may follow)


def test_an_indirect_forbidden_import_breaks_it_too(tmp_path: Path) -> None:
    """probes -> the floor -> faults: the floor's contract, and the probes' as well."""
    tree = _copy(tmp_path)
    _add(tree, "journal.py", "from chaosmesh_sec.faults import _ledger")
    done = _lint(tree)
    assert done.returncode != 0
    assert "Probes stand on the floor only" in done.stdout
    assert "chaosmesh_sec.journal -> chaosmesh_sec.faults._ledger" in done.stdout


def test_the_lab_forbids_the_probes_with_no_exception() -> None:
    """The lab stands on the floor alone: no import of the probes, none let through."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (lab,) = [c for c in contracts["contracts"] if c["id"] == "lab"]
    assert lab["source_modules"] == ["chaosmesh_sec.lab"]
    assert "chaosmesh_sec.probes" in lab["forbidden_modules"]
    assert "ignore_imports" not in lab
