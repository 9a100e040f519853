"""The HTML report as Chromium renders it shows the journals' figures.

Headless Chromium (``tests/browser.py``) takes a screenshot of the report and dumps the
DOM it built; ``tests/report_figures.py`` reads the figures off that DOM and works them
out again from the raw journals. Chromium is a host dependency the lab build installs
(``chaosmesh_sec.lab.hostdeps``), and pytest runs after that build: without it these
tests fail, they do not skip.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_sec.report import write_reports
from tests import browser
from tests.report_figures import check_report_in_browser, compare, shown

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = sorted((ROOT / "journals" / "reference").glob("*.json"))
SAMPLES = sorted((Path(__file__).parent / "data" / "journals").glob("*.json"))


@pytest.fixture(scope="module")
def reference_dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("reference")
    write_reports(REFERENCE, out, "reference")
    return browser.rendered_dom(out / "report.html")


def test_the_reference_report_in_chromium_shows_the_journals_figures(tmp_path: Path) -> None:
    write_reports(REFERENCE, tmp_path, "reference")
    check_report_in_browser(REFERENCE, tmp_path)
    image = browser.read_png(tmp_path / "report.png")
    assert (image.width, image.height) == (1400, 2400)


def test_the_figures_read_off_the_page_are_all_there(reference_dom: str) -> None:
    """The reader finds what it compares (a comparison of nothing would pass)."""
    assert compare(REFERENCE, reference_dom) == []
    page = shown(reference_dom)
    by_name = {e.journal: e for e in page.experiments}
    assert set(by_name) == {p.name for p in REFERENCE}
    wrong = by_name["wrong-identity.json"]
    assert [m.phase for m in wrong.matrices] == ["before", "during", "after"]
    assert [len(m.cells) for m in wrong.matrices] == [4, 1, 4]
    (during,) = wrong.matrices[1].cells
    assert (during.id, during.verdict, during.verdict_text) == (
        "sleep-v2 -> helloworld-v1",
        "denied_by_mesh",
        "denied_by_mesh",
    )
    (timeline,) = by_name["issuance-partition.json"].samplings
    rate, samples = _service_sampling()
    assert {lane.target: lane.success_text for lane in timeline.lanes}["service"] == _percent(rate)
    assert len(timeline.samples) == samples and len(timeline.windows) == 1


def _sampler_output() -> dict[str, Any]:
    """The reference issuance-partition journal's sampling output."""
    run = json.loads((ROOT / "journals/reference/issuance-partition.json").read_text())
    [out] = [
        r["output"] for r in run["run"] if r["activity"]["provider"]["func"] == "sample_issuance"
    ]
    return dict(out)


def _service_sampling() -> tuple[float, int]:
    """The Service lane's success rate and the sample count."""
    out = _sampler_output()
    return float(out["summary"]["service"]["success_rate"]), len(out["samples"])


def _last_service_t() -> float:
    """The time of the Service lane's last sample."""
    return float(max(x["t"] for x in _sampler_output()["samples"] if x["target"] == "service"))


def _percent(rate: float) -> str:
    """As the page writes a rate: one decimal, none when whole."""
    text = f"{rate * 100:.1f}"
    return f"{text.removesuffix('.0')}%"


def _fail_open(journal: Path, tmp_path: Path) -> Path:
    """`journal` as if the mesh had let sleep-v2 through after the fault: deviated, fail-open."""
    run: dict[str, Any] = json.loads(journal.read_text())
    after = run["steady_states"]["after"]["probes"][0]
    cell = next(c for c in after["output"]["cells"] if c["source"] == "sleep-v2")
    counts = after["output"]["counts"]
    counts[cell["verdict"]] -= 1
    counts["allowed"] += 1
    cell.update(verdict="allowed", ok=False, fail_open=True)
    after["output"].update(holds=False, fail_open=[cell["cell"]])
    after["tolerance_met"], run["deviated"] = False, True
    path = tmp_path / "fail-open.json"
    path.write_text(json.dumps(run))
    return path


