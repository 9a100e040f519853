"""Reports from journals: the figures on the page are the journals' numbers, nothing leaks.

The journals under ``data/journals`` are real runs of this pack's experiments on the
lab. Each test renders them (or an edited copy) and reads the output back: the HTML
with :mod:`html.parser`, the JUnit XML with :mod:`xml.etree`, the Markdown as text.
What the page should say is computed from the journal here, independently of
:mod:`chaosmesh_sec.report.reading`.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from datetime import datetime
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.report import FILES, write_reports
from chaosmesh_sec.report.scrub import scrub
from tests.fakes import fake_jwt, fake_pem_key

JOURNALS = Path(__file__).parent / "data" / "journals"

SAMPLES = sorted(JOURNALS.glob("*.json"))
MATRIX = ("chaosmesh_sec.probes.matrix", "identity_matrix")
SAMPLING = ("chaosmesh_sec.probes.issuance", "sample_issuance")
SAMPLED_MATRIX = ("chaosmesh_sec.probes.matrix", "sample_matrix")
TIMELINE = "wrong-identity-timeline"  # the flagship with its matrix sampled over time
CUT = "cut-helloworld-v1-node-from-apiserver"

FAKE_JWT = fake_jwt({"sub": "system:serviceaccount:default:default"}, signature=b"not-real")
KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDfakefakefake"
FAKE_KEY = fake_pem_key(f"{KEY_BODY}\nbW9yZWZha2U=")
FAKE_EC_KEY_CUT = fake_pem_key(KEY_BODY[:40], "EC PRIVATE KEY", end=False)  # an excerpt cut it

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base"}


# ---------------------------------------------------------------- helpers


class Page(HTMLParser):
    """Every start tag with its attributes and the experiment / figure it sits in.

    Also checks the markup is balanced (every element closed, in order).
    """

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.experiment = ""
        self.figure: dict[str, str] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.experiment = a.get("data-experiment", "")
        if tag == "figure":
            self.figure = a
        self.elements.append({"tag": tag, "attrs": a, "exp": self.experiment, "fig": self.figure})

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1]}>"
        self.stack.pop()
        if tag == "figure":
            self.figure = {}

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str | None = None, **data: str) -> list[dict[str, Any]]:
        """Elements with these ``data-`` attributes (``fail_open`` -> ``data-fail-open``)."""
        wanted = {f"data-{k.replace('_', '-')}": v for k, v in data.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e["tag"] == tag)
            and all(e["attrs"].get(k) == v for k, v in wanted.items())
        ]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((JOURNALS / f"{name}.json").read_text())
    return data


def _render(tmp_path: Path, journals: list[Path], title: str = "") -> dict[str, str]:
    written = write_reports(journals, tmp_path / "out", title)
    assert set(written) == {"html", "markdown", "junit"}
    for kind, path in written.items():
        assert path == tmp_path / "out" / FILES[kind]
    texts = {kind: path.read_text(encoding="utf-8") for kind, path in written.items()}
    Page(texts["html"])  # balanced markup
    return texts


def _write(tmp_path: Path, name: str, journal: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(journal))
    return path


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _fn(activity_result: dict[str, Any]) -> tuple[str, str]:
    provider = activity_result["activity"]["provider"]
    return provider.get("module", ""), provider.get("func", "")


def _matrix_checks(journal: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(phase, probe result) of every identity-matrix check, before / during / after."""
    checks = [("before", p) for p in journal["steady_states"]["before"]["probes"]]
    run = sorted(journal["run"], key=lambda r: r["start"])
    checks += [("during", r) for r in run]
    checks += [
        ("after", p) for p in (journal["steady_states"].get("after") or {}).get("probes", [])
    ]
    return [(phase, r) for phase, r in checks if _fn(r) == MATRIX]


def _deviated_wrong_identity() -> dict[str, Any]:
    """wrong-identity as if sleep-v2 got through to helloworld-v1 after the fault."""
    journal = copy.deepcopy(_load("wrong-identity"))
    journal["deviated"] = True
    after = journal["steady_states"]["after"]
    after["steady_state_met"] = False
    probe = after["probes"][0]
    probe["tolerance_met"] = False
    output = probe["output"]
    output["holds"] = False
    for cell in output["cells"]:
        if cell["cell"] == "sleep-v2 -> helloworld-v1":
            cell.update(verdict="allowed", ok=False, fail_open=True)
            cell["evidence"].update(exit_code=0, http_code="200", body="Hello version: v1")
    output["fail_open"] = ["sleep-v2 -> helloworld-v1"]
    output["failures"] = ["sleep-v2 -> helloworld-v1"]
    return journal


