"""The admin and readiness endpoints.

- ``127.0.0.1:15000`` (Envoy's admin port, local to the pod as in a sidecar):
  ``GET /certs``, the workload certificate chain and trusted roots in the shape of
  Envoy's ``/certs`` (what ``pilot-agent request GET certs`` prints), and ``GET /ready``;
- ``0.0.0.0:15021`` (the sidecar's health port, the container's readinessProbe):
  ``GET /healthz/ready``.

Ready means: the capture rules are in place, a certificate is held and the
policies have been read once (Envoy is ready once it has its secrets and its xDS
configuration, after ``istio-init`` installed the rules). Nothing else of Envoy's
admin API is served (no ``/stats``, ``/config_dump``, ``/logging``, ``/quitquitquit``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chaosmesh_sec.lab.standins.sidecar.config import ADMIN_PORT, READINESS_PORT

__all__ = ["AdminServers"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: dict[str, Callable[[], tuple[int, Any]]]):
        super().__init__(address, _Handler)
        self.routes = routes


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "envoy"
    sys_version = ""

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        status, payload = route() if route else (404, "not found\n")
        if isinstance(payload, str):
            body, ctype = payload.encode(), "text/plain"
        else:
            body, ctype = (json.dumps(payload, indent=2) + "\n").encode(), "application/json"
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class AdminServers:
    """The two HTTP servers, each in a thread of its own."""

    def __init__(
        self,
        ready: Callable[[], tuple[bool, str]],
        certs: Callable[[], dict[str, Any]],
        *,
        admin_address: tuple[str, int] = ("127.0.0.1", ADMIN_PORT),
        readiness_address: tuple[str, int] = ("0.0.0.0", READINESS_PORT),
    ) -> None:
        def readiness() -> tuple[int, Any]:
            ok, why = ready()
            return (200, "LIVE\n") if ok else (503, f"not ready: {why}\n")

        self._servers = [
            _Server(admin_address, {"/certs": lambda: (200, certs()), "/ready": readiness}),
            _Server(readiness_address, {"/healthz/ready": readiness, "/ready": readiness}),
        ]

    def start(self) -> None:
        for server in self._servers:
            threading.Thread(
                target=server.serve_forever, args=(0.1,), name="admin", daemon=True
            ).start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
