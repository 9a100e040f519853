"""TLS and secrets: the API server must be https; an API error carries its status and
reason but never the response's body or headers; tokens stay out of reprs; the scrubber
catches split JWTs, opaque bearer tokens and base64 PEM keys.

The API errors come from a real HTTP exchange: the pack's real client against a local
recorder (tests/recorder.py) that answers 403 with a body and a header carrying secrets.
"""

import base64
import hashlib
import traceback
from pathlib import Path

import pytest

from chaosmesh_sec.client import api_client
from chaosmesh_sec.errors import ApiError, InvalidInput
from chaosmesh_sec.probes import control_plane
from chaosmesh_sec.report.scrub import REDACTED_KEY, REDACTED_TOKEN, scrub
from tests.fakes import fake_jwt, fake_pem_key
from tests.recorder import Recorder

SECRET_IN_BODY = "body-secret-3f9a1c"
SECRET_IN_HEADER = "header-secret-77d2e0"
TOKEN = "kubeconfig-token-5b8e44"


def _chain_text(exc: BaseException) -> str:
    """What chaoslib writes to the journal: the exception with its whole chain."""
    return "".join(traceback.format_exception(exc))


def test_an_api_error_keeps_status_and_reason_and_drops_body_and_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    body = f'{{"kind":"Status","code":403,"message":"{SECRET_IN_BODY}"}}'.encode()
    with (
        Recorder(tmp_path, body=body, headers={"X-Echo": SECRET_IN_HEADER}, token=TOKEN) as rec,
        pytest.raises(ApiError) as info,
    ):
        control_plane.root_cert_published(configuration={"kubeconfig_path": str(rec.kubeconfig)})
    assert rec.seen  # the request was really made and answered
    assert (info.value.status, info.value.reason) == (403, "Forbidden")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    text = _chain_text(info.value) + repr(info.value)
    assert "403 Forbidden" in text
    for secret in (SECRET_IN_BODY, SECRET_IN_HEADER, TOKEN, "ApiException"):
        assert secret not in text


@pytest.mark.parametrize("where", ["explicit", "env"])
def test_an_api_server_that_is_not_https_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    with Recorder(tmp_path, tls=False) as rec:
        monkeypatch.setenv("KUBECONFIG", str(rec.kubeconfig))
        configuration = {"kubeconfig_path": str(rec.kubeconfig)} if where == "explicit" else None
        with pytest.raises(InvalidInput) as info:
            api_client(configuration)
        with pytest.raises(InvalidInput):
            control_plane.root_cert_published(configuration=configuration)
    assert rec.server_url in str(info.value) and "https" in str(info.value)
    assert rec.seen == []


SECRET_FIELD = ("token", "key", "password", "secret", "pem")
NOT_SECRET = {  # named like a secret, and not one
    "chaosmesh_sec.gameday.plan.Entry.config_keys",  # the names of configuration keys
    "chaosmesh_sec.probes.issuance._IssuanceRun.token_audience",  # an audience's name
    "chaosmesh_sec.report.model.Experiment.key",  # the experiment's key in the report
}


def _pack_dataclasses() -> list[type]:
    """Every dataclass the pack defines outside the lab (whose stand-ins hold no caller's
    token)."""
    import dataclasses
    import importlib
    import pkgutil

    import chaosmesh_sec

    found = []
    for info in pkgutil.walk_packages(chaosmesh_sec.__path__, "chaosmesh_sec."):
        if info.name.startswith("chaosmesh_sec.lab"):
            continue
        module = importlib.import_module(info.name)
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and dataclasses.is_dataclass(value)
            and value.__module__ == info.name
        ]
    return found


def test_no_dataclass_of_the_pack_shows_a_secret_field_in_its_repr() -> None:
    import dataclasses

    classes = _pack_dataclasses()
    assert any(c.__name__ == "Caller" for c in classes)  # the scan reaches the probes
    shown = [
        f"{c.__module__}.{c.__name__}.{f.name}"
        for c in classes
        for f in dataclasses.fields(c)
        if f.repr and any(word in f.name.lower() for word in SECRET_FIELD)
    ]
    assert sorted(set(shown) - NOT_SECRET) == []


def test_a_caller_keeps_its_token_out_of_its_repr() -> None:
    from chaosmesh_sec.probes._ca_access import Caller

    caller = Caller("default", "sleep", "spiffe://cluster.local/ns/default/sa/sleep", b"", TOKEN)
    assert TOKEN not in repr(caller) and TOKEN not in str(caller)


def test_the_issuance_run_keeps_its_token_out_of_its_repr() -> None:
    import dataclasses

    from chaosmesh_sec.probes.issuance import _IssuanceRun

    fields = {f.name: f for f in dataclasses.fields(_IssuanceRun)}
    assert fields["given_token"].repr is False


JWT = (  # made of its parts at run time, so that no token shape is in the repository
    "eyJhbGci" + "OiJSUzI1NiIsImtpZCI6IjEifQ"
    ".eyJpc3MiOiJrdWJlcm5ldGVzIiwic3ViIjoic3lzdGVtOnNhIn0"
    ".c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
)


