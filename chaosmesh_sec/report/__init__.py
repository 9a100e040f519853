"""Reports people read, from Chaos Toolkit journals: HTML, Markdown and JUnit XML.

:func:`write_reports` reads journals (this pack's experiments, or any ``chaos run``)
and writes, in one folder:

- ``report.html``: one self-contained page (inline CSS and SVG, no script): the
  day's summary, then per experiment its verdict, hypothesis, identity-matrix
  heatmaps, certificate-issuance timeline with the fault windows shaded, and what
  each fault did and how it was healed (:mod:`.html`);
- ``report.md``: the same as text (:mod:`.markdown`);
- ``junit.xml``: a test suite per journal, for CI (:mod:`.junit`).

Journals are read into a typed summary first (:mod:`.reading` fills :mod:`.model`) and
scrubbed as they are read: no token or private key found in a journal is printed (:mod:`.scrub`).
``chaosmesh-sec report JOURNAL... --out DIR`` is the command-line entry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.report.html import render_html
from chaosmesh_sec.report.junit import render_junit
from chaosmesh_sec.report.markdown import render_markdown
from chaosmesh_sec.report.model import Report
from chaosmesh_sec.report.reading import load_report

__all__ = [
    "FILES",
    "Report",
    "load_report",
    "render_html",
    "render_junit",
    "render_markdown",
    "write_reports",
]

logger = logging.getLogger("chaostoolkit")

FILES = {"html": "report.html", "markdown": "report.md", "junit": "junit.xml"}
"""What :func:`write_reports` writes in its folder, by format."""


def write_reports(journals: Sequence[Path], out_dir: Path, title: str = "") -> dict[str, Path]:
    """Render `journals` into `out_dir` (created if needed); return each file's path by format.

    Keys: ``html``, ``markdown``, ``junit`` (see :data:`FILES`). `title`: the report's
    (default: ``Chaos Toolkit report, <day of the first run>``). Every journal is read
    before anything is written: InvalidInput names the first that cannot be read or is
    not a journal (nothing written then); OSError when `out_dir` cannot be written.
    """
    if not journals:
        raise InvalidInput("journals", "give at least one journal")
    report = load_report([Path(j) for j in journals], title)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "html": render_html(report),
        "markdown": render_markdown(report),
        "junit": render_junit(report),
    }
    written = {}
    for kind, text in texts.items():
        path = out_dir / FILES[kind]
        path.write_text(text, encoding="utf-8")
        written[kind] = path
    logger.info("Report of %d journal(s) written to %s", len(report.experiments), out_dir)
    return written
