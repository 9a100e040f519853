"""The wheel a user installs carries what it needs: the kit, experiments, game days, deploy/.

From the files of this checkout (copied: the tree itself is not touched), ``python -m
build`` makes an sdist and then a wheel from that sdist, so the sdist's contents are
tested too. The wheel goes into a fresh virtual environment outside the repository
(its dependencies come from the package index, or pip's cache). There, with nothing of
the checkout on the path, ``chaosmesh-sec init`` writes the shipped folders into a
folder of the user's, ``chaos validate`` passes on every experiment written there, and
``chaosmesh-sec kit`` reads the kit from the installed package.

Marked ``packaging`` (by its directory): it runs in a full ``pytest``, not in ``-m unit``;
it needs network access to the package index unless pip's cache holds every dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaosmesh_sec import _shipped, kit

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.name for p in (ROOT / "experiments").glob("*.json"))


@dataclass(frozen=True)
class Installed:
    """The wheel installed in a venv of its own; `work` is a folder outside the repository."""

    wheel: Path
    bin: Path
    work: Path

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run(
            list(argv),
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _checked(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{' '.join(done.args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _source_files() -> list[str]:
    """The checkout's files as git sees them (tracked, and new ones it does not ignore)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    for name in _source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = dist.glob("*.whl")
    venv.create(base / "venv", with_pip=True)
    work = base / "work"
    work.mkdir()
    env = Installed(wheel, base / "venv" / "bin", work)
    _checked(env.run(str(env.bin / "pip"), "install", "--quiet", str(wheel), timeout=900))
    yield env


def test_the_wheel_carries_the_shipped_folders(installed: Installed) -> None:
    import zipfile

    names = zipfile.ZipFile(installed.wheel).namelist()
    for folder in _shipped.SHIPPED:
        inside = {n for n in names if n.startswith(f"chaosmesh_sec/_data/{folder}/")}
        files = {
            f"chaosmesh_sec/_data/{p.relative_to(ROOT)}"
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert inside == files, folder
    assert not [n for n in names if n.startswith("chaosmesh_sec/probes/kit/")]


def test_the_installed_pack_reads_the_kit_from_itself(installed: Installed) -> None:
    script = (
        "import json; from chaosmesh_sec import kit; "
        "print(json.dumps([str(kit.KIT_DIR), kit.kits(), kit.matrices(), "
        "{n: kit.documents(n) for n in kit.kits()}]))"
    )
    where, kits, matrices, documents = json.loads(
        _checked(installed.run(str(installed.bin / "python"), "-c", script))
    )
    assert "site-packages" in where and where.endswith("chaosmesh_sec/_data/probes")
    assert kits == kit.kits() and matrices == kit.matrices()
    assert documents == {n: kit.documents(n) for n in kit.kits()}
    listed = _checked(installed.run(str(installed.bin / "chaosmesh-sec"), "kit", "list"))
    assert listed.split() == kits


@pytest.fixture(scope="module")
def written(installed: Installed) -> Path:
    mine = installed.work / "mine"
    out = _checked(installed.run(str(installed.bin / "chaosmesh-sec"), "init", str(mine)))
    assert out.split() == [str(mine / f) for f in _shipped.SHIPPED]
    return mine


def test_init_writes_the_experiments_and_the_kit(written: Path) -> None:
    for folder in _shipped.SHIPPED:
        theirs = sorted(str(p.relative_to(written / folder)) for p in (written / folder).rglob("*"))
        ours = sorted(str(p.relative_to(ROOT / folder)) for p in (ROOT / folder).rglob("*"))
        assert theirs == ours, folder
    assert sorted(p.name for p in (written / "experiments").glob("*.json")) == EXPERIMENTS
    assert (written / "probes" / "wrong-identity" / "kustomization.yaml").is_file()


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_chaos_validate_passes_on_every_experiment_written(
    installed: Installed, written: Path, experiment: str
) -> None:
    chaos, path = str(installed.bin / "chaos"), str(written / "experiments" / experiment)
    _checked(installed.run(chaos, "--no-version-check", "validate", path))
