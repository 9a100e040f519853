"""Runs first (marked lab_before), before the shared lab is up: ``lab up`` refuses bad conditions
cleanly, naming the problem and where to look, and leaves nothing half-started."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab import build, manager, network, procs
from chaosmesh_sec.lab.components import Component
from chaosmesh_sec.lab.paths import LabPaths

pytestmark = pytest.mark.lab_before


@pytest.fixture
def no_lab() -> Iterator[LabPaths]:
    paths = LabPaths.default()
    if procs.lab_pids(str(paths.state)) or network.lab_netns():
        pytest.skip("a lab is running; these tests need the machine without one")
    yield paths
    assert procs.lab_pids(str(paths.state)) == [], "a lab process was left running"
    assert network.lab_netns() == [], "a lab namespace was left behind"


def test_up_with_a_busy_port_names_the_port_and_starts_nothing(no_lab: LabPaths) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("0.0.0.0", 6443))
        squatter.listen()
        with pytest.raises(LabError, match="6443"):
            manager.up(no_lab, progress=lambda _m: None)


def test_up_without_go_says_so(no_lab: LabPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    with pytest.raises(LabError, match="Go toolchain is missing"):
        manager.up(no_lab, progress=lambda _m: None)


def test_a_failed_build_names_its_log_and_leaves_no_partial_binaries(tmp_path: Path) -> None:
    module = tmp_path / "broken"
    module.mkdir()
    (module / "go.mod").write_text(
        "module chaosmesh-sec.lab/broken\n\ngo 1.24.0\n\ntool chaosmesh-sec.lab/broken/cmd/none\n"
    )
    (module / "go.sum").write_text("")
    broken = Component("broken", module)
    paths = LabPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    with pytest.raises(LabError) as failure:
        build._build_one(paths, broken, build.go_version(), lambda _m: None)
    log = paths.build_logs / "broken.log"
    assert str(log) in str(failure.value)
    assert log.read_text().strip()
    assert not list(paths.bin_root.glob("broken-*"))
