"""The sidecar stand-in: its pure parts, then real processes in network namespaces.

The namespace tests (root only) build a small mesh of their own: a bridge and
three network namespaces ``cmstest-<random>-{client,server,plain}`` on it, a fake
istiod CA (a grpc server in this process, on the bridge) that signs a SPIFFE
identity per ServiceAccount token, a Python ``http.server`` app on :5000 in the
server namespace, and the stand-in run as a subprocess in the client and server
namespaces with static policy files. Curl runs in the namespaces, as an app would.
Everything is removed at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chaosmesh_sec.lab.standins.sidecar import capture, http1
from chaosmesh_sec.lab.standins.sidecar.config import Settings
from chaosmesh_sec.lab.standins.sidecar.identity import IdentityManager, certs_json
from chaosmesh_sec.lab.standins.sidecar.policy import (
    KubePolicySource,
    StaticPolicySource,
    snapshot_from_document,
)
from chaosmesh_sec.probes._ca_client import METHOD, IssueOutcome, LeafFacts
from tests.unit.test_ca_client import SERVER_NAME, Ca, make_ca, pb_request, pb_response

REPO = Path(__file__).resolve().parents[2]
TRUST_DOMAIN = "cluster.local"
CLIENT_ID = "cluster.local/ns/default/sa/client"
SERVER_ID = "cluster.local/ns/default/sa/server"
ROTATING_ID = "cluster.local/ns/default/sa/rotating"
APP_BODY = b"hello from the app\n"
ECHO_APP = """
import hashlib, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    def do_POST(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\\r\\n", b""):
                pass
        else:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
        seen = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        for name in ("connection", "x-forwarded-client-cert"):
            seen[name] = self.headers.get(name)
        seen["peer"] = self.client_address[0]
        reply = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", 5002), Echo).serve_forever()
"""
ISTIO_CHAINS = ("ISTIO_INBOUND", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_REDIRECT")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "iptables", "curl")),
    reason="needs root, ip, iptables and curl (network namespaces)",
)


# ---------------------------------------------------------------- pure parts


def test_request_head_parses_and_renders() -> None:
    raw = (
        b"POST /api/items?x=1 HTTP/1.1\r\nHost: svc\r\nX-A: 1\r\nx-a: 2\r\n"
        b"Connection: keep-alive\r\nX-Forwarded-Client-Cert: forged\r\n"
        b"Content-Length: 5\r\n\r\n"
    )
    head = http1.parse_head(raw)
    assert (head.method, head.path, head.version) == ("POST", "/api/items?x=1", "HTTP/1.1")
    assert head.headers["x-a"] == "1,2"
    assert head.framing() == ("length", 5)
    again = http1.parse_head(head.render({"connection": "close"}, drop=["x-forwarded-client-cert"]))
    assert again.headers["connection"] == "close"
    assert "x-forwarded-client-cert" not in again.headers
    assert http1.parse_head(b"GET http://svc/a/b?q HTTP/1.1\r\n\r\n").path == "/a/b?q"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"x: " + b"a" * http1.HEAD_LIMIT + b"\r\n\r\n", 431),
    ],
)
def test_malformed_heads_are_refused(raw: bytes, status: int) -> None:
    with pytest.raises(http1.HeadError) as err:
        http1.parse_head(raw)
    assert err.value.status == status


@pytest.mark.parametrize(
    "fields",
    [
        "Transfer-Encoding: chunked\r\nContent-Length: 3",  # a smuggling attempt
        "Content-Length: 3\r\nContent-Length: 4",
        "Transfer-Encoding: gzip",
    ],
)
def test_ambiguous_bodies_are_refused(fields: str) -> None:
    head = http1.parse_head(f"POST / HTTP/1.1\r\n{fields}\r\n\r\n".encode())
    with pytest.raises(http1.HeadError):
        head.framing()


def test_denial_reply_is_envoys() -> None:
    raw = http1.reply(403, b"RBAC: access denied")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"content-length: 19" in head
    assert b"content-type: text/plain" in head
    assert body == b"RBAC: access denied"


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "CA_ADDR": "10.96.0.10:15012",
            "EXCLUDE_INBOUND_PORTS": "22, 15001",
            "EXCLUDE_OUTBOUND_IP_RANGES": "10.96.0.0/12",
            "CERT_VALIDITY_SECONDS": "600",
        }
    )
    assert settings.ca_addr == "10.96.0.10:15012"
    assert settings.inbound_excluded == (15001, 15006, 15000, 15020, 15021, 22)
    assert settings.exclude_outbound_ports == (15012, 443, 6443)
    assert settings.cert_validity_seconds == 600
    with pytest.raises(ValueError, match="EXCLUDE_INBOUND_PORTS"):
        Settings.from_env({"EXCLUDE_INBOUND_PORTS": "http"})


def test_capture_commands_are_ordered_and_removal_is_idempotent() -> None:
    cmds = capture.install_commands(Settings(exclude_outbound_ports=(15012,)))
    text = [" ".join(c) for c in cmds]
    assert text[:4] == [f"-t nat -N {c}" for c in ISTIO_CHAINS]
    assert "-t nat -A ISTIO_OUTPUT -m mark --mark 0x539 -j RETURN" in text
    assert "-t nat -A ISTIO_OUTPUT -p tcp --dport 15012 -j RETURN" in text
    assert "-t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in text
    # the jumps into our chains come last, once the chains are complete
    assert text[-2:] == [
        "-t nat -A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT",
    ]
    calls: list[str] = []

    def absent(args: Any) -> tuple[int, str]:
        calls.append(" ".join(args))
        return 1, "No chain/target/match by that name."

    capture.remove(absent)  # nothing there: every step is tried once, nothing raises
    assert len(calls) == 2 + 2 * len(ISTIO_CHAINS)


def test_policy_file_is_split_by_kind_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    write_json(path, {"pod_labels": {"app": "x"}, "policies": [pa("STRICT")]})
    source = StaticPolicySource(str(path), "default")
    source.start()
    first = source.snapshot()
    assert first is not None
    assert first.pod_labels == {"app": "x"}
    assert [p["kind"] for p in first.peer_authentications] == ["PeerAuthentication"]
    assert first.authorization_policies == ()
    write_json(path, {"policies": [pa("PERMISSIVE"), allow([CLIENT_ID])]})
    second = source.snapshot()
    assert second is not None
    assert len(second.authorization_policies) == 1
    path.write_text("policies: [ {kind: Unknown} ]")  # unusable: the last state stays
    assert source.snapshot() == second
    with pytest.raises(ValueError):
        snapshot_from_document({"policies": [{"kind": "Gateway"}]}, "default")


def _policy(kind: str, name: str, namespace: str) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": {}}


def test_api_source_keeps_the_last_state_when_the_api_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lists, then a watch event, then the API server is gone: the state stays."""
    import kubernetes

    lists: dict[tuple[str, str], int] = {}
    kinds = {
        "authorizationpolicies": "AuthorizationPolicy",
        "peerauthentications": "PeerAuthentication",
    }

    class Custom:
        def __init__(self, _api: Any) -> None: ...

        def list_namespaced_custom_object(
            self, _group: str, _version: str, ns: str, plural: str, **_kw: Any
        ) -> dict[str, Any]:
            lists[(ns, plural)] = lists.get((ns, plural), 0) + 1
            if lists[(ns, plural)] > 1:
                raise ConnectionRefusedError("the API server is unreachable")
            return {
                "metadata": {"resourceVersion": "1"},
                "items": [_policy(kinds[plural], f"listed-{plural}", ns)],
            }

    class Watch:
        def stream(self, _func: Any, *args: Any, **_kw: Any) -> Iterator[dict[str, Any]]:
            _group, _version, ns, plural = args
            if (ns, plural) == ("default", "authorizationpolicies"):
                yield {"type": "ADDED", "object": _policy("AuthorizationPolicy", "added", ns)}
            raise ConnectionResetError("watch connection lost")

    class Core:
        def __init__(self, _api: Any) -> None: ...

        def read_namespaced_pod(self, name: str, namespace: str, **_kw: Any) -> Any:
            meta = type("Meta", (), {"labels": {"app": name}})
            return type("Pod", (), {"metadata": meta})

    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda: None)
    monkeypatch.setattr(kubernetes.client, "ApiClient", lambda: None)
    monkeypatch.setattr(kubernetes.client, "CustomObjectsApi", Custom)
    monkeypatch.setattr(kubernetes.client, "CoreV1Api", Core)
    monkeypatch.setattr(kubernetes.watch, "Watch", Watch)
    source = KubePolicySource("default", "pod-x")
    assert source.snapshot() is None
    source.start()
    try:
        deadline = time.monotonic() + 5
        while any(n < 2 for n in lists.values()) or len(lists) < 4:
            assert time.monotonic() < deadline, lists  # every list has failed once
            time.sleep(0.05)
        snap = source.snapshot()
    finally:
        source.stop()
    assert snap is not None
    assert snap.pod_labels == {"app": "pod-x"}
    names = sorted(
        p["metadata"]["namespace"] + "/" + p["metadata"]["name"]
        for p in snap.authorization_policies
    )
    assert names == [
        "default/added",
        "default/listed-authorizationpolicies",
        "istio-system/listed-authorizationpolicies",
    ]
    assert len(snap.peer_authentications) == 2