def test_any_journals_check_out_deviated_and_without_figures_too(tmp_path: Path) -> None:
    """Journals without a matrix or a timeline (smoke, ip-recycle), a failed fault, a fail-open."""
    journals = [*SAMPLES, _fail_open(ROOT / "journals/reference/wrong-identity.json", tmp_path)]
    out = tmp_path / "out"
    write_reports(journals, out)
    check_report_in_browser(journals, out)
    page = shown((out / "report.html").read_text())
    assert page.total_fail_open == 1
    assert {e.journal: e.verdict for e in page.experiments}["fail-open.json"] == "deviated"


WRONG_FIGURES = {  # what the comparison names -> the page's text, and a wrong one
    "cells[sleep-v2 -> helloworld-v1].verdict": (
        'data-cell="sleep-v2 -&gt; helloworld-v1" data-verdict="denied_by_mesh"',
        'data-cell="sleep-v2 -&gt; helloworld-v1" data-verdict="allowed"',
    ),
    "lanes[service].success_text": (
        f">{_percent(_service_sampling()[0])}<",
        f">{_percent(_service_sampling()[0] + 0.001)}<",
    ),
    "lanes[service].success_rate": (  # as the page writes a float: str(), "1.0" when whole
        f'data-success-rate="{_service_sampling()[0]}"',
        f'data-success-rate="{round(_service_sampling()[0] - 0.0001, 4)}"',
    ),
    ".samples": (
        f'data-t="{_last_service_t():g}" data-target="service"',
        f'data-t="{_last_service_t() + 1:g}" data-target="service"',
    ),
    ".summary_row": ('data-fail-open-count="0"', 'data-fail-open-count="1"'),
    ".fail_open_count": ('false" data-fail-open-count="0"', 'false" data-fail-open-count="1"'),
    ".status_text": (">completed, not deviated<", ">completed, deviated<"),
}


@pytest.mark.parametrize("named", WRONG_FIGURES)
def test_a_figure_the_page_gets_wrong_is_named(reference_dom: str, named: str) -> None:
    before, after = WRONG_FIGURES[named]
    assert before in reference_dom
    problems = compare(REFERENCE, reference_dom.replace(before, after, 1))
    assert any(named in p for p in problems), problems


TIMELINE = Path(__file__).parent / "data" / "journals" / "wrong-identity-timeline.json"
CUT = "cut-helloworld-v1-node-from-apiserver"


@pytest.fixture(scope="module")
def timeline_dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("timeline")
    write_reports([TIMELINE], out)
    return browser.rendered_dom(out / "report.html")


def _timeline_journal_cells() -> dict[str, Any]:
    run = json.loads(TIMELINE.read_text())
    [out] = [
        r["output"] for r in run["run"] if r["activity"]["provider"]["func"] == "sample_matrix"
    ]
    return {c["cell"]: c for c in out["cells"]}


def test_the_matrix_over_time_read_off_the_page_is_all_there(timeline_dom: str) -> None:
    """The flagship's timeline as Chromium drew it: a lane per cell, every round, and the
    layer change of sleep-v2 -> helloworld-v1 drawn inside the partition's shaded window,
    its way back after it."""
    assert compare([TIMELINE], timeline_dom) == []
    [e] = shown(timeline_dom).experiments
    [m] = e.matrices_over_time
    journal = _timeline_journal_cells()
    lanes = {lane.id: lane for lane in m.lanes}
    assert list(lanes) == list(journal)
    assert all(len(lanes[c].rounds) == len(journal[c]["samples"]) for c in journal)
    [cut] = [w for w in m.drawn_windows if w.fault == CUT]
    lane = lanes["sleep-v2 -> helloworld-v1"]
    to_mesh = [float(t) for t, _was, now in lane.changes if now == "denied_by_mesh"]
    assert to_mesh and cut.start_s <= to_mesh[0] <= cut.end_s, (to_mesh, cut)
    back = [float(t) for t, was, _now in lane.changes if was == "denied_by_mesh"]
    assert back and back[0] > to_mesh[0]
    assert ("sleep-v2 -> helloworld-v1", f"{to_mesh[0]:g}") in {c[:2] for c in m.listed_changes}


