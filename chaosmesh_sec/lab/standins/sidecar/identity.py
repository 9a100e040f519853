"""Workload identity: a certificate from istiod's CA, kept in memory and rotated.

What ``pilot-agent``'s SDS server does for Envoy, reduced: read the pod's projected
ServiceAccount token (audience ``istio-ca``) and the mesh root, make an ECDSA P-256
key and CSR, call ``CreateCertificate`` on ``CA_ADDR`` (through
:mod:`chaosmesh_sec.probes._ca_client`), and keep the issued chain and the key
only in memory: nothing is written to a file, nothing about them is logged but
public facts (SPIFFE ID, serial, validity). The TLS contexts are built from an
anonymous in-memory file (``memfd``), as Python's :mod:`ssl` loads keys only from
paths; it is closed as soon as they are loaded.

Failures are retried every 1-2 s, each logged. A certificate is rotated at half
its lifetime; while rotation fails the current one is kept, as Envoy keeps its
last secret. What is left out: the SDS API itself, file-mounted certificates,
CA-provided root bundles and trust-domain aliases, and a check of the token's
audience (istiod does it).
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chaosmesh_sec.lab.standins.sidecar.config import Settings
from chaosmesh_sec.probes._ca_client import CaClient, IssueOutcome, new_key_and_csr

__all__ = [
    "CLIENT_ALPN",
    "SERVER_ALPN",
    "Identity",
    "IdentityManager",
    "certs_json",
    "spiffe_uris",
    "tls_contexts",
]

logger = logging.getLogger("chaostoolkit")

CLIENT_ALPN = ["istio-peer-exchange", "istio"]
SERVER_ALPN = ["istio-peer-exchange", "istio", "istio-http/1.1", "http/1.1"]
CSR_COMMON_NAME = "chaosmesh-lab-sidecar"
ISSUE_TIMEOUT_SECONDS = 5.0

Issuer = Callable[[Settings, bytes, bytes, bytes], IssueOutcome]
"""(settings, token, root PEM, CSR PEM) -> outcome of one CreateCertificate call."""


def spiffe_uris(cert: x509.Certificate) -> list[str]:
    """The URI SANs of ``cert`` that are SPIFFE IDs (empty if none or unreadable)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (
        x509.ExtensionNotFound,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
        ValueError,
    ):
        return []
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return [u for u in uris if u.startswith("spiffe://")]


