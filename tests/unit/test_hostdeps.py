"""The host's Debian packages: what is missing is installed with apt-get, as root only."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab import hostdeps

HOSTDEPS = hostdeps.__name__


def _absent(monkeypatch: pytest.MonkeyPatch, *commands: str) -> None:
    """Every command on PATH but `commands` (apt-get always there)."""
    monkeypatch.setattr(
        f"{HOSTDEPS}.shutil.which", lambda cmd: None if cmd in commands else f"/usr/bin/{cmd}"
    )


def test_chromium_for_the_report_tests_is_a_host_package() -> None:
    assert hostdeps.REQUIRED["chromium"] == "chromium"
    assert hostdeps.REQUIRED["iptables"] == "iptables"


def test_missing_names_each_package_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch, "chromium", "nsenter", "unshare")
    assert hostdeps.missing() == ["chromium", "util-linux"]


def test_ensure_installs_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch, "chromium")
    monkeypatch.setattr(f"{HOSTDEPS}.os.geteuid", lambda: 0)
    ran: list[list[str]] = []

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        assert kwargs["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(f"{HOSTDEPS}.subprocess.run", run)
    said: list[str] = []
    hostdeps.ensure(said.append)
    assert ran == [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]]
    assert said == ["installing Debian packages: chromium"]


def test_ensure_does_nothing_when_all_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch)
    monkeypatch.setattr(f"{HOSTDEPS}.subprocess.run", lambda *a, **k: pytest.fail("ran apt-get"))
    hostdeps.ensure(lambda line: pytest.fail(f"said {line}"))


def test_ensure_needs_root_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    _absent(monkeypatch, "chromium")
    monkeypatch.setattr(f"{HOSTDEPS}.os.geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root to install chromium"):
        hostdeps.ensure(print)
