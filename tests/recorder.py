"""A tiny API server stand-in that records every request and answers each with one status.

For unit tests that must prove no request was made (input validation), or that see what
the pack makes of a real HTTP error response. It serves HTTPS with a throwaway
self-signed certificate made at run time (nothing is committed), or plain HTTP, and
writes a kubeconfig for itself. The client on the other side is the real one.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from base64 import b64encode
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FORBIDDEN = b'{"kind":"Status","apiVersion":"v1","status":"Failure","code":403}'


def self_signed(tmp: Path) -> tuple[Path, Path, bytes]:
    """A certificate for 127.0.0.1 and its key, written to ``tmp``; and the PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recorder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "cert.pem").write_bytes(pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tmp / "cert.pem", tmp / "key.pem", pem


class Recorder:
    """``with Recorder(tmp) as rec:`` serves until the block ends; ``rec.seen`` lists
    ``"METHOD /path"`` of every request; ``rec.kubeconfig`` points a client at it."""

    def __init__(
        self,
        tmp: Path,
        *,
        tls: bool = True,
        status: int = 403,
        body: bytes = FORBIDDEN,
        headers: dict[str, str] | None = None,
        token: str = "recorder-token-not-a-secret",
        answers: dict[tuple[str, str], tuple[int, bytes]] | None = None,
    ) -> None:
        """``answers``: ``(method, path prefix) -> (status, body)`` for the few requests
        a test needs answered otherwise; every other request gets ``status`` and ``body``."""
        self.seen: list[str] = []
        seen, extra, special = self.seen, dict(headers or {}), dict(answers or {})

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append(f"{self.command} {self.path}")
                code, text = next(
                    (
                        answer
                        for (method, prefix), answer in special.items()
                        if self.command == method and self.path.startswith(prefix)
                    ),
                    (status, body),
                )
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cluster: dict[str, Any] = {}
        if tls:
            cert, key, pem = self_signed(tmp)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            cluster["certificate-authority-data"] = b64encode(pem).decode()
        scheme = "https" if tls else "http"
        self.server_url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        cluster["server"] = self.server_url
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "rec", "cluster": cluster}],
                    "users": [{"name": "rec", "user": {"token": token}}],
                    "contexts": [{"name": "rec", "context": {"cluster": "rec", "user": "rec"}}],
                    "current-context": "rec",
                }
            )
        )

    def __enter__(self) -> Recorder:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
