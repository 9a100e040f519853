"""``chaosmesh-sec init DIR``: the shipped folders written into a folder of the user's."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosmesh_sec import _shipped
from chaosmesh_sec.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_in_a_checkout_the_shipped_folders_are_the_top_level_ones() -> None:
    for folder in _shipped.SHIPPED:
        assert _shipped.shipped(folder) == ROOT / folder
    with pytest.raises(ValueError, match="not shipped"):
        _shipped.shipped("tests")


def test_init_writes_every_shipped_folder_as_it_is(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    result = CliRunner().invoke(main, ["init", str(dest)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(dest / f) for f in _shipped.SHIPPED]
    for folder in _shipped.SHIPPED:
        assert _files(dest / folder) == _files(ROOT / folder), folder


def test_init_overwrites_nothing_without_force(tmp_path: Path) -> None:
    mine = tmp_path / "experiments" / "smoke.json"
    mine.parent.mkdir()
    mine.write_text("my own")
    result = CliRunner().invoke(main, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert "would overwrite" in result.output and "smoke.json" in result.output
    assert "--force" in result.output
    assert mine.read_text() == "my own"
    assert not (tmp_path / "probes").exists()  # nothing written at all

    result = CliRunner().invoke(main, ["init", "--force", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert mine.read_text() == (ROOT / "experiments" / "smoke.json").read_text()