# ---------------------------------------------------------------- a fake istiod CA


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class FakeCa:
    """Signs the CSR's key for the identity of the bearer token; fails on demand."""

    root: Ca
    intermediate: Ca
    identities: dict[str, str]  # token -> SPIFFE ID without the scheme
    fail_first: dict[str, int] = field(default_factory=dict)  # token -> calls to refuse
    issued: list[tuple[str, int]] = field(default_factory=list)  # (identity, validity)
    address: str = ""

    def create_certificate(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        token = str(metadata.get("authorization", "")).removeprefix("Bearer ")
        identity = self.identities.get(token)
        if identity is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        if self.fail_first.get(token, 0) > 0:
            self.fail_first[token] -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "the CA is restarting")
        csr_pem, validity = pb_request(request)
        csr = x509.load_pem_x509_csr(csr_pem)
        start = _now() - timedelta(seconds=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .public_key(csr.public_key())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(seconds=validity))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{identity}")]
                ),
                critical=True,
            )
        )
        leaf = self.intermediate.sign(builder)
        self.issued.append((str(identity), validity))
        pem = serialization.Encoding.PEM
        return pb_response(
            [
                leaf.public_bytes(pem).decode(),
                self.intermediate.pem.decode(),
                self.root.pem.decode(),
            ]
        )


