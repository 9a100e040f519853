"""What the lab runs for a container: its command on this machine, a local build, or a stand-in.

Images whose entrypoint the lab builds from source (istiod's ``pilot``) map to the
local binary; images the lab cannot run (istio-cni's ``install-cni``) map to a
stand-in of ours in :mod:`chaosmesh_sec.lab.standins`, run with this Python. Any
container with an explicit ``command`` runs that command with the host's tools.
Containers with none of these are simulated only (kwok keeps their status).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_ENTRYPOINTS", "argv_for", "mount_script"]

Entrypoint = Callable[[Path], list[str]]


def _lab_binary(name: str) -> Entrypoint:
    return lambda bin_dir: [str(bin_dir / name)]


def _standin(module: str, *args: str) -> Entrypoint:
    return lambda _bin_dir: [sys.executable, "-m", module, *args]


IMAGE_ENTRYPOINTS: dict[str, Entrypoint] = {
    # image repository basename -> the argv that stands for its entrypoint
    "pilot": _lab_binary("pilot-discovery"),
    "install-cni": _standin("chaosmesh_sec.lab.standins.cni_node"),
    "proxyv2": _standin("chaosmesh_sec.lab.standins.sidecar"),
    "cilium": _standin("chaosmesh_sec.lab.standins.cilium_agent"),
    "examples-helloworld-v1": _standin("chaosmesh_sec.lab.standins.apps", "helloworld"),
    "examples-helloworld-v2": _standin("chaosmesh_sec.lab.standins.apps", "helloworld"),
    "go-httpbin": _standin("chaosmesh_sec.lab.standins.apps", "httpbin"),
}


def _repository_basename(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def argv_for(container: Any, bin_dir: Path) -> list[str]:
    """The argv the lab runs for ``container``; empty when there is nothing to run."""
    command = list(container.command or [])
    args = list(container.args or [])
    if command:
        return command + args
    entry = IMAGE_ENTRYPOINTS.get(_repository_basename(container.image or ""))
    if entry:
        return [*entry(bin_dir), *args]
    return []


def _normalise(target: str) -> str:
    return "/run" + target[len("/var/run") :] if target.startswith("/var/run/") else target


def mount_script(mounts: list[tuple[Path, str, bool]], scratch: Path) -> str:
    """Shell lines that set up a container's mounts in a private mount namespace.

    ``/run`` becomes a private tmpfs (ServiceAccount tokens and other secrets live
    there, invisible to the host). A target whose parent does not exist on the host
    gets an overlay on its nearest existing ancestor, so nothing is created on the
    host's filesystem.
    """
    lines = ["set -e", "mount -t tmpfs -o mode=0755 lab-run /run"]
    overlays: set[str] = set()
    for n, (source, raw_target, read_only) in enumerate(mounts):
        target = _normalise(raw_target)
        if not target.startswith("/run/") and not Path(target).exists():
            ancestor = Path(target).parent
            while not ancestor.exists():
                ancestor = ancestor.parent
            if str(ancestor) not in overlays and str(ancestor) != "/":
                layer = scratch / f"overlay{len(overlays)}"
                upper, work = layer / "upper", layer / "work"
                lines.append(f"mkdir -p {shlex.quote(str(upper))} {shlex.quote(str(work))}")
                opts = f"lowerdir={ancestor},upperdir={upper},workdir={work}"
                lines.append(
                    f"mount -t overlay lab-overlay{n} -o {shlex.quote(opts)} "
                    f"{shlex.quote(str(ancestor))}"
                )
                overlays.add(str(ancestor))
        q = shlex.quote(target)
        if source.is_dir():
            lines.append(f"mkdir -p {q}")
        else:
            lines.append(f"mkdir -p $(dirname {q}) && touch {q}")
        lines.append(f"mount --bind {shlex.quote(str(source))} {q}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {q}")
    return "\n".join(lines)
