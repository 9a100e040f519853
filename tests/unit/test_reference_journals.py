"""journals/reference/ (real lab runs, `make reference-journals`) still parse and render."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chaosmesh_sec.report import write_reports

REFERENCE = Path(__file__).resolve().parents[2] / "journals" / "reference"
JOURNALS = sorted(REFERENCE.glob("*.json"))
SECRETS = re.compile(r"BEGIN (?:[A-Z]+ )?PRIVATE KEY|eyJhbGciOi[A-Za-z0-9_-]{10,}")


def test_there_are_reference_journals() -> None:
    assert {p.stem for p in JOURNALS} >= {"wrong-identity", "issuance-partition"}


@pytest.mark.parametrize("journal", JOURNALS, ids=lambda p: p.stem)
def test_a_reference_journal_held_and_holds_no_secret(journal: Path) -> None:
    text = journal.read_text()
    assert not SECRETS.search(text)
    run = json.loads(text)
    assert run["status"] == "completed" and run["deviated"] is False


def test_the_wrong_identity_journal_tells_the_seeds_story() -> None:
    run = json.loads((REFERENCE / "wrong-identity.json").read_text())
    [during] = [r for r in run["run"] if r["activity"]["name"].startswith("matrix-from")]
    [cell] = during["output"]["cells"]
    assert (cell["source"], cell["destination"]) == ("sleep-v2", "helloworld-v1")
    assert cell["verdict"] == "denied_by_mesh"
    assert cell["layer_change"] == "denied_by_network -> denied_by_mesh"


def test_they_render(tmp_path: Path) -> None:
    written = write_reports(JOURNALS, tmp_path, title="reference")
    assert all(p.stat().st_size > 0 for p in written.values())
    assert not SECRETS.search(written["html"].read_text())
