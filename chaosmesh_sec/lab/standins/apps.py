"""A stand-in for the probe kit's sample app Istio's helloworld (httpbin is the real
go-httpbin: :mod:`chaosmesh_sec.lab.images`).

``python -m chaosmesh_sec.lab.standins.apps helloworld`` answers ``GET /hello`` on
port 5000 (``$PORT``) with ``Hello version: <SERVICE_VERSION>, instance:
<POD_NAME>``, as the ``istio/examples-helloworld`` images do. Anything else is 404.
HTTP/1.1 only; no TLS (the sidecar terminates it).
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["main"]


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/hello":
            version = os.environ.get("SERVICE_VERSION", "v1")
            instance = os.environ.get("POD_NAME", os.uname().nodename)
            self._send(200, f"Hello version: {version}, instance: {instance}\n")
        else:
            self._send(404, "not found\n")

    do_POST = do_GET  # the seeds allow GET only: a POST must reach the app to be denied

    def _send(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "helloworld"
    if kind != "helloworld":
        raise SystemExit(f"usage: apps helloworld (got {kind!r})")
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), _App).serve_forever()


if __name__ == "__main__":
    main()