def _first_mesh_round() -> str:
    """The time (%g) of sleep-v2 -> helloworld-v1's first denied_by_mesh round."""
    cell = _timeline_journal_cells()["sleep-v2 -> helloworld-v1"]
    return f"{next(s['t'] for s in cell['samples'] if s['verdict'] == 'denied_by_mesh'):g}"


TIMELINE_WRONG = {  # what the comparison names -> the page's text, and a wrong one
    "lanes[sleep-v2 -> helloworld-v1].rounds": (
        f'data-t="{_first_mesh_round()}" data-verdict="denied_by_mesh"',
        f'data-t="{_first_mesh_round()}" data-verdict="denied_by_network"',
    ),
    "lanes[sleep-v2 -> helloworld-v1].changes": (
        f'data-t="{_first_mesh_round()}" data-from=',
        f'data-t="{float(_first_mesh_round()) + 1:g}" data-from=',
    ),
    ".listed_changes": ("→ denied_by_mesh</b>", "→ denied_by_network</b>"),
    "lanes[sleep-v1 -> helloworld-v2].mark": (  # the first lane whose deny is expected
        'text-anchor="end">expected denied<',
        'text-anchor="end">expected allowed<',
    ),
    "].fail_open_count": (
        'data-holds="false" data-fail-open-count="0"',
        'data-holds="false" data-fail-open-count="1"',
    ),
}


@pytest.mark.parametrize("named", TIMELINE_WRONG)
def test_a_matrix_timeline_the_page_gets_wrong_is_named(timeline_dom: str, named: str) -> None:
    before, after = TIMELINE_WRONG[named]
    assert before in timeline_dom
    problems = compare([TIMELINE], timeline_dom.replace(before, after, 1))
    assert any(named in p for p in problems), problems


def test_without_chromium_the_error_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    page = tmp_path / "page.html"
    page.write_text("<html><body>x</body></html>")
    with pytest.raises(browser.BrowserError, match="chaosmesh-sec lab build"):
        browser.rendered_dom(page)


# ---------------------------------------------------------------- the PNG reader


def _png(path: Path, rows: list[bytes], width: int = 2) -> browser.Png:
    """An RGB PNG of `rows` (each: a filter-type byte, then the filtered pixels)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
    path.write_bytes(browser.PNG_SIGNATURE + body + chunk(b"IEND", b""))
    return browser.read_png(path)


WHITE = bytes([255] * 6)


@pytest.mark.parametrize(
    "rows",
    [
        [b"\0" + WHITE, b"\0" + WHITE],
        [b"\1" + bytes([255] * 3 + [0] * 3), b"\2" + bytes(6)],  # Sub, Up
        [b"\3" + bytes([255] * 3 + [128] * 3), b"\3" + bytes([128] * 3 + [0] * 3)],  # Average
        [b"\4" + bytes([255] * 3 + [0] * 3), b"\4" + bytes(6)],  # Paeth
    ],
    ids=["none", "sub-up", "average", "paeth"],
)
def test_a_white_png_is_one_pixel_value_whatever_its_filters(
    tmp_path: Path, rows: list[bytes]
) -> None:
    assert browser.distinct_pixels(_png(tmp_path / "white.png", rows)) == 1


def test_two_colours_are_two_pixel_values(tmp_path: Path) -> None:
    image = _png(tmp_path / "two.png", [b"\0" + WHITE, b"\1" + bytes([0] * 3 + [0] * 3)])
    assert browser.distinct_pixels(image) == 2


def test_a_corrupt_png_is_refused(tmp_path: Path) -> None:
    good = _png(tmp_path / "good.png", [b"\0" + WHITE])
    data = bytearray(good.path.read_bytes())
    data[-20] ^= 0xFF  # inside IDAT: its CRC no longer matches
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(browser.BrowserError, match="corrupt"):
        browser.read_png(tmp_path / "bad.png")
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(browser.BrowserError, match="not a PNG"):
        browser.read_png(tmp_path / "text.png")
