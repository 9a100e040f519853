"""Runs last (marked lab_after): ``lab down`` leaves no process, netns, bridge, rule or mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosmesh_sec.lab import inspect, manager, network, procs
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.topology import DEFAULT

pytestmark = pytest.mark.lab_after


def _mounts_mentioning(text: str) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if text in line]


def test_lab_down_leaves_nothing_behind(lab: Path) -> None:
    paths = LabPaths.default()
    assert procs.lab_pids(str(paths.state)), "the lab should be running before down"
    assert network.lab_netns()
    manager.down(paths)
    assert procs.lab_pids(str(paths.state)) == []
    assert inspect.container_processes(sandboxes=True) == []
    assert network.lab_netns() == []
    assert not Path(f"/sys/class/net/{DEFAULT.bridge}").exists()
    assert not [
        p for p in Path("/sys/class/net").iterdir() if p.name.startswith(("cmslab", "cmsp"))
    ]
    assert not paths.state.exists()
    assert _mounts_mentioning("cmslab") == []
    assert _mounts_mentioning(str(paths.state)) == []
    # Host routes to the pod CIDRs went with the bridge.
    routes = Path("/proc/net/route").read_text()
    assert DEFAULT.bridge not in routes


def test_lab_down_left_no_iptables_rule_in_the_host_namespace() -> None:
    from chaosmesh_sec.lab.hostcmd import run

    saved = run(["iptables-save"])
    assert "cmslab" not in saved
    assert "10.77." not in saved and "10.78." not in saved