# ---------------------------------------------------------------- the sample journals


def test_every_sample_journal_renders(tmp_path: Path) -> None:
    texts = _render(tmp_path, SAMPLES)
    page = Page(texts["html"])
    titles = {p.stem: _load(p.stem)["experiment"]["title"] for p in SAMPLES}
    for key in titles:
        sections = page.find("section", experiment=key)
        assert len(sections) == 1, key
        journal = _load(key)
        held = journal["status"] == "completed" and not journal["deviated"]
        assert sections[0]["attrs"]["data-verdict"] == ("held" if held else "deviated")
    suites = ET.fromstring(texts["junit"]).findall("testsuite")
    assert sorted(s.get("name", "") for s in suites) == sorted(titles.values())
    for title in titles.values():
        assert title in texts["markdown"]


def test_the_summary_counts_the_journals_fail_open_cells(tmp_path: Path) -> None:
    deviated = _write(tmp_path, "wrong-identity-deviated", _deviated_wrong_identity())
    journals = [*SAMPLES, deviated]
    page = Page(_render(tmp_path, journals)["html"])
    total = 0
    for path in journals:
        journal = json.loads(path.read_text())
        expected = sum(len(r["output"]["fail_open"]) for _, r in _matrix_checks(journal))
        total += expected
        rows = page.find("tr", experiment=path.stem)
        assert len(rows) == 1, path.stem
        assert rows[0]["attrs"]["data-fail-open-count"] == str(expected)
        section = page.find("section", experiment=path.stem)[0]
        assert section["attrs"]["data-fail-open-count"] == str(expected)
    assert total == 1
    assert page.find(total_fail_open="1")
    # the worst result first, in red
    summary = Page(_render(tmp_path, [deviated])["html"])
    assert "fo-bad" in next(e for e in summary.elements if e["tag"] == "td")["attrs"]["class"]


def test_every_matrix_cell_carries_the_journals_verdict(tmp_path: Path) -> None:
    page = Page(_render(tmp_path, SAMPLES)["html"])
    expected = {}
    for path in SAMPLES:
        for phase, result in _matrix_checks(_load(path.stem)):
            for cell in result["output"]["cells"]:
                key = (path.stem, phase, result["activity"]["name"], cell["cell"])
                expected[key] = (cell["verdict"], cell["layer_change"] or "")
    drawn = {
        (e["exp"], e["fig"]["data-phase"], e["fig"]["data-probe"], e["attrs"]["data-cell"]): (
            e["attrs"]["data-verdict"],
            e["attrs"]["data-layer-change"],
        )
        for e in page.find("g")
        if "data-cell" in e["attrs"] and e["attrs"].get("class") == "cell"
    }
    assert drawn == expected
    # wrong-identity (twice: one run also sampled the matrix over time), team-isolation
    assert len(expected) == 2 * (4 + 1 + 4) + 4 * 4


def test_wrong_identity_during_the_fault_is_denied_by_the_mesh(tmp_path: Path) -> None:
    page = Page(_render(tmp_path, [JOURNALS / "wrong-identity.json"])["html"])
    cells = {
        e["fig"]["data-phase"]: e["attrs"] for e in page.find("g", cell="sleep-v2 -> helloworld-v1")
    }
    assert set(cells) == {"before", "during", "after"}
    assert cells["before"]["data-verdict"] == "denied_by_network"
    during = cells["during"]
    assert during["data-verdict"] == "denied_by_mesh"
    assert during["data-layer-change"] == "denied_by_network -> denied_by_mesh"
    assert during["data-fail-open"] == "false"
    assert during["data-expected"] == "denied"
    figures = [e["attrs"]["data-phase"] for e in page.find("figure") if "data-matrix" in e["attrs"]]
    assert figures == ["before", "during", "after"]  # run order


def test_a_cell_s_evidence_names_who_answered(tmp_path: Path) -> None:
    """A journal whose evidence says who answered (``answered_by``) names it; an older one
    without it renders as before."""
    journal = _load("wrong-identity")
    [during] = [r for r in journal["run"] if r["activity"]["name"].startswith("matrix-from")]
    evidence = during["output"]["cells"][0]["evidence"]
    before = "".join(Page(_render(tmp_path, [JOURNALS / "wrong-identity.json"])["html"]).text)
    assert "HTTP 403 · RBAC: access denied" in before
    evidence.update(responder={"server": "envoy"}, answered_by="envoy")
    page = Page(_render(tmp_path, [_write(tmp_path, "wrong-identity", journal)])["html"])
    assert "HTTP 403 from Envoy · RBAC: access denied" in "".join(page.text)
    evidence.update(http_code="200", body="Hello version: v1", answered_by="app")
    page = Page(_render(tmp_path, [_write(tmp_path, "wrong-identity", journal)])["html"])
    assert "HTTP 200 from the app · Hello version: v1" in "".join(page.text)