def _load_into(load: Callable[[str], None], pem: bytes) -> None:
    """Call ``load(path)`` on an anonymous in-memory file holding ``pem``."""
    fd = os.memfd_create("cmslab-sidecar-tls", os.MFD_CLOEXEC)
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        load(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def tls_contexts(
    chain_pem: Sequence[str], key_pem: bytes, root_pem: bytes
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(client, server) contexts presenting ``chain_pem`` + ``key_pem``, trusting ``root_pem`` only.

    Both require the peer's certificate and check it chains to the root; neither
    checks a host name (peers are named by SPIFFE URI SANs, checked by the caller).
    """
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    bundle = "".join(p if p.endswith("\n") else p + "\n" for p in chain_pem).encode() + key_pem
    for ctx in (client, server):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=root_pem.decode("ascii"))
        _load_into(ctx.load_cert_chain, bundle)
    client.set_alpn_protocols(CLIENT_ALPN)
    server.set_alpn_protocols(SERVER_ALPN)
    return client, server


@dataclass(frozen=True)
class Identity:
    """One issued certificate: public facts and the TLS contexts (which hold the key)."""

    chain: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]
    spiffe_id: str
    client_context: ssl.SSLContext
    server_context: ssl.SSLContext

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_before(self) -> datetime:
        return self.leaf.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @property
    def rotate_at(self) -> datetime:
        """Half-way through the certificate's lifetime."""
        return self.not_before + (self.not_after - self.not_before) / 2

    @property
    def serial(self) -> str:
        return f"{self.leaf.serial_number:x}"


def _issue_with_ca(settings: Settings, token: bytes, root_pem: bytes, csr: bytes) -> IssueOutcome:
    with CaClient(
        settings.ca_addr,
        root_pem=root_pem,
        server_name=settings.ca_server_name,
        token=token.decode("ascii", "replace").strip(),
        cluster_id=settings.cluster_id,
        # in-cluster: never through an http(s)_proxy of the environment
        channel_options=[("grpc.enable_http_proxy", 0)],
    ) as ca:
        return ca.issue(
            csr,
            validity_seconds=settings.cert_validity_seconds,
            timeout_seconds=ISSUE_TIMEOUT_SECONDS,
        )


class IdentityError(Exception):
    """Why no certificate was obtained (never carries the token or the key)."""


def _cert_facts(cert: x509.Certificate) -> dict[str, Any]:
    def stamp(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    left = cert.not_valid_after_utc - datetime.now(UTC)
    return {
        "path": "<inline>",
        "serial_number": f"{cert.serial_number:x}",
        "subject_alt_names": [{"uri": u} for u in spiffe_uris(cert)],
        "days_until_expiration": str(max(0, left.days)),
        "valid_from": stamp(cert.not_valid_before_utc),
        "expiration_time": stamp(cert.not_valid_after_utc),
    }


def certs_json(identity: Identity | None) -> dict[str, Any]:
    """What Envoy's admin ``/certs`` lists: the workload chain and the trusted roots."""
    if identity is None:
        return {"certificates": []}
    return {
        "certificates": [
            {
                "ca_cert": [_cert_facts(c) for c in identity.roots],
                "cert_chain": [_cert_facts(c) for c in identity.chain],
            }
        ]
    }


class IdentityManager:
    """Obtains the workload certificate, then rotates it, in a thread of its own."""

    def __init__(self, settings: Settings, issuer: Issuer = _issue_with_ca) -> None:
        self.settings = settings
        self._issuer = issuer
        self._current: Identity | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Identity | None:
        """The certificate in use (possibly expired if rotation keeps failing), or None."""
        return self._current

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="identity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                identity = self.obtain()
            except IdentityError as exc:
                failures += 1
                delay = random.uniform(1.0, 2.0)  # noqa: S311 - retry jitter, not a secret
                logger.warning(
                    "sidecar: certificate request to %s failed (attempt %d): %s; retry in %.1fs",
                    self.settings.ca_addr,
                    failures,
                    exc,
                    delay,
                )
                self._stop.wait(delay)
                continue
            failures = 0
            self._current = identity
            logger.info(
                "sidecar: certificate for %s, serial %s, valid %s..%s, rotation at %s",
                identity.spiffe_id or "(no SPIFFE ID)",
                identity.serial,
                identity.not_before.isoformat(),
                identity.not_after.isoformat(),
                identity.rotate_at.isoformat(),
            )
            wait = (identity.rotate_at - datetime.now(UTC)).total_seconds()
            self._stop.wait(max(1.0, wait))

    def obtain(self) -> Identity:
        """One attempt: token and root from their files, a new key, a call to the CA."""
        settings = self.settings
        try:
            token = Path(settings.token_path).read_bytes()
            root_pem = Path(settings.root_path).read_bytes()
        except OSError as exc:
            raise IdentityError(f"cannot read {exc.filename}: {exc.strerror}") from None
        if not token.strip():
            raise IdentityError(f"{settings.token_path} is empty")
        try:
            roots = tuple(x509.load_pem_x509_certificates(root_pem))
        except ValueError as exc:
            raise IdentityError(f"{settings.root_path} is not PEM certificates: {exc}") from None
        key_pem, csr_pem = new_key_and_csr(CSR_COMMON_NAME)
        try:
            outcome = self._issuer(settings, token, root_pem, csr_pem)
        except (ValueError, TypeError) as exc:  # bad address, token or root, per CaClient
            raise IdentityError(str(exc)) from None
        if not outcome.issued:
            raise IdentityError(f"{outcome.code}: {outcome.message or 'no details'}")
        try:
            chain = tuple(
                cert
                for pem in outcome.chain_pem
                for cert in x509.load_pem_x509_certificates(pem.encode())
            )
        except ValueError as exc:
            raise IdentityError(f"the issued chain does not parse: {exc}") from None
        if not chain:
            raise IdentityError("the CA returned an empty chain")
        key = serialization.load_pem_private_key(key_pem, password=None)
        if chain[0].public_key() != key.public_key():
            raise IdentityError("the issued leaf is not for the key of our CSR")
        roots_der = {r.public_bytes(serialization.Encoding.DER) for r in roots}
        if outcome.leaf is not None and not outcome.leaf.root_matches:
            logger.warning("sidecar: the issued chain does not end at the trusted root")
        # present the leaf and intermediates; peers have the root already
        presented = [
            c for c in chain if c.public_bytes(serialization.Encoding.DER) not in roots_der
        ]
        presented_pem = [c.public_bytes(serialization.Encoding.PEM).decode() for c in presented]
        if not presented_pem:
            raise IdentityError("the issued chain holds only the root")
        try:
            client, server = tls_contexts(presented_pem, key_pem, root_pem)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise IdentityError(f"the issued chain is unusable for TLS: {exc}") from None
        uris = spiffe_uris(chain[0])
        wanted = f"spiffe://{settings.trust_domain}/"
        spiffe_id = next((u for u in uris if u.startswith(wanted)), uris[0] if uris else "")
        return Identity(
            chain=tuple(presented),
            roots=roots,
            spiffe_id=spiffe_id,
            client_context=client,
            server_context=server,
        )
