"""Run a command in a pod's container through the API (``kubectl exec``), collect its output.

Private to :mod:`chaosmesh_sec.probes`. Each call gets an ``ApiClient`` of its own:
``kubernetes.stream`` swaps the client's request function while it runs, which is
not safe to share between threads (the probes exec in parallel).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from kubernetes.stream import stream

__all__ = ["exec_in_pod"]


def exec_in_pod(
    config: Any, pod: Any, container: str | None, argv: list[str], timeout: float
) -> tuple[str, str]:
    """``(stdout, stderr)`` of ``argv`` in ``pod``'s ``container`` (its first by default).

    Raises what the API raises; waits at most ``timeout`` seconds for the command.
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
        resp.close()
        return out or "", err or ""
    finally:
        api.close()