def test_issuance_summary_rows_carry_the_journals_success_rates(tmp_path: Path) -> None:
    names = ["issuance-partition", "issuance-istiod-kill"]
    page = Page(_render(tmp_path, [JOURNALS / f"{n}.json" for n in names])["html"])
    for name in names:
        (sampling,) = [r for r in _load(name)["run"] if _fn(r) == SAMPLING]
        summary = sampling["output"]["summary"]
        rows = {
            e["attrs"]["data-target"]: e["attrs"]
            for e in page.find("tr")
            if e["exp"] == name and "data-success-rate" in e["attrs"]
        }
        assert set(rows) == set(summary)
        for target, figures in summary.items():
            assert float(rows[target]["data-success-rate"]) == figures["success_rate"]
            assert int(rows[target]["data-attempts"]) == figures["attempts"]
            assert int(rows[target]["data-issued"]) == figures["issued"]
        marks = [e for e in page.find("g") if e["exp"] == name and "data-t" in e["attrs"]]
        samples = sampling["output"]["samples"]
        assert len(marks) == len(samples)
        failed = sorted((s["target"], s["t"], s["code"]) for s in samples if not s["issued"])
        drawn = sorted(
            (m["attrs"]["data-target"], float(m["attrs"]["data-t"]), m["attrs"]["data-code"])
            for m in marks
            if m["attrs"]["data-issued"] == "false"
        )
        assert drawn == failed


def test_the_partition_window_is_shaded_from_the_fault_to_the_heal(tmp_path: Path) -> None:
    journal = _load("issuance-partition")
    page = Page(_render(tmp_path, [JOURNALS / "issuance-partition.json"])["html"])
    (sampling,) = [r for r in journal["run"] if _fn(r) == SAMPLING]
    (fault,) = [r for r in journal["run"] if r["activity"]["provider"]["func"].startswith("part")]
    heals = [r for r in journal["rollbacks"] if _fn(r)[1].startswith("heal_")]
    t0 = _when(sampling["output"]["started_at"])
    start = (_when(fault["start"]) - t0).total_seconds()
    healed = (_when(heals[0]["end"]) - t0).total_seconds()
    end = min(healed, start + fault["output"]["duration_seconds"])

    (window,) = page.find("g", fault=fault["activity"]["name"])
    assert float(window["attrs"]["data-start-s"]) == pytest.approx(start, abs=1e-3)
    assert float(window["attrs"]["data-end-s"]) == pytest.approx(end, abs=1e-3)
    assert "heal-apiserver-partition" in window["attrs"]["data-ended-by"]
    shade = page.elements[page.elements.index(window) + 2]  # after its <title>
    assert shade["tag"] == "rect"
    assert float(shade["attrs"]["width"]) > 100
    assert shade["attrs"]["fill-opacity"]


def test_a_failed_fault_draws_no_window_and_is_an_error(tmp_path: Path) -> None:
    texts = _render(tmp_path, [JOURNALS / "issuance-istiod-kill.json"])
    page = Page(texts["html"])
    assert not [e for e in page.elements if "data-fault" in e["attrs"]]
    assert page.find("tr", step="kill-istiod-replicas", status="failed")
    (suite,) = ET.fromstring(texts["junit"]).findall("testsuite")
    (case,) = [c for c in suite.findall("testcase") if c.find("error") is not None]
    assert case.get("name") == "activity: kill-istiod-replicas"
    error = case.find("error")
    assert error is not None
    assert error.get("message", "").startswith("chaoslib.exceptions.ActivityFailed:")
    assert "invalid input 'count'" in error.get("message", "")
    assert suite.get("errors") == "1"


def test_certificate_issuance_tables(tmp_path: Path) -> None:
    page = Page(_render(tmp_path, [JOURNALS / "issuance-partition.json"])["html"])
    (during,) = page.find("table", phase="during", probe="issuance-during-partition")
    assert during["attrs"]["class"] == "issuance-check"
    rows = [e["attrs"] for e in page.find("tr") if "data-code" in e["attrs"]]
    codes = {r["data-target"]: r["data-code"] for r in rows}
    assert codes["service"] in {"OK", "DEADLINE_EXCEEDED"}
    assert "DEADLINE_EXCEEDED" in {r["data-code"] for r in rows}


