"""The repository's packaging files: the license the metadata names, and the pins
``make venv`` installs with."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_license_file_is_the_apache_2_text_the_metadata_names() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith(
        "Apache License\n                           Version 2.0, January 2004"
    )
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 190


def test_constraints_pin_every_package_but_the_pack_itself() -> None:
    lines = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", line), line
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert "chaosmesh-sec" not in names
    assert {"chaostoolkit-lib", "kubernetes", "pytest", "ruff", "mypy"} <= names


def test_make_venv_installs_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -c constraints.txt -e '.[dev,lab]'" in makefile
    assert re.search(r"^constraints:", makefile, re.MULTILINE)