def serve_ca(fake: FakeCa, host: str) -> grpc.Server:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .public_key(key.public_key())
        .not_valid_before(_now() - timedelta(minutes=1))
        .not_valid_after(_now() + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
    )
    serving = fake.root.sign(builder)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    service, method = METHOD.strip("/").split("/")
    handler = grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(fake.create_certificate)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(key_pem, serving.public_bytes(serialization.Encoding.PEM))]
    )
    port = server.add_secure_port(f"{host}:0", creds)
    fake.address = f"{host}:{port}"
    server.start()
    return server


def test_identity_manager_keeps_the_key_in_tls_contexts_only(tmp_path: Path) -> None:
    root = make_ca("sidecar test root")
    fake = FakeCa(root, make_ca("sidecar test intermediate", root), {"tok": CLIENT_ID})
    server = serve_ca(fake, "127.0.0.1")
    try:
        (tmp_path / "token").write_text("tok\n")
        (tmp_path / "root.pem").write_bytes(root.pem)
        settings = Settings(
            token_path=str(tmp_path / "token"),
            root_path=str(tmp_path / "root.pem"),
            ca_addr=fake.address,
            ca_server_name=SERVER_NAME,
            cert_validity_seconds=900,
        )
        identity = IdentityManager(settings).obtain()
    finally:
        server.stop(grace=None)
    assert identity.spiffe_id == f"spiffe://{CLIENT_ID}"
    assert (identity.not_after - identity.not_before) == timedelta(seconds=900)
    assert identity.rotate_at == identity.not_before + timedelta(seconds=450)
    assert len(identity.chain) == 2  # leaf and intermediate; the root is not presented
    assert not hasattr(identity, "key_pem")
    listed = certs_json(identity)["certificates"][0]
    assert listed["cert_chain"][0]["subject_alt_names"] == [{"uri": f"spiffe://{CLIENT_ID}"}]
    assert listed["cert_chain"][0]["serial_number"] == identity.serial
    assert len(listed["ca_cert"]) == 1
    assert sorted(tmp_path.iterdir()) == [tmp_path / "root.pem", tmp_path / "token"]
    assert fake.issued == [(CLIENT_ID, 900)]