@pytest.mark.parametrize(
    "text",
    [
        f"token {JWT[:30]}\n{JWT[30:70]}\n{JWT[70:]} end",
        f"token {JWT[:40]}\n    {JWT[40:]} end",
        f'"token": "{JWT[:50]}\\n{JWT[50:]}" end',
    ],
    ids=["lines", "indented", "escaped-newline"],
)
def test_a_jwt_split_across_lines_is_redacted(text: str) -> None:
    out = scrub(text)
    assert REDACTED_TOKEN in out and out.endswith("end")
    for part in (JWT[:30], JWT[40:60], JWT[-20:]):
        assert part not in out


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer 0paque.T0ken_value-123~",
        "authorization: bearer abcdefgh12345678",
        '{"headers": {"authorization": "Bearer sk-live-abcdef0123456789"}}',
    ],
)
def test_an_opaque_bearer_token_is_redacted(text: str) -> None:
    out = scrub(text)
    assert REDACTED_TOKEN in out
    assert not any(word in out for word in ("0paque", "abcdefgh1234", "sk-live"))


def test_base64_pem_private_keys_are_redacted_and_certificates_kept() -> None:
    key = base64.b64encode(
        b"-----BEGIN EC " + b"PRIVATE KEY-----\nMHcCAQEEIBkey\n-----END EC " + b"PRIVATE KEY-----\n"
    ).decode()
    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    kubeconfig = f"client-key-data: {key}\ncertificate-authority-data: {cert.decode()}\n"
    out = scrub(kubeconfig)
    assert key not in out and key[:20] not in out and REDACTED_KEY in out
    assert cert.decode() in out
    wrapped = scrub(f"data {key[:40]}\n{key[40:]} end")
    assert key[:40] not in wrapped and key[40:] not in wrapped and wrapped.endswith("end")
    assert scrub(f"client-key-data: {cert.decode()}") == f"client-key-data: {REDACTED_KEY}"


def _signature(size: int) -> bytes:
    """`size` bytes that look like a signature (no value: hashes of small numbers)."""
    return b"".join(hashlib.sha256(bytes([i])).digest() for i in range(size // 32 + 1))[:size]


CLAIMS = {"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:default:sleep"}
TOKENS = {  # a signature as long as its alg makes it, as a real token's is
    "RS256": fake_jwt(CLAIMS, "RS256", _signature(256)),
    "ES256": fake_jwt(CLAIMS, "ES256", _signature(64)),
    "RS512-4096": fake_jwt(CLAIMS, "RS512", _signature(512)),
    "none": fake_jwt(CLAIMS, "none", b""),
    "bad-length": JWT,  # a signature no alg makes: still whole at the end of its line
}
BREAKS = {"newline": "\n", "crlf": "\r\n", "indented": "\n    ", "escaped": "\\n"}


@pytest.mark.parametrize("brk", BREAKS.values(), ids=BREAKS.keys())
@pytest.mark.parametrize("token", TOKENS.values(), ids=TOKENS.keys())
def test_a_jwt_that_ends_a_line_leaves_the_next_line_alone(token: str, brk: str) -> None:
    for after in ("ordinary text on the next line", "Next", "x", "eyJ is how a JWT begins"):
        assert scrub(f"token {token}{brk}{after}\nand more") == (
            f"token {REDACTED_TOKEN}{brk}{after}\nand more"
        )
    assert (
        scrub(f"token {token}.{brk}Next sentence") == f"token {REDACTED_TOKEN}.{brk}Next sentence"
    )


@pytest.mark.parametrize("brk", BREAKS.values(), ids=BREAKS.keys())
@pytest.mark.parametrize("token", [t for k, t in TOKENS.items() if k != "none"], ids=str)
def test_a_jwt_split_in_any_segment_is_redacted_whole(token: str, brk: str) -> None:
    header, claims, _ = token.split(".")
    places = [10, len(header) + 1, len(header) + 20, len(header) + len(claims) + 1]
    if token != JWT:  # inside a signature as long as its alg makes it, and before its last
        places += [len(token) - 30, len(token) - 1]
        signature = len(header) + len(claims) + 2  # and where a shorter key's would end
        places += [signature + n for n in (171, 342) if signature + n < len(token)]
    for cut in places:
        out = scrub(f"token {token[:cut]}{brk}{token[cut:]}{brk}ordinary text")
        assert out == f"token {REDACTED_TOKEN}{brk}ordinary text", cut
    width = 30 if token == JWT else 64  # wrapped as a terminal or base64 -w does
    body = token[: len(header) + len(claims)] if token == JWT else token
    wrapped = brk.join(body[i : i + width] for i in range(0, len(body), width))
    rest = token[len(body) :]
    assert scrub(f"{wrapped}{rest}{brk}end") == f"{REDACTED_TOKEN}{brk}end"


def test_a_base64_key_that_ends_a_line_leaves_the_next_line_alone() -> None:
    key = base64.b64encode(fake_pem_key("MHcCAQEEIBkey", "EC PRIVATE KEY").encode()).decode()
    for brk in BREAKS.values():
        for text in (f"client-key-data: {key}", f"data {key}"):
            marker = text.split(" ")[0] + " " + REDACTED_KEY
            assert scrub(f"{text}{brk}users and more text{brk}- name: x") == (
                f"{marker}{brk}users and more text{brk}- name: x"
            )
        wrapped = brk.join(key[i : i + 20] for i in range(0, len(key), 20))
        assert scrub(f"data {wrapped}{brk}next line") == f"data {REDACTED_KEY}{brk}next line"
