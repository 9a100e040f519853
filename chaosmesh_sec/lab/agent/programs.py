"""What the lab runs for a container: the image's real program, a stand-in, or its command.

Images the lab has for real (:mod:`chaosmesh_sec.lab.images`: istiod's ``pilot``,
``proxyv2``'s pilot-agent and Envoy, istio-cni's ``install-cni``, go-httpbin) have
their files bound at their image paths in the container, and run their entrypoint
unless the container gives a ``command``. Images the lab cannot run (Cilium, Istio's
Python helloworld, the lab's ambient enrolment) map to a stand-in of ours in
:mod:`chaosmesh_sec.lab.standins`, run with this Python. Any other container with an
explicit ``command`` runs that command with the host's tools. Containers with none of
these are simulated only (kwok keeps their status).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from chaosmesh_sec.lab.images import Image

__all__ = ["STANDINS", "argv_for", "image_of", "mount_script"]


def _standin(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


STANDINS: dict[str, list[str]] = {
    # image repository basename -> the argv that stands for its entrypoint
    "ambient-enrolment": _standin("chaosmesh_sec.lab.standins.ambient_enrolment"),
    "cilium": _standin("chaosmesh_sec.lab.standins.cilium_agent"),
    "examples-helloworld-v1": _standin("chaosmesh_sec.lab.standins.apps", "helloworld"),
    "examples-helloworld-v2": _standin("chaosmesh_sec.lab.standins.apps", "helloworld"),
}


def _repository_basename(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def image_of(container: Any, images: dict[str, Image]) -> Image | None:
    """The lab's real image for ``container``, if it has one."""
    return images.get(_repository_basename(container.image or ""))


def argv_for(container: Any, images: dict[str, Image]) -> list[str]:
    """The argv the lab runs for ``container``; empty when there is nothing to run."""
    command = list(container.command or [])
    args = list(container.args or [])
    if command:
        return command + args
    image = image_of(container, images)
    if image is not None:
        return [*image.entrypoint, *args]
    standin = STANDINS.get(_repository_basename(container.image or ""))
    if standin:
        return [*standin, *args]
    return []


HOST = "/run/.cmslab-host"  # the host's tree, while a container's mounts are set up


def _normalise(target: str) -> str:
    return "/run" + target[len("/var/run") :] if target.startswith("/var/run/") else target


def mount_script(mounts: list[tuple[Path, str, bool]], scratch: Path, pidfile: Path) -> str:
    """Shell lines that set up a container's mounts in a private mount namespace.

    ``/run`` becomes a private tmpfs (ServiceAccount tokens and other secrets live
    there, invisible to the host). A target whose parent does not exist on the host
    gets an overlay on its nearest existing ancestor, so nothing is created on the
    host's filesystem. Every source, and every overlay's upper and work directory, is
    reached through a view of the host's tree taken before any overlay (:data:`HOST`,
    unmounted at the end): an overlay on ``/var/lib`` would otherwise stand between a
    later mount and its source (writes to an emptyDir would be copied up into that
    container's overlay instead of shared, and an upper directory on an overlay is
    refused). Once the mounts are up the shell's pid is published in ``pidfile``
    (through that view too: the pod's directory may be under an overlay by then).
    """
    lines = [
        "set -e",
        "mount -t tmpfs -o mode=0755 lab-run /run",
        f"mkdir -p {HOST} && mount --rbind / {HOST}",
    ]
    overlays: set[str] = set()
    for n, (source, raw_target, read_only) in enumerate(mounts):
        target = _normalise(raw_target)
        if not target.startswith("/run/") and not Path(target).exists():
            ancestor = Path(target).parent
            while not ancestor.exists():
                ancestor = ancestor.parent
            if str(ancestor) not in overlays and str(ancestor) != "/":
                layer = _host_view(scratch / f"overlay{len(overlays)}")
                upper, work = layer / "upper", layer / "work"
                lines.append(f"mkdir -p {shlex.quote(str(upper))} {shlex.quote(str(work))}")
                opts = f"lowerdir={_host_view(ancestor)},upperdir={upper},workdir={work}"
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
        lines.append(f"mount --bind {shlex.quote(str(_host_view(source)))} {q}")
        if read_only:
            lines.append(f"mount -o remount,bind,ro {q}")
    tmp, final = (shlex.quote(str(_host_view(pidfile.parent) / n)) for n in ("pid.tmp", "pid"))
    lines.append(f"echo $$ > {tmp} && mv -f {tmp} {final}")
    lines.append(f"umount -l {HOST} && rmdir {HOST}")
    return "\n".join(lines)


def _host_view(path: Path) -> Path:
    return Path(HOST) / path.resolve().relative_to("/")
