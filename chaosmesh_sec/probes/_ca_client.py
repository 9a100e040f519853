"""A minimal client for istiod's certificate service: one ``CreateCertificate`` call over gRPC.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). The service is
``/istio.v1.auth.IstioCertificateService/CreateCertificate`` on istiod's TLS port
(15012). Its two messages are small enough to encode by hand, so there is no
protobuf dependency and no generated code:

- request ``IstioCertificateRequest``: field 1 ``csr`` (string), field 3
  ``validity_duration`` (int64, seconds); field 4 ``metadata`` is never sent;
- response ``IstioCertificateResponse``: field 1 ``cert_chain`` (repeated string),
  PEM, the leaf first and the root last.

The caller is authenticated by a ServiceAccount token (``authorization: Bearer``)
and names its cluster (``clusterid``). The token is never logged nor returned:
error details are scrubbed of it. Keys are made in memory by :func:`new_csr` and
dropped there. RPC failures are outcomes, not exceptions: see :class:`IssueOutcome`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "METHOD",
    "CaClient",
    "IssueOutcome",
    "LeafFacts",
    "create_certificate",
    "decode_response",
    "encode_request",
    "new_csr",
]

logger = logging.getLogger("chaostoolkit")

METHOD = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
CSR_COMMON_NAME = "chaosmesh-sec-probe"
INVALID_RESPONSE = "INVALID_RESPONSE"

# protobuf wire types
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_MAX_FIELD = (1 << 29) - 1
_MAX_GROUP_DEPTH = 64
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_REDACTED = "[redacted]"


# ---------------------------------------------------------------- wire format (pure)


def _varint(value: int) -> bytes:
    """A non-negative integer < 2**64 as a base-128 varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_request(csr_pem: bytes, validity_seconds: int) -> bytes:
    """``IstioCertificateRequest{csr, validity_duration}`` on the wire.

    `csr_pem` is sent as is. Zero values are omitted, as proto3 does; a negative
    validity is encoded as a 10-byte two's-complement varint, as int64 is.
    """
    if isinstance(validity_seconds, bool) or not isinstance(validity_seconds, int):
        raise TypeError(f"validity_seconds must be an int, got {type(validity_seconds).__name__}")
    if not _INT64_MIN <= validity_seconds <= _INT64_MAX:
        raise ValueError(f"validity_seconds must fit in an int64, got {validity_seconds}")
    out = bytearray()
    if csr_pem:
        out += _varint(1 << 3 | _LEN) + _varint(len(csr_pem)) + csr_pem
    if validity_seconds:
        out += _varint(3 << 3 | _VARINT) + _varint(validity_seconds & 0xFFFF_FFFF_FFFF_FFFF)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it; at most 10 bytes, < 2**64."""
    value = 0
    for i in range(10):
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        if i == 9 and byte > 1:
            raise ValueError("varint overflows 64 bits")
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")


def _read_tag(data: bytes, pos: int) -> tuple[int, int, int]:
    """Field number, wire type, and the position after the tag."""
    tag, pos = _read_varint(data, pos)
    field, wire = tag >> 3, tag & 7
    if not 1 <= field <= _MAX_FIELD:
        raise ValueError(f"invalid field number {field}")
    return field, wire, pos


def _read_len(data: bytes, pos: int, field: int) -> tuple[int, int]:
    """Start and end of the length-delimited value at `pos`."""
    size, pos = _read_varint(data, pos)
    if size > len(data) - pos:
        raise ValueError(f"field {field} runs past the end of the message")
    return pos, pos + size


def _skip(data: bytes, pos: int, field: int, wire: int, depth: int = 0) -> int:
    """The position after the value of an unknown field (groups included)."""
    if wire == _VARINT:
        return _read_varint(data, pos)[1]
    if wire == _LEN:
        return _read_len(data, pos, field)[1]
    if wire in (_I64, _I32):
        end = pos + (8 if wire == _I64 else 4)
        if end > len(data):
            raise ValueError(f"field {field} runs past the end of the message")
        return end
    if wire == _SGROUP:
        if depth >= _MAX_GROUP_DEPTH:
            raise ValueError("groups nested too deep")
        while True:
            if pos >= len(data):
                raise ValueError(f"group {field} is not closed")
            inner, inner_wire, pos = _read_tag(data, pos)
            if inner_wire == _EGROUP:
                if inner != field:
                    raise ValueError(f"group {field} closed as {inner}")
                return pos
            pos = _skip(data, pos, inner, inner_wire, depth + 1)
    if wire == _EGROUP:
        raise ValueError(f"end of group {field} without its start")
    raise ValueError(f"invalid wire type {wire} for field {field}")


def decode_response(data: bytes) -> tuple[str, ...]:
    """The ``cert_chain`` of an ``IstioCertificateResponse``; unknown fields are skipped.

    Raises ValueError on malformed input (truncation, bad wire types, bad UTF-8).
    """
    chain: list[str] = []
    pos = 0
    while pos < len(data):
        field, wire, pos = _read_tag(data, pos)
        if field != 1:
            pos = _skip(data, pos, field, wire)
            continue
        if wire != _LEN:
            raise ValueError(f"cert_chain has wire type {wire}, expected {_LEN}")
        start, pos = _read_len(data, pos, field)
        try:
            chain.append(data[start:pos].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"cert_chain[{len(chain)}] is not UTF-8: {exc.reason}") from None
    return tuple(chain)


# ---------------------------------------------------------------- certificates (pure)


def _csr(key: ec.EllipticCurvePrivateKey, common_name: str, requested_uri: str) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if requested_uri:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(requested_uri)]),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def new_csr(requested_uri: str = "") -> bytes:
    """A PEM CSR for a fresh in-memory ECDSA P-256 key, CN ``chaosmesh-sec-probe``.

    With `requested_uri`, the CSR asks for that URI SAN (istiod should replace it
    with the caller's own identity). The key is discarded on return.
    """
    return _csr(ec.generate_private_key(ec.SECP256R1()), CSR_COMMON_NAME, requested_uri)


@dataclass(frozen=True)
class LeafFacts:
    """Public facts about an issued chain: the leaf's identity and validity, and its root.

    `spiffe_uris`: every URI SAN of the leaf, SPIFFE or not, so a foreign one shows.
    `serial`: lowercase hex. `not_before` / `not_after`: ISO 8601, UTC.
    `chain_length`: certificates in the chain (an element with several PEM blocks
    counts each). `root_matches`: the chain's last certificate is one of the
    trusted roots, by DER equality.
    """

    spiffe_uris: tuple[str, ...]
    serial: str
    not_before: str
    not_after: str
    chain_length: int
    root_matches: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "spiffe_uris": list(self.spiffe_uris),
            "serial": self.serial,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "chain_length": self.chain_length,
            "root_matches": self.root_matches,
        }


@dataclass(frozen=True)
class IssueOutcome:
    """One ``CreateCertificate`` call: issued or not, why, and how long the RPC took.

    `code`: the gRPC status name ("OK" when issued), or "INVALID_RESPONSE" when the
    chain is unusable. `message`: the status details, scrubbed of the token (empty
    when issued). `latency_ms`: the RPC alone (with channel setup on a first call,
    without decoding). `leaf`: set only when issued. `chain_pem`: the issued chain
    as returned (leaf first), empty unless issued; left out of :meth:`to_json`.
    """

    issued: bool
    code: str
    message: str
    latency_ms: float
    leaf: LeafFacts | None
    chain_pem: tuple[str, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "issued": self.issued,
            "code": self.code,
            "message": self.message,
            "latency_ms": self.latency_ms,
            "leaf": self.leaf.to_json() if self.leaf else None,
        }


def _leaf_facts(chain: Sequence[str], roots_der: frozenset[bytes]) -> LeafFacts:
    """Facts about `chain`; ValueError if it is empty or an element is not PEM certificates."""
    certs: list[x509.Certificate] = []
    for i, pem in enumerate(chain):
        try:
            certs.extend(x509.load_pem_x509_certificates(pem.encode()))
        except ValueError as exc:
            raise ValueError(f"cert_chain[{i}] is not PEM certificates: {exc}") from None
    if not certs:
        raise ValueError("cert_chain is empty")
    leaf = certs[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        uris: tuple[str, ...] = ()
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        # not ValueErrors, unlike the other parse failures
        raise ValueError(f"the leaf's extensions do not parse: {exc}") from None
    else:
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    return LeafFacts(
        spiffe_uris=uris,
        serial=f"{leaf.serial_number:x}",
        not_before=leaf.not_valid_before_utc.isoformat(),
        not_after=leaf.not_valid_after_utc.isoformat(),
        chain_length=len(certs),
        root_matches=certs[-1].public_bytes(serialization.Encoding.DER) in roots_der,
    )


# ---------------------------------------------------------------- the client


def _visible_ascii(name: str, value: str, *, secret: bool = False) -> str:
    """A non-empty string of visible ASCII: grpc fails a call with other metadata as INTERNAL."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if not all("!" <= ch <= "~" for ch in value):
        shown = "" if secret else f": {value!r}"
        raise ValueError(f"{name} must be visible ASCII, no whitespace{shown}")
    return value


def _scrubber(token: str) -> tuple[str, ...]:
    """What to redact from error details: the token and its long dot-separated parts."""
    parts = {token, *(part for part in token.split(".") if len(part) >= 16)}
    return tuple(sorted(parts, key=len, reverse=True))


def _status(exc: grpc.RpcError) -> tuple[str, str]:
    """Status name and details of a failed call (grpc raises errors that are also a Call)."""
    try:
        return exc.code().name, exc.details() or ""
    except AttributeError:  # a bare RpcError, as only an interceptor would raise
        return grpc.StatusCode.UNKNOWN.name, ""


class CaClient:
    """One TLS channel to istiod's certificate service, for one or many :meth:`issue` calls.

    `root_pem` is the trusted root bundle (``istio-ca-root-cert``); `server_name`
    is the name istiod's serving certificate is checked against (the address is
    often an IP or a port-forward). Bad arguments raise ValueError or TypeError.
    Nothing connects before the first call. Use as a context manager, or :meth:`close`.
    """

    def __init__(
        self,
        address: str,
        *,
        root_pem: bytes,
        server_name: str,
        token: str,
        cluster_id: str = "Kubernetes",
        channel_options: Sequence[tuple[str, Any]] | None = None,
    ) -> None:
        if not isinstance(address, str) or not address:
            raise ValueError("address must be a non-empty host:port")
        _visible_ascii("server_name", server_name)
        _visible_ascii("token", token, secret=True)
        _visible_ascii("cluster_id", cluster_id)
        try:
            roots = x509.load_pem_x509_certificates(root_pem)
        except ValueError as exc:
            raise ValueError(f"root_pem is not PEM certificates: {exc}") from None
        self._roots_der = frozenset(c.public_bytes(serialization.Encoding.DER) for c in roots)
        self._metadata = (("authorization", f"Bearer {token}"), ("clusterid", cluster_id))
        self._redact = _scrubber(token)
        self.address = address
        options: list[tuple[str, Any]] = [("grpc.ssl_target_name_override", server_name)]
        options += channel_options or []
        self._channel = grpc.secure_channel(
            address, grpc.ssl_channel_credentials(root_certificates=root_pem), options=options
        )
        # Encoding and decoding stay outside grpc: it would turn a (de)serializer
        # exception into an INTERNAL status, hiding bad input and bad responses.
        self._create: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(
            METHOD, request_serializer=None, response_deserializer=None
        )

    def __repr__(self) -> str:
        return f"CaClient({self.address!r})"

    def __enter__(self) -> CaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def issue(
        self,
        csr_pem: bytes | None = None,
        *,
        validity_seconds: int = 3600,
        timeout_seconds: float = 5.0,
    ) -> IssueOutcome:
        """Ask for a certificate for `csr_pem` (a fresh :func:`new_csr` if None).

        Never raises for an RPC failure: the status becomes the outcome.
        """
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float):
            raise TypeError(
                f"timeout_seconds must be a number, got {type(timeout_seconds).__name__}"
            )
        if not (math.isfinite(timeout_seconds) and timeout_seconds > 0):
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        request = encode_request(new_csr() if csr_pem is None else csr_pem, validity_seconds)

        start = time.perf_counter()
        try:
            response = self._create(request, timeout=timeout_seconds, metadata=self._metadata)
        except grpc.RpcError as exc:
            latency_ms = (time.perf_counter() - start) * 1000
            return self._outcome(False, *_status(exc), latency_ms, None)
        latency_ms = (time.perf_counter() - start) * 1000

        try:
            chain = decode_response(response)
            leaf = _leaf_facts(chain, self._roots_der)
        except ValueError as exc:
            return self._outcome(False, INVALID_RESPONSE, str(exc), latency_ms, None)
        return self._outcome(True, grpc.StatusCode.OK.name, "", latency_ms, leaf, chain)

    def _outcome(
        self,
        issued: bool,
        code: str,
        message: str,
        latency_ms: float,
        leaf: LeafFacts | None,
        chain: tuple[str, ...] = (),
    ) -> IssueOutcome:
        for secret in self._redact:
            message = message.replace(secret, _REDACTED)
        logger.debug(
            "CreateCertificate at %s: %s in %.1f ms%s",
            self.address,
            code,
            latency_ms,
            f" ({message})" if message else "",
        )
        return IssueOutcome(issued, code, message, round(latency_ms, 3), leaf, chain)


def create_certificate(
    address: str,
    *,
    root_pem: bytes,
    server_name: str,
    token: str,
    cluster_id: str = "Kubernetes",
    csr_pem: bytes | None = None,
    validity_seconds: int = 3600,
    timeout_seconds: float = 5.0,
    channel_options: Sequence[tuple[str, Any]] | None = None,
) -> IssueOutcome:
    """One :meth:`CaClient.issue` on a channel opened and closed for it."""
    with CaClient(
        address,
        root_pem=root_pem,
        server_name=server_name,
        token=token,
        cluster_id=cluster_id,
        channel_options=channel_options,
    ) as client:
        return client.issue(
            csr_pem, validity_seconds=validity_seconds, timeout_seconds=timeout_seconds
        )
