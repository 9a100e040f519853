"""The Go components the lab builds: one wrapper module per upstream module.

Each wrapper module in ``components/<name>/`` pins its upstream version in go.mod and
go.sum (committed) and lists the binaries it builds as ``tool`` directives. A build
is keyed by a hash of go.mod, go.sum and the Go version, so it is reused until a pin
changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab.paths import COMPONENTS_DIR

__all__ = [
    "COMPONENTS",
    "ISTIO_VERSION",
    "Component",
    "binary_name",
    "component",
    "go_output_name",
    "module_source",
]

# The Istio release the pinned istio.io/istio pseudo-version is (the tag 1.28.3).
ISTIO_VERSION = "1.28.3"

_TOOL_BLOCK = re.compile(r"^tool\s*\(\s*\n(?P<body>.*?)^\)", re.MULTILINE | re.DOTALL)
_TOOL_LINE = re.compile(r"^tool\s+(?P<pkg>\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Component:
    """One wrapper module and the binaries it builds."""

    name: str
    module_dir: Path
    # Modules whose versions the public checksum database does not know (pseudo-versions
    # of istio's release tags): go.sum still pins their hashes.
    nosumdb: tuple[str, ...] = ()
    # Linker flags, e.g. the version an Istio binary reports (release builds stamp it;
    # pilot-agent sends it to istiod, which decides per proxy version what to send).
    ldflags: tuple[str, ...] = ()

    @property
    def packages(self) -> tuple[str, ...]:
        """The main packages listed as ``tool`` directives in go.mod."""
        text = (self.module_dir / "go.mod").read_text()
        pkgs: list[str] = []
        for block in _TOOL_BLOCK.finditer(text):
            pkgs.extend(line.strip() for line in block["body"].splitlines() if line.strip())
        pkgs.extend(m["pkg"] for m in _TOOL_LINE.finditer(text) if m["pkg"] != "(")
        return tuple(pkgs)

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(binary_name(pkg) for pkg in self.packages)

    def pin(self, go_version: str) -> str:
        """A short digest of everything that decides what gets built."""
        digest = hashlib.sha256(go_version.encode())
        digest.update(" ".join(self.ldflags).encode())
        for file in ("go.mod", "go.sum"):
            digest.update((self.module_dir / file).read_bytes())
        return digest.hexdigest()[:12]


def go_output_name(package: str) -> str:
    """The file name ``go build -o DIR/`` gives a main package (a major-version suffix
    is skipped: ``go.etcd.io/etcd/server/v3`` -> ``server``)."""
    parts = package.rstrip("/").split("/")
    return parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]


def binary_name(package: str) -> str:
    """The lab's name for a built binary: ``go.etcd.io/etcd/server/v3`` -> ``etcd``."""
    name = go_output_name(package)
    return "etcd" if package.startswith("go.etcd.io/etcd/server/") else name


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", COMPONENTS_DIR / "etcd"),
    Component("kubernetes", COMPONENTS_DIR / "kubernetes"),
    Component("kwok", COMPONENTS_DIR / "kwok"),
    Component("cni-plugins", COMPONENTS_DIR / "cni-plugins"),
    Component("httpbin", COMPONENTS_DIR / "httpbin"),
    Component(
        "istiod",
        COMPONENTS_DIR / "istiod",
        nosumdb=("istio.io/istio", "github.com/openshift/api"),
        ldflags=(f"-X istio.io/istio/pkg/version.buildVersion={ISTIO_VERSION}",),
    ),
)


def module_source(component: Component, module: str) -> Path:
    """The module-cache directory of ``module`` as pinned by ``component`` (for its
    manifests: CRDs and stages are read from the pinned source, never copied)."""
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", module],
        cwd=component.module_dir,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )
    path = Path(out.stdout.strip())
    if out.returncode != 0 or not path.is_dir():
        raise LabError(f"cannot find the source of {module}: {out.stderr.strip()}")
    return path


def component(name: str) -> Component:
    for c in COMPONENTS:
        if c.name == name:
            return c
    raise KeyError(name)
