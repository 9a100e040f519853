"""Stand-ins for the probe kit's sample apps: Istio's helloworld and httpbin.

``python -m chaosmesh_sec.lab.standins.apps helloworld`` answers ``GET /hello`` on
port 5000 with ``Hello version: <SERVICE_VERSION>, instance: <POD_NAME>``, as the
``istio/examples-helloworld`` images do. ``... apps httpbin`` answers on port 8080
(``$PORT``): ``/ip`` (the caller's address as the app sees it), ``/get`` and
``/headers`` (the request's headers, so a test can see what a sidecar forwarded),
``/status/<code>``. Anything else is 404. HTTP/1.1 only; no TLS (the sidecar
terminates it).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["main"]


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = "helloworld"

    def do_GET(self) -> None:
        if self.kind == "helloworld" and self.path.split("?")[0] == "/hello":
            version = os.environ.get("SERVICE_VERSION", "v1")
            instance = os.environ.get("POD_NAME", os.uname().nodename)
            self._send(200, f"Hello version: {version}, instance: {instance}\n", "text/plain")
        elif self.kind == "httpbin" and self.path == "/ip":
            self._send(200, json.dumps({"origin": self.client_address[0]}) + "\n")
        elif self.kind == "httpbin" and self.path.split("?")[0] in ("/get", "/headers"):
            self._send(200, json.dumps({"headers": dict(self.headers.items())}) + "\n")
        elif self.kind == "httpbin" and self.path.startswith("/status/"):
            code = self.path.rsplit("/", 1)[-1]
            self._send(int(code) if code.isdigit() else 400, "")
        else:
            self._send(404, "not found\n", "text/plain")

    do_POST = do_GET  # the seeds allow GET only: a POST must reach the app to be denied

    def _send(self, code: int, body: str, kind: str = "application/json") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "helloworld"
    if kind not in ("helloworld", "httpbin"):
        raise SystemExit(f"usage: apps helloworld|httpbin (got {kind!r})")
    port = int(os.environ.get("PORT", "5000" if kind == "helloworld" else "8080"))
    handler = type("App", (_App,), {"kind": kind})
    ThreadingHTTPServer(("0.0.0.0", port), handler).serve_forever()


if __name__ == "__main__":
    main()
