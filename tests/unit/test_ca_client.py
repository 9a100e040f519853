"""The istiod CA client: the wire format by hand, and real gRPC calls to a fake istiod.

The fake is a grpc server in this process, on 127.0.0.1 with TLS from a CA made
here (serving name ``istiod.istio-system.svc``). It checks the bearer token, and
signs the CSR's key for the caller's SPIFFE identity, replacing any SAN the CSR
asked for. Its own small protobuf helpers below are independent of the module's.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes import _ca_client
from chaosmesh_sec.probes._ca_client import (
    METHOD,
    CaClient,
    IssueOutcome,
    create_certificate,
    decode_response,
    encode_request,
    new_csr,
)
from tests.fakes import fake_jwt

SERVER_NAME = "istiod.istio-system.svc"
# JWT-shaped, so the scrubbing of its parts is exercised too
TOKEN = fake_jwt({"sub": "system:serviceaccount"}, signature=b"signature-of-the-token")
IDENTITY = "spiffe://cluster.local/ns/chaos/sa/prober"
NO_PROXY = [("grpc.enable_http_proxy", 0)]  # 127.0.0.1 must not go through an *_proxy


# ---------------------------------------------------------------- protobuf, test side


def pb_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def pb_field(number: int, wire: int, payload: bytes) -> bytes:
    if wire == 2:
        payload = pb_varint(len(payload)) + payload
    return pb_varint(number << 3 | wire) + payload


def pb_response(chain: list[str]) -> bytes:
    return b"".join(pb_field(1, 2, pem.encode()) for pem in chain)


def pb_request(data: bytes) -> tuple[bytes, int]:
    """(csr, validity_duration) of an IstioCertificateRequest with only fields 1 and 3."""

    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if not byte & 0x80:
                return value, pos

    csr, validity, pos = b"", 0, 0
    while pos < len(data):
        tag, pos = varint(pos)
        if tag == 1 << 3 | 2:
            size, pos = varint(pos)
            csr, pos = data[pos : pos + size], pos + size
        elif tag == 3 << 3 | 0:
            validity, pos = varint(pos)
            if validity >= 1 << 63:
                validity -= 1 << 64
        else:
            raise AssertionError(f"unexpected tag {tag}")
    return csr, validity


# ---------------------------------------------------------------- wire format


@pytest.mark.parametrize(
    ("csr", "validity", "wire"),
    [
        (b"CSR", 3600, b"\x0a\x03CSR\x18\x90\x1c"),
        (b"x", 300, b"\x0a\x01x\x18\xac\x02"),
        (b"x", 1, b"\x0a\x01x\x18\x01"),
        (b"x", -1, b"\x0a\x01x\x18" + b"\xff" * 9 + b"\x01"),
        (b"x", 2**63 - 1, b"\x0a\x01x\x18" + b"\xff" * 8 + b"\x7f"),
        (b"", 0, b""),  # proto3 leaves zero values out
        (b"x" * 200, 0, b"\x0a\xc8\x01" + b"x" * 200),
    ],
)
def test_encode_request_bytes(csr: bytes, validity: int, wire: bytes) -> None:
    assert encode_request(csr, validity) == wire


@pytest.mark.parametrize("validity", [0, 1, 127, 128, 86_400, -1, -(2**63), 2**63 - 1])
def test_encode_request_round_trips(validity: int) -> None:
    csr = new_csr()
    assert pb_request(encode_request(csr, validity)) == (csr, validity)


@pytest.mark.parametrize(("validity", "error"), [(2**63, ValueError), (True, TypeError)])
def test_encode_request_refuses_non_int64(validity: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_request(b"x", validity)


@pytest.mark.parametrize(
    "chain",
    [[], ["a"], ["leaf", "intermediate", "root"], ["x" * 70_000, ""], ["é ü 证书"]],
)
def test_decode_response_round_trips(chain: list[str]) -> None:
    assert decode_response(pb_response(chain)) == tuple(chain)


def test_decode_response_skips_unknown_fields_of_every_wire_type() -> None:
    group = pb_field(6, 3, b"") + pb_field(2, 0, b"\x01") + pb_field(7, 3, b"")
    group += pb_field(1, 2, b"not the chain") + pb_field(7, 4, b"") + pb_field(6, 4, b"")
    data = b"".join(
        [
            pb_field(2, 0, pb_varint(-5)),
            pb_field(1, 2, b"leaf"),
            pb_field(5, 1, b"\x00" * 8),
            pb_field(4, 2, pb_field(1, 2, b"nested, not the chain")),
            group,
            pb_field(9, 5, b"\x00" * 4),
            pb_field(2**29 - 1, 0, b"\x00"),
            pb_field(1, 2, b"root"),
        ]
    )
    assert decode_response(data) == ("leaf", "root")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x0a", id="length-missing"),
        pytest.param(b"\x0a\x05abc", id="length-past-end"),
        pytest.param(b"\x0a\x02\xff\xfe", id="not-utf8"),
        pytest.param(b"\x08\x01", id="chain-as-varint"),
        pytest.param(b"\x00\x00", id="field-0"),
        pytest.param(b"\x16\x00", id="wire-type-6"),
        pytest.param(b"\x17\x00", id="wire-type-7"),
        pytest.param(b"\x10\x80", id="truncated-varint"),
        pytest.param(b"\x10" + b"\xff" * 10 + b"\x01", id="varint-11-bytes"),
        pytest.param(b"\x10" + b"\xff" * 9 + b"\x02", id="varint-over-64-bits"),
        pytest.param(b"\x11" + b"\x00" * 7, id="fixed64-truncated"),
        pytest.param(b"\x15" + b"\x00" * 3, id="fixed32-truncated"),
        pytest.param(b"\x23\x10\x01", id="group-not-closed"),
        pytest.param(b"\x23\x2c", id="group-closed-by-another"),
        pytest.param(b"\x24", id="group-end-without-start"),
        pytest.param(b"\x23" * 10_000, id="groups-nested-deep"),
    ],
)
def test_decode_response_refuses_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_response(data)


# ---------------------------------------------------------------- CSR


@pytest.mark.parametrize("uri", ["", "spiffe://cluster.local/ns/istio-system/sa/istiod"])
def test_new_csr_is_a_signed_p256_request(uri: str) -> None:
    csr = x509.load_pem_x509_csr(new_csr(uri))
    assert csr.is_signature_valid
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == [_ca_client.CSR_COMMON_NAME]
    sans = [
        ext.value.get_values_for_type(x509.UniformResourceIdentifier)
        for ext in csr.extensions
        if isinstance(ext.value, x509.SubjectAlternativeName)
    ]
    assert sans == ([[uri]] if uri else [])


def test_new_csr_makes_a_new_key_each_time() -> None:
    one, two = (x509.load_pem_x509_csr(new_csr()).public_key() for _ in range(2))
    assert one != two


# ---------------------------------------------------------------- a fake istiod


def _sign(
    builder: x509.CertificateBuilder, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    builder = builder.serial_number(x509.random_serial_number()).issuer_name(issuer)
    return builder.sign(key, hashes.SHA256())


def _valid(builder: x509.CertificateBuilder, seconds: int) -> x509.CertificateBuilder:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return builder.not_valid_before(start).not_valid_after(start + timedelta(seconds=seconds))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return _sign(builder, self.cert.subject, self.key)


def make_ca(cn: str, parent: Ca | None = None) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _valid(x509.CertificateBuilder(), 86_400)
        .subject_name(_name(cn))
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if parent is None:
        return Ca(key, _sign(builder, _name(cn), key))
    return Ca(key, parent.sign(builder))


@dataclass(frozen=True)
class Pki:
    root: Ca
    intermediate: Ca
    other_root: Ca
    serving: tuple[bytes, bytes]  # key PEM, certificate PEM


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = make_ca("fake istio root")
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _valid(x509.CertificateBuilder(), 86_400)
        .subject_name(_name("istiod"))
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
    )
    serving = root.sign(builder)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Pki(
        root=root,
        intermediate=make_ca("fake istio intermediate", root),
        other_root=make_ca("another root"),
        serving=(key_pem, serving.public_bytes(serialization.Encoding.PEM)),
    )


@dataclass
class FakeIstiod:
    """What to answer: "sign", "sleep" (until the deadline), "foreign-root", or raw bytes."""

    pki: Pki
    answer: str | bytes = "sign"
    address: str = ""
    cluster_ids: list[str] = field(default_factory=list)
    validities: list[int] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)

    def create_certificate(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        presented = str(metadata.get("authorization", ""))
        if presented != f"Bearer {TOKEN}":
            # a careless server: the details echo the token and its signature
            signature = presented.rsplit(".", 1)[-1]
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"authentication failed for {presented!r} (signature {signature})",
            )
        self.cluster_ids.append(str(metadata.get("clusterid")))
        if isinstance(self.answer, bytes):
            return self.answer
        if self.answer == "sleep":
            while context.is_active():
                time.sleep(0.01)
            return b""
        csr_pem, validity = pb_request(request)
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        self.validities.append(validity)
        issuer = self.pki.intermediate
        builder = (
            _valid(x509.CertificateBuilder(), validity)
            .subject_name(x509.Name([]))
            .public_key(csr.public_key())
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(IDENTITY)]),
                critical=True,
            )
        )
        leaf = issuer.sign(builder)
        self.serials.append(f"{leaf.serial_number:x}")
        root = self.pki.other_root if self.answer == "foreign-root" else self.pki.root
        return pb_response(
            [
                leaf.public_bytes(serialization.Encoding.PEM).decode(),
                issuer.pem.decode(),
                root.pem.decode(),
            ]
        )


@pytest.fixture
def istiod(pki: Pki) -> Iterator[FakeIstiod]:
    fake = FakeIstiod(pki)
    service, method = METHOD.strip("/").split("/")
    handler = grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(fake.create_certificate)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([pki.serving]))
    fake.address = f"127.0.0.1:{port}"
    server.start()
    yield fake
    server.stop(grace=None)


def issue(istiod: FakeIstiod, **kwargs: Any) -> IssueOutcome:
    args: dict[str, Any] = {
        "root_pem": istiod.pki.root.pem,
        "server_name": SERVER_NAME,
        "token": TOKEN,
        "channel_options": NO_PROXY,
        "timeout_seconds": 2.0,
        **kwargs,
    }
    return create_certificate(istiod.address, **args)


# ---------------------------------------------------------------- calls


def test_issued_with_leaf_facts(istiod: FakeIstiod) -> None:
    outcome = issue(istiod, validity_seconds=600, cluster_id="lab")
    assert (outcome.issued, outcome.code, outcome.message) == (True, "OK", "")
    assert outcome.latency_ms > 0
    leaf = outcome.leaf
    assert leaf is not None
    assert leaf.spiffe_uris == (IDENTITY,)
    assert leaf.chain_length == 3
    assert leaf.root_matches
    assert [leaf.serial] == istiod.serials
    lifetime = datetime.fromisoformat(leaf.not_after) - datetime.fromisoformat(leaf.not_before)
    assert lifetime == timedelta(seconds=600)
    assert datetime.fromisoformat(leaf.not_after).utcoffset() == timedelta(0)
    assert istiod.validities == [600]
    assert istiod.cluster_ids == ["lab"]
    assert json.loads(json.dumps(outcome.to_json()))["leaf"]["spiffe_uris"] == [IDENTITY]


def test_requested_san_is_replaced_by_the_callers_identity(istiod: FakeIstiod) -> None:
    forged = "spiffe://cluster.local/ns/istio-system/sa/istiod"
    outcome = issue(istiod, csr_pem=new_csr(forged))
    assert outcome.leaf is not None
    assert outcome.leaf.spiffe_uris == (IDENTITY,)


def test_chain_ending_at_another_root_is_issued_but_does_not_match(istiod: FakeIstiod) -> None:
    istiod.answer = "foreign-root"
    outcome = issue(istiod)
    assert outcome.issued
    assert outcome.leaf is not None
    assert not outcome.leaf.root_matches


def test_one_client_many_calls(istiod: FakeIstiod) -> None:
    with CaClient(
        istiod.address,
        root_pem=istiod.pki.root.pem,
        server_name=SERVER_NAME,
        token=TOKEN,
        channel_options=NO_PROXY,
    ) as client:
        outcomes = [client.issue(timeout_seconds=2.0) for _ in range(3)]
        assert TOKEN not in repr(client)
    assert [o.code for o in outcomes] == ["OK"] * 3
    assert len(set(istiod.serials)) == 3
    assert istiod.cluster_ids == ["Kubernetes"] * 3


def test_wrong_token_is_unauthenticated_and_never_echoed(
    istiod: FakeIstiod, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chaostoolkit")
    wrong = fake_jwt({"sub": "someone-else"}, signature=b"wrong-signature-here")
    outcome = issue(istiod, token=wrong)
    assert (outcome.issued, outcome.code, outcome.leaf) == (False, "UNAUTHENTICATED", None)
    assert "authentication failed" in outcome.message
    assert "[redacted]" in outcome.message
    for secret in (wrong, *wrong.split(".")):
        assert secret not in outcome.message
        assert secret not in json.dumps(outcome.to_json())
        assert secret not in caplog.text
    assert "UNAUTHENTICATED" in caplog.text


def test_slow_server_is_deadline_exceeded(istiod: FakeIstiod) -> None:
    istiod.answer = "sleep"
    outcome = issue(istiod, timeout_seconds=0.3)
    assert (outcome.issued, outcome.code) == (False, "DEADLINE_EXCEEDED")
    assert 250 <= outcome.latency_ms < 2000


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"wrong_root": True}, id="untrusted-server"),
        pytest.param({"server_name": "istiod.elsewhere.svc"}, id="wrong-server-name"),
    ],
)
def test_tls_failure_is_unavailable(istiod: FakeIstiod, kwargs: dict[str, object]) -> None:
    if kwargs.pop("wrong_root", False):
        kwargs["root_pem"] = istiod.pki.other_root.pem
    outcome = issue(istiod, **kwargs)
    assert (outcome.issued, outcome.code) == (False, "UNAVAILABLE")
    assert outcome.message
    assert istiod.cluster_ids == []  # the handler never ran


def test_nothing_listening_is_unavailable(pki: Pki) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = create_certificate(
        f"127.0.0.1:{port}",
        root_pem=pki.root.pem,
        server_name=SERVER_NAME,
        token=TOKEN,
        channel_options=NO_PROXY,
        timeout_seconds=2.0,
    )
    assert (outcome.issued, outcome.code) == (False, "UNAVAILABLE")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"\xff", id="not-protobuf"),
        pytest.param(b"", id="empty-chain"),
        pytest.param(pb_response(["not a certificate"]), id="not-pem"),
    ],
)
def test_garbage_response_is_invalid_response(istiod: FakeIstiod, answer: bytes) -> None:
    istiod.answer = answer
    outcome = issue(istiod)
    assert (outcome.issued, outcome.code, outcome.leaf) == (False, "INVALID_RESPONSE", None)
    assert outcome.message


def test_leaf_with_duplicate_san_is_invalid_response(istiod: FakeIstiod) -> None:
    """cryptography raises DuplicateExtension, not a ValueError, for this one."""
    key = ec.generate_private_key(ec.SECP256R1())
    uris = [x509.UniformResourceIdentifier(IDENTITY)]
    builder = (
        _valid(x509.CertificateBuilder(), 3600)
        .subject_name(x509.Name([]))
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName(uris), critical=False)
        .add_extension(x509.IssuerAlternativeName(uris), critical=False)
    )
    der = istiod.pki.root.sign(builder).public_bytes(serialization.Encoding.DER)
    ian_oid, san_oid = b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11"
    assert der.count(ian_oid) == 1
    leaf = x509.load_der_x509_certificate(der.replace(ian_oid, san_oid))  # signature now bad
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    istiod.answer = pb_response([leaf_pem, istiod.pki.root.pem.decode()])
    outcome = issue(istiod)
    assert (outcome.issued, outcome.code) == (False, "INVALID_RESPONSE")
    assert "Duplicate" in outcome.message


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"token": TOKEN + "\n"}, ValueError),
        ({"token": ""}, ValueError),
        ({"cluster_id": "two words"}, ValueError),
        ({"root_pem": b"not PEM"}, ValueError),
        ({"address": ""}, ValueError),
        ({"timeout_seconds": 0}, ValueError),
        ({"timeout_seconds": float("inf")}, ValueError),
        ({"validity_seconds": 2**63}, ValueError),
        ({"validity_seconds": 1.5}, TypeError),
    ],
)
def test_bad_arguments_raise_before_any_call(
    pki: Pki, kwargs: dict[str, object], error: type[Exception]
) -> None:
    args: dict[str, Any] = {
        "address": "127.0.0.1:1",
        "root_pem": pki.root.pem,
        "server_name": SERVER_NAME,
        "token": TOKEN,
        **kwargs,
    }
    with pytest.raises(error) as info:
        create_certificate(**args)
    assert TOKEN not in str(info.value)


# ---------------------------------------------------------------- channels kept open


def _channels(monkeypatch: pytest.MonkeyPatch) -> ca.Channels:
    """Channels for targets named by address (inside-cluster style, no API needed)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return ca.Channels(None, "pod-ip", server_name=SERVER_NAME, cluster_id="Kubernetes")