def test_identity_failure_carries_no_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("secret-token-value")
    (tmp_path / "root.pem").write_bytes(make_ca("r").pem)

    def refuse(*_args: Any) -> IssueOutcome:
        return IssueOutcome(False, "UNAUTHENTICATED", "bad [redacted]", 1.0, None)

    settings = Settings(token_path=str(tmp_path / "token"), root_path=str(tmp_path / "root.pem"))
    with pytest.raises(Exception, match="UNAUTHENTICATED") as err:
        IdentityManager(settings, issuer=refuse).obtain()
    assert "secret-token-value" not in str(err.value)
    facts = LeafFacts((), "1", "", "", 1, True)
    outcome = IssueOutcome(True, "OK", "", 1.0, facts, ("PEM",))
    assert "chain_pem" not in outcome.to_json()
    assert "PEM" not in repr(outcome)


# ---------------------------------------------------------------- the mesh in namespaces


def sh(
    *cmd: str, check: bool = True, timeout: float = 15, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return done


def in_ns(
    ns: str, *cmd: str, check: bool = True, timeout: float = 15, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *cmd, check=check, timeout=timeout, env=env)


def write_json(path: Path, document: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(path)  # atomic, as a ConfigMap update is


def pa(mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "default"},
        "spec": {"mtls": {"mode": mode}},
    }


def allow(principals: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "allow-app", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "server"}},
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"principals": principals}}]}],
        },
    }


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Curl:
    code: int  # curl's exit code
    status: int  # HTTP status, 0 if none
    body: bytes
    error: str


def curl(ns: str, url: str) -> Curl:
    marker = "\n--cmstest-status:"
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "curl",
            "-sS",
            "-m",
            "5",
            "--noproxy",
            "*",
            "-w",
            marker + "%{http_code}",
            url,
        ],
        capture_output=True,
        timeout=15,
        check=False,
    )
    body, _, status = done.stdout.rpartition(marker.encode())
    return Curl(done.returncode, int(status or b"0"), body, done.stderr.decode())


@dataclass
class Mesh:
    tag: str
    tmp: Path
    subnet: str  # first three octets
    fake: FakeCa
    bridge: str
    namespaces: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def ip(self, host: int) -> str:
        return f"{self.subnet}.{host}"

    def ns(self, role: str) -> str:
        return f"cmstest-{self.tag}-{role}"

    def add_ns(self, role: str, host: int) -> str:
        ns, veth = self.ns(role), f"cmst{self.tag}{role[0]}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", self.bridge, "up")
        in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(ns, "ip", "addr", "add", f"{self.ip(host)}/24", "dev", "eth0")
        in_ns(ns, "ip", "link", "set", "eth0", "up")
        return ns

    def start(self, name: str, ns: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def sidecar(
        self, role: str, identity: str, labels: dict[str, str], fail_first: int = 0, **extra: str
    ) -> Path:
        token = f"token-{role}-{secrets.token_hex(4)}"
        self.fake.identities[token] = identity
        self.fake.fail_first[token] = fail_first
        (self.tmp / f"{role}.token").write_text(token + "\n")
        policy = self.tmp / f"{role}-policies.json"
        write_json(policy, {"pod_labels": labels, "policies": []})
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            ISTIO_TOKEN_PATH=str(self.tmp / f"{role}.token"),
            ISTIO_ROOT_PATH=str(self.tmp / "root-cert.pem"),
            CA_ADDR=self.fake.address,
            CA_SERVER_NAME=SERVER_NAME,
            POD_NAME=role,
            POD_NAMESPACE="default",
            CERT_VALIDITY_SECONDS="600",
            EXCLUDE_OUTBOUND_PORTS=self.fake.address.rsplit(":", 1)[1],
            CMSLAB_SIDECAR_POLICY_FILE=str(policy),
        )
        env.update(extra)
        # the pod's istio-init: the rules are in place before the proxy starts
        in_ns(self.ns(role), *SIDECAR_CMD, "istio-iptables", env=env)
        self.start(role, self.ns(role), SIDECAR_CMD, env)
        return policy

    def wait_ready(self, role: str, host: int, timeout: float = 20) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while True:
            proc = self.procs[role]
            if proc.poll() is not None:
                raise AssertionError(f"{role} sidecar exited {proc.returncode}:\n{self.log(role)}")
            url = f"http://{self.ip(host)}:15021/healthz/ready"
            with contextlib.suppress(OSError), opener.open(url, timeout=1) as r:
                if r.status == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{role} sidecar not ready:\n{self.log(role)}")
            time.sleep(0.2)

    def stop(self, name: str) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


