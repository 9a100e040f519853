"""Run a command in a pod's container through the API (``kubectl exec``), collect its output.

Private to :mod:`chaosmesh_sec.probes`. Each call gets an ``ApiClient`` of its own:
``kubernetes.stream`` swaps the client's request function while it runs, which is
not safe to share between threads (the probes exec in parallel).
"""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes import client as k8s
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from chaosmesh_sec.errors import ChaosMeshSecError

__all__ = ["ExecFailed", "exec_in_pod"]


_EXIT_STATUS = re.compile(r"exit (status|code) \d+")


class ExecFailed(ChaosMeshSecError):
    """The command could not be run (not: it ran and exited non-zero)."""


def _check_status(raw: str) -> None:
    """Raise when the exec's status channel reports a failure other than an exit code."""
    if not raw:
        return
    try:
        status = json.loads(raw)
    except ValueError:
        return
    if status.get("status") != "Failure" or status.get("reason") == "NonZeroExitCode":
        return
    message = str(status.get("message") or status.get("reason") or raw)
    if _EXIT_STATUS.search(message):  # kwok words a non-zero exit as an internal error
        return
    raise ExecFailed(message[:500])


def exec_in_pod(
    config: Any, pod: Any, container: str | None, argv: list[str], timeout: float
) -> tuple[str, str]:
    """``(stdout, stderr)`` of ``argv`` in ``pod``'s ``container`` (its first by default).

    Raises what the API raises, and :class:`ExecFailed` when the command could not
    be run at all (a non-zero exit is not a failure here); waits at most
    ``timeout`` seconds for the command.
    """
    api = k8s.ApiClient(config)
    try:
        resp = stream(
            k8s.CoreV1Api(api).connect_get_namespaced_pod_exec,
            pod.metadata.name,
            pod.metadata.namespace,
            container=container or pod.spec.containers[0].name,
            command=argv,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=timeout)
        out, err = resp.read_stdout(), resp.read_stderr()
        status = resp.read_channel(ERROR_CHANNEL)
        resp.close()
        _check_status(status)
        return out or "", err or ""
    finally:
        api.close()