# ---------------------------------------------------------------- JUnit


def test_junit_is_valid_and_its_counts_add_up(tmp_path: Path) -> None:
    root = ET.fromstring(_render(tmp_path, SAMPLES)["junit"])
    assert root.tag == "testsuites"
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        for key, n in counts.items():
            assert suite.get(key) == str(n), (suite.get("name"), key)
            totals[key] += n
        float(suite.get("time", "x"))
        names = [c.get("name", "") for c in cases]
        assert names[0].startswith("hypothesis before")
        assert names[1].startswith("hypothesis after")
        assert all(c.get("classname") and c.get("time") for c in cases)
    for key, n in totals.items():
        assert root.get(key) == str(n)
    (team,) = [s for s in root.findall("testsuite") if "team-a" in s.get("name", "")]
    during = [c.get("name", "") for c in team.findall("testcase") if "during:" in c.get("name", "")]
    assert during == [
        "during: matrix-while-istiod-is-down (matrix team-isolation)",
        "during: matrix-while-the-cni-agents-restart (matrix team-isolation)",
    ]


def test_a_deviated_journal_is_a_junit_failure_naming_the_fail_open_cell(tmp_path: Path) -> None:
    path = _write(tmp_path, "wrong-identity-deviated", _deviated_wrong_identity())
    texts = _render(tmp_path, [path])
    (suite,) = ET.fromstring(texts["junit"]).findall("testsuite")
    assert suite.get("failures") == "1"
    after = [
        c for c in suite.findall("testcase") if c.get("name", "").startswith("hypothesis after")
    ]
    failure = after[0].find("failure")
    assert failure is not None
    assert "fail-open: sleep-v2 -> helloworld-v1" in failure.get("message", "")
    assert "wrong-identity-matrix" in failure.get("message", "")  # the probe out of tolerance

    page = Page(texts["html"])
    assert page.find("section", experiment="wrong-identity-deviated", verdict="deviated")
    (cell,) = page.find("g", cell="sleep-v2 -> helloworld-v1", phase="after")
    assert cell["attrs"]["data-fail-open"] == "true"
    assert "FAIL-OPEN" in "".join(page.text)
    assert "| **sleep-v2** | **FAIL-OPEN** allowed (expected denied) |" in texts["markdown"]


