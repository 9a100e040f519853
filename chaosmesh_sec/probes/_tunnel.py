"""A local TCP port that reaches one pod's port through the API server's port-forward.

Private to :mod:`chaosmesh_sec.probes`. From outside the cluster this is how a probe
talks to one chosen replica (``kubectl port-forward pod/...`` does the same). Each
connection accepted on ``127.0.0.1:<port>`` opens its own port-forward stream and
bytes are pumped both ways until either side closes.

Each stream gets an ``ApiClient`` of its own: ``kubernetes.stream`` swaps the
client's ``call_api`` while it opens the websocket, which is not safe to share with
threads making ordinary calls (or other port-forwards) on the same client.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from types import TracebackType
from typing import Any

from kubernetes import client as k8s
from kubernetes.stream import portforward

__all__ = ["PodTunnel"]

logger = logging.getLogger("chaostoolkit")

_CHUNK = 65536
_IDLE_POLL = 0.5


class PodTunnel:
    """``with PodTunnel(core, pod, namespace, 15012) as address:`` dials ``address``."""

    def __init__(self, core: Any, pod: str, namespace: str, port: int) -> None:
        self._config = core.api_client.configuration
        self._pod, self._namespace, self._port = pod, namespace, port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def __enter__(self) -> str:
        accept = threading.Thread(target=self._accept, name=f"tunnel-{self._pod}", daemon=True)
        accept.start()
        self._threads.append(accept)
        return self.address

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() (close alone does not)
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            pump = threading.Thread(target=self._pump, args=(conn,), daemon=True)
            pump.start()
            self._threads.append(pump)

    def _pump(self, local: socket.socket) -> None:
        forward: Any = None
        api = k8s.ApiClient(self._config)
        try:
            forward = portforward(
                k8s.CoreV1Api(api).connect_get_namespaced_pod_portforward,
                self._pod,
                self._namespace,
                ports=str(self._port),
            )
            remote = forward.socket(self._port)
            remote.setblocking(True)
            _splice(local, remote, self._closed)
            _hang_up(remote)
        except Exception as exc:  # noqa: BLE001 - the dialer sees the closed connection
            logger.debug("tunnel to %s/%s:%d: %s", self._namespace, self._pod, self._port, exc)
        finally:
            with contextlib.suppress(OSError):
                local.close()
            if forward is not None:
                with contextlib.suppress(Exception):
                    forward.close()
            api.close()


def _splice(a: socket.socket, b: Any, closed: threading.Event) -> None:
    """Copy bytes both ways until one side closes or the tunnel is closed."""
    while not closed.is_set():
        ready, _, _ = select.select([a, b], [], [], _IDLE_POLL)
        for src in ready:
            data = src.recv(_CHUNK)
            if not data:
                return
            (b if src is a else a).sendall(data)


def _hang_up(remote: Any, grace: float = 1.0) -> None:
    """Close our end so that the client library's proxy thread sees EOF, not a reset:
    shut our writing side, then read what is still in flight until its EOF."""
    with contextlib.suppress(OSError):
        remote.shutdown(socket.SHUT_WR)
        ready, _, _ = select.select([remote], [], [], grace)
        while ready and remote.recv(_CHUNK):
            ready, _, _ = select.select([remote], [], [], grace)
