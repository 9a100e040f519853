"""Run and stop a pod's containers as processes on this machine."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosmesh_sec.lab.agent.programs import argv_for, image_of, mount_script
from chaosmesh_sec.lab.agent.volumes import field_value
from chaosmesh_sec.lab.images import Image

__all__ = ["ContainerProcess", "run_as", "start_container"]

logger = logging.getLogger("chaostoolkit")

ExitCallback = Callable[["ContainerProcess", int], None]


@dataclass
class ContainerProcess:
    pod_uid: str
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = field(default_factory=time.time)
    stopping: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the container's process group, SIGKILL it after ``grace``."""
        self.stopping = True
        if self.proc.poll() is not None:
            return
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=grace)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """A kubelet's ``$(VAR)`` expansion in a command, an argument or an env value: a
    defined variable is replaced, an undefined one left as written, ``$$`` is ``$``."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(sub, value)


def _env(pod: Any, container: Any, base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    # How the lab (and its tests) find a pod's processes in /proc.
    env["CMSLAB_POD_UID"] = pod.metadata.uid
    env["CMSLAB_CONTAINER"] = container.name
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = expand(var.value, env)
        elif var.value_from is not None and var.value_from.field_ref is not None:
            env[var.name] = field_value(pod, var.value_from.field_ref.field_path)
    return env


def _node_init(mounts: list[tuple[Path, str, bool]]) -> list[tuple[Path, str, bool]]:
    """A node's ``/proc`` shows its init as PID 1, in the node's own network namespace
    (istio-cni's repair controller enters ``/proc/1/ns/net`` as the host's). Lab nodes
    share this machine's kernel, whose PID 1 is not a node's (and, without
    CAP_SYS_PTRACE, not readable here): in a hostPath of ``/proc``, PID 1's entry is
    the node agent's, the process that stands for the node's kubelet and init."""
    me = Path(f"/proc/{os.getpid()}")
    return [(me, f"{target}/1", True) for source, target, _ in mounts if source == Path("/proc")]


def run_as(pod: Any, container: Any) -> tuple[int, int] | None:
    """The (uid, gid) ``container`` runs as, from its or the pod's securityContext; None
    for the image's user (root, for every image the lab runs). A runAsUser without a
    runAsGroup runs with group 0, as a runtime does for an image without a USER group."""
    uid = gid = None
    for ctx in (pod.spec.security_context, container.security_context):
        if ctx is not None:
            uid = ctx.run_as_user if ctx.run_as_user is not None else uid
            gid = ctx.run_as_group if ctx.run_as_group is not None else gid
    if uid is None and gid is None:
        return None
    return (uid or 0, gid or 0)


def _user_switch(pod: Any, container: Any) -> list[str]:
    """The argv prefix that drops to the container's user once its mounts are up."""
    ids = run_as(pod, container)
    if ids is None or ids == (0, 0):
        return []
    uid, gid = ids
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def start_container(
    pod: Any,
    container: Any,
    *,
    netns: str,
    volumes: dict[str, Path],
    pod_dir: Path,
    images: dict[str, Image],
    base_env: dict[str, str],
    on_exit: ExitCallback,
) -> ContainerProcess | None:
    """Start ``container`` of ``pod``; None when the lab has nothing to run for it.

    The image's files (when the lab has the image) are bound read-only first, then the
    volumes, as a runtime mounts volumes over the image's filesystem."""
    argv = argv_for(container, images)
    if not argv:
        return None
    image = image_of(container, images)
    mounts = [(source, target, True) for target, source in (image.files if image else {}).items()]
    mounts += [
        (volumes[m.name], m.mount_path, bool(m.read_only))
        for m in container.volume_mounts or []
        if m.name in volumes
    ]
    mounts += _node_init(mounts)
    hosts = pod_dir / "hosts"
    if netns and hosts.exists():  # the pod's Service names (see agent.services)
        mounts.append((hosts, "/etc/hosts", True))
    scratch = pod_dir / "scratch" / container.name
    scratch.mkdir(parents=True, exist_ok=True)
    # The pid file appears once the mounts are in place: `kubectl exec` (the lab's
    # exec shim) waits for it, as a kubelet only execs into a started container.
    pidfile = pod_dir / "containers" / container.name / "pid"
    script = mount_script(mounts, scratch, pidfile) + '\nexec "$@"'
    cmd = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh"]
    if netns:
        cmd = ["nsenter", f"--net=/run/netns/{netns}", "--", *cmd]
    env = _env(pod, container, base_env)
    cmd += _user_switch(pod, container) + [expand(arg, env) for arg in argv]
    log_path = pod_dir / "logs" / f"{container.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    workdir = (
        container.working_dir
        if container.working_dir and os.path.isdir(container.working_dir)
        else "/"
    )
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    cp = ContainerProcess(pod.metadata.uid, container.name, proc, log_path)
    logger.info(
        "lab: %s/%s container %s started (pid %d)",
        pod.metadata.namespace,
        pod.metadata.name,
        container.name,
        proc.pid,
    )

    def _wait() -> None:
        code = proc.wait()
        on_exit(cp, code)

    threading.Thread(target=_wait, name=f"wait-{container.name}", daemon=True).start()
    return cp