def test_a_check_that_raised_on_a_fail_open_still_names_it(tmp_path: Path) -> None:
    journal = copy.deepcopy(_load("wrong-identity"))
    (check,) = [r for _, r in _matrix_checks(journal) if r in journal["run"]]
    check.update(status="failed", output=None)
    check["exception"] = [
        "Traceback (most recent call last):\n",
        "chaosmesh_sec.errors.FailOpen: fail-open cells in wrong-identity: "
        "sleep-v2 -> helloworld-v1\n",
    ]
    texts = _render(tmp_path, [_write(tmp_path, "raised", journal)])
    page = Page(texts["html"])
    (cell,) = page.find("g", cell="sleep-v2 -> helloworld-v1", phase="during")
    assert cell["attrs"]["data-fail-open"] == "true"
    assert page.find("section", experiment="raised", fail_open_count="1")
    (suite,) = ET.fromstring(texts["junit"]).findall("testsuite")
    during = [c for c in suite.findall("testcase") if c.get("name", "").startswith("during:")]
    failure = during[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "fail-open: sleep-v2 -> helloworld-v1"


# ---------------------------------------------------------------- the matrix over time


def _sampler(journal: dict[str, Any]) -> dict[str, Any]:
    [run] = [r for r in journal["run"] if _fn(r) == SAMPLED_MATRIX]
    return run


def _window(journal: dict[str, Any], sampler: dict[str, Any]) -> tuple[float, float]:
    """The partition's window in seconds since the sampling started: from the cut's start
    to the end of the heal that ran after it (the report's rule for this journal)."""
    started = _when(sampler["output"]["started_at"])
    [cut] = [r for r in journal["run"] if r["activity"]["name"] == CUT]
    [heal] = [r for r in journal["run"] if r["activity"]["name"] == "heal-the-partition"]
    return (
        (_when(cut["start"]) - started).total_seconds(),
        (_when(heal["end"]) - started).total_seconds(),
    )


def _changes(cell: dict[str, Any]) -> list[tuple[float, str, str]]:
    """(t, from, to) of every round whose verdict differs from the one before it."""
    s = sorted(cell["samples"], key=lambda x: x["t"])
    return [
        (b["t"], a["verdict"], b["verdict"]) for a, b in pairwise(s) if a["verdict"] != b["verdict"]
    ]


def test_the_matrix_over_time_draws_every_round_and_each_change(tmp_path: Path) -> None:
    journal = _load(TIMELINE)
    sampler = _sampler(journal)
    page = Page(_render(tmp_path, [JOURNALS / f"{TIMELINE}.json"])["html"])
    [figure] = page.find("figure", probe=sampler["activity"]["name"])
    assert figure["attrs"]["data-matrix"] == "wrong-identity"
    assert figure["attrs"]["data-holds"] == str(sampler["output"]["holds"]).lower()
    for cell in sampler["output"]["cells"]:
        drawn = [
            (float(e["attrs"]["data-t"]), e["attrs"]["data-verdict"], e["attrs"]["data-pod"])
            for e in page.find("g", cell=cell["cell"])
            if e["attrs"].get("class") == "sample"
        ]
        assert drawn == [(s["t"], s["verdict"], s["pod"] or "") for s in cell["samples"]]
        lines = [
            (float(e["attrs"]["data-t"]), e["attrs"]["data-from"], e["attrs"]["data-to"])
            for e in page.find("g", cell=cell["cell"])
            if e["attrs"].get("class") == "change"
        ]
        assert lines == _changes(cell)
        rows = [e for e in page.find("tr", cell=cell["cell"]) if e["fig"] is figure["attrs"]]
        assert [float(r["attrs"]["data-t"]) for r in rows] == [t for t, *_ in _changes(cell)]
    # the story: sleep-v2 -> helloworld-v1 changed layer while the partition was on
    start, end = _window(journal, sampler)
    [v2] = [c for c in sampler["output"]["cells"] if c["cell"] == "sleep-v2 -> helloworld-v1"]
    to_mesh = [t for t, _was, now in _changes(v2) if now == "denied_by_mesh"]
    assert to_mesh and start <= to_mesh[0] <= end
    [shaded] = page.find("g", fault=CUT)
    assert abs(float(shaded["attrs"]["data-start-s"]) - start) < 1e-3
    assert abs(float(shaded["attrs"]["data-end-s"]) - end) < 1e-3


def test_the_matrix_over_time_says_when_each_change_fell_against_the_faults(
    tmp_path: Path,
) -> None:
    texts = _render(tmp_path, [JOURNALS / f"{TIMELINE}.json"])
    html, md = texts["html"], texts["markdown"]
    journal = _load(TIMELINE)
    sampler = _sampler(journal)
    start, _end = _window(journal, sampler)
    [v2] = [c for c in sampler["output"]["cells"] if c["cell"] == "sleep-v2 -> helloworld-v1"]
    t = next(t for t, _was, now in _changes(v2) if now == "denied_by_mesh")
    into = f"during {CUT} (+{t - start:.1f} s)"
    assert into in html and into in md
    assert "denied_by_mesh" in html.split(into, 1)[0].rsplit("<tr", 1)[1]
    # the Markdown strip: L4 denies (4) before the fault, L7 (7) during it, faults under
    block = md.split("#### during: matrix-timeline-across-the-fault", 1)[1]
    strips = block.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    [lane] = [line for line in strips if line.startswith("sleep-v2 -> helloworld-v1 ")]
    strip = lane.split("|")[1]
    assert strip.startswith("4") and "7" in strip and strip.index("7") > strip.index("4")
    assert strips[-2].startswith("faults ") and "~" in strips[-2]
    assert "`7` denied_by_mesh" in block  # the key
    # what the activity did, in one line: each cell's verdicts in turn
    assert "sleep-v2 -> helloworld-v1: denied_by_network, " in md


def _sampled_fail_open() -> dict[str, Any]:
    """The timeline journal as if sleep-v2 had got through to helloworld-v1 in one round."""
    journal = copy.deepcopy(_load(TIMELINE))
    out = _sampler(journal)["output"]
    [cell] = [c for c in out["cells"] if c["cell"] == "sleep-v2 -> helloworld-v1"]
    sample = next(s for s in cell["samples"] if s["verdict"] == "denied_by_mesh")
    sample.update(verdict="allowed", ok=False, fail_open=True)
    cell["fail_open_s"] = [sample["t"]]
    out["fail_open"] = [{"t": sample["t"], "cell": cell["cell"]}]
    out["holds"] = False
    return journal


def test_a_fail_open_round_is_a_fail_open_of_the_run_everywhere(tmp_path: Path) -> None:
    from chaosmesh_sec.gameday import EXIT_DEVIATED, journal_exit_code
    from chaosmesh_sec.journal import fail_open_cells

    journal = _sampled_fail_open()
    texts = _render(tmp_path, [_write(tmp_path, "opened", journal)])
    page = Page(texts["html"])
    assert page.find(total_fail_open="1")
    assert page.find("section", experiment="opened", fail_open_count="1")
    assert page.find("figure", fail_open_count="1")
    [opened] = [
        e
        for e in page.find("g", cell="sleep-v2 -> helloworld-v1", fail_open="true")
        if e["attrs"].get("class") == "sample"
    ]
    t = float(opened["attrs"]["data-t"])
    moment = f"sleep-v2 -> helloworld-v1 at {t:.1f}".removesuffix(".0") + " s"
    assert f"FAIL-OPEN: {moment}" in "".join(page.text)
    assert f"FAIL-OPEN: {moment}" in texts["markdown"]
    (suite,) = ET.fromstring(texts["junit"]).findall("testsuite")
    failures = [
        f.get("message", "")
        for c in suite.findall("testcase")
        if c.get("name", "").startswith("during: matrix-timeline")
        for f in c.findall("failure")
    ]
    assert failures == [f"fail-open: {moment}"]
    assert fail_open_cells(journal) == 1
    assert journal_exit_code(journal) == EXIT_DEVIATED


def test_an_older_sampling_without_pods_draws_no_unasked_round(tmp_path: Path) -> None:
    """A ``sample_matrix`` output from before samples named their pod: every round is
    drawn by its verdict, none as "no pod to ask from", the changes still found."""
    journal = copy.deepcopy(_load(TIMELINE))
    for cell in _sampler(journal)["output"]["cells"]:
        del cell["changes"]
        for s in cell["samples"]:
            del s["pod"], s["pod_ip"]
    page = Page(_render(tmp_path, [_write(tmp_path, "older", journal)])["html"])
    samples = [e for e in page.find("g") if e["attrs"].get("class") == "sample"]
    assert samples and all(e["attrs"]["data-not-asked"] == "false" for e in samples)
    assert page.find("g", cell="sleep-v2 -> helloworld-v1", to="denied_by_mesh")


# ---------------------------------------------------------------- Markdown


def test_markdown_has_the_matrix_and_issuance_tables(tmp_path: Path) -> None:
    names = ["wrong-identity", "issuance-partition"]
    md = _render(tmp_path, [JOURNALS / f"{n}.json" for n in names])["markdown"]
    assert "| source \\ destination | helloworld-v1 | helloworld-v2 |" in md
    assert (
        "| **sleep-v2** | denied_by_network (expected denied) | allowed (expected allowed) |" in md
    )
    assert "| **sleep-v2** | denied_by_mesh (expected denied; Δ was denied_by_network) |" in md
    assert "#### during: matrix-from-the-recycled-ip-during-the-fault" in md
    assert "| service | 8 | 5 | 62.5% |" in md
    strips = md.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert strips[0].startswith("service ")
    assert strips[-2].startswith("faults ") and "~" in strips[-2]  # the window, under the lanes


@pytest.mark.parametrize("target", ["evil\n```\n# injected", "a\r\n~~~ b", "``` x", "a\tb\x0bc"])
def test_a_sample_target_cannot_break_out_of_the_timeline_fence(
    tmp_path: Path, target: str
) -> None:
    journal = _load("issuance-partition")
    (sampling,) = [r for r in journal["run"] if _fn(r) == SAMPLING]
    output = sampling["output"]
    (old,) = [t for t in output["summary"] if t != "service"][:1]
    output["summary"][target] = output["summary"].pop(old)
    for sample in output["samples"]:
        if sample["target"] == old:
            sample["target"] = target
    md = _render(tmp_path, [_write(tmp_path, "issuance-partition", journal)])["markdown"]
    plain = _render(tmp_path / "plain", [JOURNALS / "issuance-partition.json"])["markdown"]

    def fences(text: str) -> int:
        return sum(line.lstrip().startswith(("```", "~~~")) for line in text.splitlines())

    assert fences(md) == fences(plain)
    assert not any(line.startswith("# injected") for line in md.splitlines())
    lanes = md.split("```text\n", 1)[1].split("\n```\n", 1)[0].splitlines()
    assert len(lanes) == len(output["summary"]) + 2  # a lane per target, faults, the axis
    assert any(lane.startswith(" ".join(target.split()).replace("`", "'")) for lane in lanes)


# ---------------------------------------------------------------- other journals


def test_a_journal_of_another_pack_renders(tmp_path: Path) -> None:
    generic = {
        "experiment": {"title": "Other <pack> | pipes & co", "tags": ["x", 3]},
        "status": "completed",
        "deviated": False,
        "start": "2024-01-01T00:00:00",
        "end": "2024-01-01T00:00:05",
        "duration": 5.0,
        "steady_states": {
            "before": {
                "steady_state_met": True,
                "probes": [
                    {
                        "activity": {
                            "type": "probe",
                            "name": "site-up",
                            "tolerance": 200,
                            "provider": {"type": "http", "url": "http://example.invalid/"},
                        },
                        "output": {"status": 200, "body": "<script>alert(1)</script>"},
                        "status": "succeeded",
                        "tolerance_met": True,
                    }
                ],
            },
            "after": None,
        },
        "run": [
            {
                "activity": {"type": "action", "name": "kill", "provider": {"type": "process"}},
                "output": [1, 2],
                "status": "failed",
                "exception": "boom\nRuntimeError: it broke",
                "start": "not a time",
                "duration": "slow",
            },
            "not an activity",
        ],
        "rollbacks": None,
        "extensions": [{"name": "something-else"}],
    }
    bare: dict[str, Any] = {"experiment": {}}
    texts = _render(
        tmp_path, [_write(tmp_path, "generic", generic), _write(tmp_path, "bare", bare)]
    )
    page = Page(texts["html"])
    assert page.find("section", experiment="generic", verdict="held")
    assert page.find("section", experiment="bare", verdict="unknown")
    assert "<script" not in texts["html"]
    assert "&lt;script&gt;" in texts["html"]
    assert "Other &lt;pack&gt; | pipes &amp; co" in texts["html"]
    assert "Other &lt;pack> \\| pipes & co" in texts["markdown"]
    suites = ET.fromstring(texts["junit"]).findall("testsuite")
    (generic_suite,) = [s for s in suites if s.get("name") == "Other <pack> | pipes & co"]
    errors = [c.find("error") for c in generic_suite.findall("testcase")]
    assert [e.get("message") for e in errors if e is not None] == ["RuntimeError: it broke"]


def _paths(value: Any, path: tuple[Any, ...] = (), depth: int = 4) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if len(path) < depth and isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            found += _paths(child, (*path, key), depth)
    return found


@pytest.mark.parametrize("name", ["wrong-identity", "issuance-partition", TIMELINE])
def test_any_field_of_an_unexpected_type_still_renders(name: str) -> None:
    from chaosmesh_sec.report import Report, render_html, render_junit, render_markdown
    from chaosmesh_sec.report.reading import experiment_from_journal

    text = (JOURNALS / f"{name}.json").read_text()
    junk: list[Any] = [None, "x", {"a": [1]}, 3.5, []]
    for i, path in enumerate(_paths(json.loads(text))):
        edited = json.loads(text)
        parent = edited
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = junk[i % len(junk)]
        report = Report("t", (experiment_from_journal(edited, name, "k"),))
        ET.fromstring(render_junit(report))
        assert render_html(report).endswith("</html>\n")
        assert render_markdown(report)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a Chaos Toolkit journal"),
        ('{"title": "an experiment file, not a journal", "method": []}', "no `experiment`"),
    ],
)
def test_what_is_not_a_journal_is_refused_before_anything_is_written(
    tmp_path: Path, text: str, problem: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(InvalidInput, match=problem):
        write_reports([SAMPLES[0], bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- secrets


def test_scrub_replaces_tokens_and_private_keys() -> None:
    assert FAKE_JWT not in scrub(f"Bearer {FAKE_JWT} rest")
    assert scrub(f"Bearer {FAKE_JWT} rest") == "Bearer [redacted token] rest"
    unsigned = fake_jwt({"sub": "x"}, alg="none", signature=b"")
    assert scrub(unsigned) == "[redacted token]"
    cleaned = scrub(f"key:\n{FAKE_KEY}after")
    assert cleaned == "key:\n[redacted key]\nafter"
    assert KEY_BODY[:20] not in scrub(f"cut: {FAKE_EC_KEY_CUT}")
    assert (
        scrub("eyJ short, no token; BEGIN CERTIFICATE") == "eyJ short, no token; BEGIN CERTIFICATE"
    )


def test_no_secret_from_a_journal_reaches_any_report(tmp_path: Path) -> None:
    journal = copy.deepcopy(_load("wrong-identity"))
    secret = f"token {FAKE_JWT} and key {FAKE_KEY}"
    journal["experiment"]["title"] += f" {FAKE_JWT}"
    journal["experiment"]["description"] = secret
    journal["experiment"]["tags"].append(FAKE_JWT)
    (during,) = [r for _, r in _matrix_checks(journal) if r in journal["run"]]
    during["output"]["cells"][0]["evidence"]["body"] = secret
    during["output"]["cells"][0]["evidence"]["error"] = FAKE_EC_KEY_CUT
    journal["run"][0]["output"]["node"] = FAKE_JWT
    journal["run"][1].update(status="failed", exception=[f"ValueError: {secret}\n"])
    journal["rollbacks"][0]["output"] = {FAKE_JWT: secret}
    journal["steady_states"]["before"]["probes"][0]["output"]["matrix"] = secret
    journal["extensions"][0]["error"] = secret
    texts = _render(tmp_path, [_write(tmp_path, "planted", journal)])
    for kind, text in texts.items():
        assert "eyJhbGciOi" not in text, kind
        assert "PRIVATE KEY" not in text, kind
        assert KEY_BODY[:20] not in text, kind
        assert "c2lnbmF0dXJl" not in text, kind
        assert "[redacted token]" in text, kind  # the planted fields were printed
    assert "[redacted key]" in texts["html"]


# ---------------------------------------------------------------- the command


def test_the_cli_writes_the_three_files(tmp_path: Path) -> None:
    from chaosmesh_sec.cli import main

    out = tmp_path / "day"
    args = ["report", *(str(p) for p in SAMPLES), "--out", str(out), "--title", "Game day <1>"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for name in FILES.values():
        assert (out / name).is_file()
        assert str(out / name) in result.stdout
    assert "<title>Game day &lt;1&gt;</title>" in (out / "report.html").read_text()


def test_the_cli_reports_a_bad_journal_as_an_error(tmp_path: Path) -> None:
    from chaosmesh_sec.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = CliRunner().invoke(main, ["report", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "bad.json" in result.stderr
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 2  # click: a journal is required


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    html = _render(tmp_path, SAMPLES)["html"]
    page = Page(html)
    assert not page.find("script")
    assert not [e for e in page.elements if e["tag"] in {"link", "img", "iframe", "object"}]
    hrefs = [e["attrs"]["href"] for e in page.elements if "href" in e["attrs"]]
    assert hrefs and all(h.startswith("#exp-") for h in hrefs)
    assert not [e for e in page.elements if "src" in e["attrs"]]
    assert "url(" not in html and "@import" not in html


def test_every_sidecar_pod_is_drawn_with_the_journals_redirection_verdict(
    tmp_path: Path,
) -> None:
    journal = Path(__file__).parents[2] / "journals" / "reference" / "cni-restart.json"
    written = _render(tmp_path, [journal])
    page = Page(written["html"])
    run = json.loads(journal.read_text())
    expected = []
    for phase, steps in (
        ("before", run["steady_states"]["before"]["probes"]),
        ("during", run["run"]),
        ("after", run["steady_states"]["after"]["probes"]),
    ):
        for step in steps:
            if step["activity"]["provider"].get("func") == "redirection_in_place":
                expected += [
                    (phase, f"{p['namespace']}/{p['pod']}", p["verdict"])
                    for p in step["output"]["pods"]
                ]
    drawn = [
        (e["fig"]["data-phase"], e["attrs"]["data-pod"], e["attrs"]["data-verdict"])
        for e in page.find("g")
        if "data-pod" in e["attrs"]
    ]
    assert drawn == expected
    # every phase drawn (the canaries' verdicts during the restart are the race's own:
    # with the real istio-cni they usually miss its window of under a second)
    assert {phase for phase, _pod, _verdict in drawn} == {"before", "during", "after"}
    assert "### Traffic redirection (sidecar pods)" in written["markdown"]


def test_the_safety_net_shows_the_run_id_and_a_refused_run(tmp_path: Path) -> None:
    from chaosmesh_sec.journal import SAFETY_NET_EXTENSION

    journal = _load("smoke")
    journal["extensions"] = [
        {
            "name": SAFETY_NET_EXTENSION,
            "run_id": "0123456789ab",
            "lease": {"refused": "another run holds the run lease: run fedcba987654"},
            "healed": None,
        }
    ]
    out = _render(tmp_path, [_write(tmp_path, "smoke", journal)])
    for text in (out["markdown"], out["html"]):
        assert "0123456789ab" in text
        assert "run not started: another run holds the run lease: run fedcba987654" in text