def _target(address: str) -> ca.CaTarget:
    return ca.CaTarget(name="service", kind="service", namespace="x", dns_name=address)


def _caller(pki: Pki, token: str = TOKEN) -> ca.Caller:
    return ca.Caller("chaos", "prober", IDENTITY, root_pem=pki.root.pem, token=token)


def test_channels_send_many_csrs_on_one_channel_each_with_a_fresh_key(
    istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _channels(monkeypatch) as channels:
        outcomes = [
            channels.issue(_target(istiod.address), _caller(istiod.pki), timeout_seconds=2)
            for _ in range(5)
        ]
        assert all(o.issued for o in outcomes), outcomes
        assert channels.opened == 1
        assert len(set(istiod.serials)) == 5
        assert TOKEN not in repr(channels)


def test_a_broken_channel_is_that_csrs_outcome_then_opened_again(
    istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch
) -> None:
    who, target = _caller(istiod.pki), _target(istiod.address)
    with _channels(monkeypatch) as channels:
        assert channels.issue(target, who, timeout_seconds=2).issued
        istiod.answer = "sleep"
        hung = channels.issue(target, who, timeout_seconds=0.3)
        assert (hung.issued, hung.code) == (False, "DEADLINE_EXCEEDED")
        istiod.answer = "sign"
        assert channels.issue(target, who, timeout_seconds=2).issued
        assert channels.opened == 2


def test_a_refusal_keeps_the_channel_and_a_new_token_gets_a_new_one(
    istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _target(istiod.address)
    with _channels(monkeypatch) as channels:
        refused = channels.issue(target, _caller(istiod.pki, "wrong"), timeout_seconds=2)
        assert refused.code == "UNAUTHENTICATED"
        assert channels.issue(target, _caller(istiod.pki, "wrong"), timeout_seconds=2).code == (
            "UNAUTHENTICATED"
        )
        assert channels.opened == 1
        assert channels.issue(target, _caller(istiod.pki), timeout_seconds=2).issued
        assert channels.opened == 2


def test_channels_of_pods_gone_are_closed(
    istiod: FakeIstiod, monkeypatch: pytest.MonkeyPatch
) -> None:
    who, here = _caller(istiod.pki), _target(istiod.address)
    gone = _target(istiod.address.replace("127.0.0.1", "localhost"))
    with _channels(monkeypatch) as channels:
        assert channels.issue(here, who, timeout_seconds=2).issued
        assert channels.issue(gone, who, timeout_seconds=2).code in ("OK", "UNAVAILABLE")
        channels.keep_only([here])
        assert channels.issue(here, who, timeout_seconds=2).issued
        assert channels.opened == 2
        channels.issue(gone, who, timeout_seconds=2)
        assert channels.opened == 3