SIDECAR_CMD = [sys.executable, "-m", "chaosmesh_sec.lab.standins.sidecar"]


def nat_rules(ns: str) -> str:
    return in_ns(ns, "iptables-save", "-t", "nat").stdout


def _free_subnet() -> str:
    routes = sh("ip", "-4", "route", "show", "table", "all").stdout
    for _ in range(50):
        subnet = f"10.213.{secrets.randbelow(250) + 2}"
        if f"{subnet}." not in routes:
            return subnet
    raise AssertionError("no free 10.213.x.0/24 subnet")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tag = secrets.token_hex(3)
    tmp = tmp_path_factory.mktemp("sidecar")
    root = make_ca("cmstest root")
    fake = FakeCa(root, make_ca("cmstest intermediate", root), {})
    m = Mesh(tag, tmp, _free_subnet(), fake, bridge=f"cmst{tag}")
    server: grpc.Server | None = None
    try:
        sh("ip", "link", "add", m.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{m.ip(1)}/24", "dev", m.bridge)
        sh("ip", "link", "set", m.bridge, "up")
        for role, host in (("client", 2), ("server", 3), ("plain", 4), ("rotating", 5)):
            m.add_ns(role, host)
        server = serve_ca(fake, m.ip(1))
        (tmp / "root-cert.pem").write_bytes(root.pem)
        app_dir = tmp / "app"
        app_dir.mkdir()
        (app_dir / "hello").write_bytes(APP_BODY)
        m.start(
            "app",
            m.ns("server"),
            [
                sys.executable,
                "-m",
                "http.server",
                "5000",
                "--bind",
                "0.0.0.0",
                "--directory",
                str(app_dir),
            ],
            dict(os.environ),
        )
        (tmp / "echo.py").write_text(ECHO_APP)
        m.start("echo", m.ns("server"), [sys.executable, str(tmp / "echo.py")], dict(os.environ))
        m.sidecar("client", CLIENT_ID, {"app": "client"})
        m.sidecar("server", SERVER_ID, {"app": "server"})
        m.wait_ready("client", 2)
        m.wait_ready("server", 3)
        yield m
    finally:
        for name in list(m.procs):
            m.stop(name)
        if server is not None:
            server.stop(grace=None)
        for ns in m.namespaces:
            sh("ip", "netns", "delete", ns, check=False)
        sh("ip", "link", "delete", m.bridge, check=False)


def set_server_policies(mesh: Mesh, *policies: dict[str, Any]) -> None:
    write_json(
        mesh.tmp / "server-policies.json",
        {"pod_labels": {"app": "server"}, "policies": list(policies)},
    )


def app_url(mesh: Mesh, path: str = "/hello") -> str:
    return f"http://{mesh.ip(3)}:5000{path}"


@needs_root
def test_capture_rules_are_installed(mesh: Mesh) -> None:
    rules = nat_rules(mesh.ns("server"))
    for chain in ISTIO_CHAINS:
        assert f":{chain} " in rules
    assert "-A PREROUTING -p tcp -j ISTIO_INBOUND" in rules
    assert "-A OUTPUT -p tcp -j ISTIO_OUTPUT" in rules
    assert "-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN" in rules
    assert "--to-ports 15006" in rules
    assert "--to-ports 15001" in rules


@pytest.fixture
def bare_ns() -> Iterator[str]:
    """A network namespace with only loopback: a pod before its containers start."""
    ns = f"cmstest-val-{secrets.token_hex(3)}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns
    finally:
        sh("ip", "netns", "delete", ns, check=False)


def validation(ns: str) -> subprocess.CompletedProcess[str]:
    cmd = [*SIDECAR_CMD, "istio-iptables", "--run-validation", "--probe-timeout=2s"]
    return in_ns(ns, *cmd, check=False)


@needs_root
def test_validation_passes_once_istio_init_redirected_traffic(bare_ns: str) -> None:
    in_ns(bare_ns, *SIDECAR_CMD, "istio-iptables", env=dict(os.environ))
    done = validation(bare_ns)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_root
def test_validation_fails_with_126_where_nothing_redirects(bare_ns: str) -> None:
    done = validation(bare_ns)
    assert done.returncode == 126
    assert "not redirected" in done.stdout + done.stderr


@needs_root
def test_allowed_principal_reaches_the_app_over_mtls(mesh: Mesh) -> None:
    set_server_policies(mesh, pa("STRICT"), allow([CLIENT_ID]))
    got = curl(mesh.ns("client"), app_url(mesh))
    assert (got.code, got.status, got.body) == (0, 200, APP_BODY), got.error
    log = mesh.log("server")
    assert f"inbound GET /hello :5000 from {CLIENT_ID} ({mesh.ip(2)}): allowed" in log


@needs_root
def test_other_principal_is_denied_with_rbac_403(mesh: Mesh) -> None:
    set_server_policies(mesh, pa("STRICT"), allow(["cluster.local/ns/other/sa/someone"]))
    got = curl(mesh.ns("client"), app_url(mesh))
    assert (got.code, got.status, got.body) == (0, 403, b"RBAC: access denied"), got.error
    assert f"inbound GET /hello :5000 from {CLIENT_ID}" in mesh.log("server")
    assert "denied - no ALLOW policy matched" in mesh.log("server")


@needs_root
def test_plaintext_under_strict_is_reset(mesh: Mesh) -> None:
    set_server_policies(mesh, pa("STRICT"))
    got = curl(mesh.ns("plain"), app_url(mesh))
    assert got.code in (52, 56), got
    assert got.status == 0
    assert "(plaintext): denied - mTLS required (STRICT)" in mesh.log("server")


@needs_root
def test_plaintext_under_permissive_reaches_the_app(mesh: Mesh) -> None:
    set_server_policies(mesh, pa("PERMISSIVE"))
    got = curl(mesh.ns("plain"), app_url(mesh))
    assert (got.code, got.status, got.body) == (0, 200, APP_BODY), got.error
    # and an ALLOW policy naming a principal denies a peer that has none
    set_server_policies(mesh, pa("PERMISSIVE"), allow([CLIENT_ID]))
    got = curl(mesh.ns("plain"), app_url(mesh))
    assert (got.status, got.body) == (403, b"RBAC: access denied")


@needs_root
@pytest.mark.parametrize("chunked", [False, True])
def test_request_bodies_and_client_identity_reach_the_app(mesh: Mesh, chunked: bool) -> None:
    set_server_policies(mesh, pa("STRICT"), allow([CLIENT_ID]))
    body = mesh.tmp / "body.bin"
    data = secrets.token_bytes(300_000)
    body.write_bytes(data)
    extra = ["-H", "transfer-encoding: chunked"] if chunked else []
    done = in_ns(
        mesh.ns("client"),
        "curl",
        "-sS",
        "-m",
        "10",
        "--noproxy",
        "*",
        *extra,
        "-H",
        "x-forwarded-client-cert: By=forged",
        "--data-binary",
        f"@{body}",
        app_url(mesh, "/echo").replace(":5000", ":5002"),
    )
    seen = json.loads(done.stdout)
    assert seen["length"] == len(data)
    assert seen["sha256"] == hashlib.sha256(data).hexdigest()
    assert seen["connection"] == "close"  # one checked request per connection
    assert seen["peer"] == "127.0.0.6"
    xfcc = seen["x-forwarded-client-cert"]
    assert xfcc.startswith(f"By=spiffe://{SERVER_ID};Hash=")
    assert xfcc.endswith(f"URI=spiffe://{CLIENT_ID}")


@needs_root
def test_inbound_to_a_closed_app_port_is_envoys_503(mesh: Mesh) -> None:
    set_server_policies(mesh, pa("PERMISSIVE"))
    got = curl(mesh.ns("plain"), app_url(mesh).replace(":5000", ":5001"))
    assert got.status == 503
    assert got.body.endswith(b"reset reason: connection failure")


@needs_root
def test_outbound_connect_failure_is_envoys_503(mesh: Mesh) -> None:
    closed = free_port(mesh.ip(1))
    got = curl(mesh.ns("client"), f"http://{mesh.ip(1)}:{closed}/")
    assert got.status == 503
    assert got.body == (
        b"upstream connect error or disconnect/reset before headers. "
        b"reset reason: connection failure"
    )


@needs_root
def test_outbound_to_a_peer_without_sidecar_fails_the_handshake(mesh: Mesh) -> None:
    port = 8080  # the namespace is ours and new: nothing else listens there
    app = mesh.ns("plain")
    mesh.start(
        "plain-app",
        app,
        [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"],
        dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 10
        while (
            in_ns(
                app, "curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/", check=False
            ).returncode
            != 0
        ):
            assert time.monotonic() < deadline, mesh.log("plain-app")
            time.sleep(0.1)
        got = curl(mesh.ns("client"), f"http://{mesh.ip(4)}:{port}/")
        assert got.code in (52, 56), got
    finally:
        mesh.stop("plain-app")
    assert "TLS handshake failed" in mesh.log("client")


@needs_root
def test_admin_certs_shows_the_spiffe_identity(mesh: Mesh) -> None:
    done = in_ns(
        mesh.ns("client"),
        "curl",
        "-sS",
        "-m",
        "5",
        "--noproxy",
        "*",
        "http://127.0.0.1:15000/certs",
    )
    certs = json.loads(done.stdout)["certificates"]
    chain = certs[0]["cert_chain"]
    assert chain[0]["subject_alt_names"] == [{"uri": f"spiffe://{CLIENT_ID}"}]
    assert int(chain[0]["serial_number"], 16) > 0
    assert datetime.fromisoformat(chain[0]["expiration_time"]) > datetime.now(UTC)
    assert certs[0]["ca_cert"][0]["subject_alt_names"] == []
    ready = in_ns(
        mesh.ns("client"),
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "http://127.0.0.1:15000/ready",
    )
    assert ready.stdout == "200"
    for role in ("client", "server"):
        log = mesh.log(role)
        assert "PRIVATE KEY" not in log
        assert "BEGIN CERTIFICATE" not in log
        assert (mesh.tmp / f"{role}.token").read_text().strip() not in log


@needs_root
def test_rotation_retries_and_sigterm_keeps_the_pods_rules(mesh: Mesh) -> None:
    """Stale rules, a CA that refuses twice, certificates of 4 s, SIGTERM.

    istio-init reinstalls the rules once over stale ones; the proxy does not own them,
    so they stay when it stops (with nothing on 15006 the pod then refuses inbound
    traffic instead of letting it past the proxy)."""
    ns = mesh.ns("rotating")
    stale = ["-p", "tcp", "--dport", "9", "-j", "RETURN"]
    in_ns(ns, "iptables", "-t", "nat", "-N", "ISTIO_INBOUND")
    in_ns(ns, "iptables", "-t", "nat", "-A", "ISTIO_INBOUND", *stale)
    in_ns(ns, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "ISTIO_INBOUND")
    mesh.sidecar("rotating", ROTATING_ID, {"app": "rotating"}, 2, CERT_VALIDITY_SECONDS="4")
    mesh.wait_ready("rotating", 5)
    rules = nat_rules(ns)
    assert rules.count(":ISTIO_") == 4
    assert rules.count("-A PREROUTING -p tcp -j ISTIO_INBOUND") == 1  # reinstalled, once
    assert "--dport 9 " not in rules
    time.sleep(4.5)
    issued = [v for i, v in mesh.fake.issued if i == ROTATING_ID]
    assert issued[:1] == [4]
    assert len(issued) >= 3, mesh.log("rotating")
    log = mesh.log("rotating")
    assert "failed (attempt 1): UNAVAILABLE: the CA is restarting" in log
    assert "failed (attempt 2)" in log
    assert mesh.stop("rotating") == 0
    assert nat_rules(ns).count(":ISTIO_") == 4
