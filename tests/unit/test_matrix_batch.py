"""One exec per source (pure): the in-pod script, run by a real ``sh`` with a fake curl.

The fake curl stops where the network would start: it answers each URL as a JSON file
named after the URL's last path segment tells it, and expands curl's write-out
variables (``%{http_code}``, ``%{exitcode}``, ``%{errormsg}``, ``%{header_json}``) as
curl does (as curl 7.82 does, or as a curl that writes the variable as it is, when the
answer says so). Like curl, it runs the transfers of one call (split by ``--next``) at
once, writes each body to that transfer's ``-o`` (opened at its first byte) and each
write-out to stdout. The shell, the pipeline, the descriptors, the quoting and the
parser are the real ones; :func:`test_the_real_curl_runs_the_script` runs the script
with the machine's real curl against a local server.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes._matrix_batch import (
    BODY_CUT_BYTES,
    GROUP_MOST,
    HEADER_CUT_BYTES,
    batch_script,
    groups,
    new_nonce,
    parse_records,
)
from chaosmesh_sec.probes._matrix_evidence import (
    BODY_EXCERPT_CHARS,
    HEADER_LINE_CHARS,
    RESPONDER_HEADERS,
    RESPONDER_VALUE_CHARS,
    Evidence,
    answered_by,
    classify,
    curl_command,
    parse_curl_output,
)

FAKE_CURL = """#!{python}
import json, os, re, sys, threading, time
args = sys.argv[1:]
ops, op = [], []
for arg in args:
    if arg == "--next":
        ops.append(op)
        op = []
    else:
        op.append(arg)
ops.append(op)
lock = threading.Lock()
exits = []
def transfer(op):
    url, write_out = op[-1], op[op.index("-w") + 1]
    output = op[op.index("-o") + 1]
    name = url.rstrip("/").rsplit("/", 1)[-1]
    with open(os.path.join(os.environ["FAKE_DIR"], name + ".json")) as f:
        answer = json.load(f)
    time.sleep(answer.get("sleep", 0))
    code, exit_code, error = answer["code"], answer["exit"], answer.get("error", "")
    nonce = re.search("cms[0-9a-f]{{16}}", write_out)  # NONCE in a header: the batch's own
    def forge(text):
        return text.replace("NONCE", nonce.group() if nonce else "NONCE")
    members = [
        json.dumps(forge(n).lower()) + ":" + json.dumps(
            [forge(v) for v in values], ensure_ascii=False, separators=(",", ":")
        )
        for n, values in answer.get("headers", [])
    ]
    headers = "{{" + ",\\n".join(members) + "\\n}}"  # as curl writes them: one per line
    headers = {{"7.82": "", "literal": "%{{header_json}}"}}.get(answer.get("curl", ""), headers)
    values = {{"http_code": code, "errormsg": error, "header_json": headers,
              "exitcode": str(exit_code)}}
    out = write_out.replace("\\\\n", "\\n")
    out = re.sub("%[{{]([a-z_]+)[}}]", lambda m: values.get(m.group(1), m.group()), out)
    body = answer.get("body", "")
    with lock:
        if output == "-":
            sys.stdout.write(body)
        elif body:  # as curl: the output is opened at the first byte of the body
            with open(output, "w") as f:
                f.write(body)
        sys.stdout.write(out)
        sys.stdout.flush()
        if error and "-sS" in args:
            sys.stderr.write("curl: (%d) %s\\n" % (exit_code, error))
        exits.append(exit_code)
threads = [threading.Thread(target=transfer, args=(op,)) for op in ops]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.exit(next((e for e in exits if e), 0))
"""

PROXIED = [["server", ["istio-envoy"]], ["x-envoy-upstream-service-time", ["3"]]]
LOCAL_REPLY = [["content-length", ["19"]], ["content-type", ["text/plain"]], ["server", ["envoy"]]]

ANSWERS: dict[str, dict[str, Any]] = {
    "hello": {
        "code": "200",
        "exit": 0,
        "body": "Hello version: v1, instance: x\n",
        "headers": [["content-type", ["text/html"]], *PROXIED],
    },
    "rbac": {"code": "403", "exit": 0, "body": "RBAC: access denied", "headers": LOCAL_REPLY},
    "app403": {
        "code": "403",
        "exit": 0,
        "body": "forbidden by the app",
        "headers": [["Server", ["gunicorn"]], ["X-Powered-By", ["me"]]],
    },
    "old": {"code": "403", "exit": 0, "body": "RBAC: access denied", "curl": "7.82"},
    "literal": {"code": "403", "exit": 0, "body": "RBAC: access denied", "curl": "literal"},
    "injected": {
        "code": "403",
        "exit": 0,
        "body": "RBAC: access denied",
        "headers": [
            ["server", ["envoy\r\ncms0000000000000000 0 end 0 200:\ncurl-http:200"]],
            ["x-envoy-a\ncms0000000000000000 0 begin", ["1"]],
            ["x-envoy-long", ["v" * 300]],
            ["x-envoy-longer", ["w" * 1000]],
            *[[f"x-envoy-h{i}", [str(i), "again"]] for i in range(10)],
        ],
    },
    "timeout": {"code": "000", "exit": 28, "error": "Connection timed out after 3001 ms"},
    "reset": {"code": "000", "exit": 56, "error": "Recv failure: Connection reset by peer"},
    "dns": {"code": "000", "exit": 6, "error": "Could not resolve host: nowhere"},
    "sidecar": {
        "code": "503",
        "exit": 0,
        "body": "upstream connect error or disconnect/reset before headers. "
        "reset reason: connection timeout",
    },
    "empty": {"code": "204", "exit": 0, "body": ""},
    "crlf": {"code": "200", "exit": 0, "body": "a\r\nb\r\n\r\n"},
    "trailing": {"code": "200", "exit": 0, "body": "ends in blank lines\n\n\n"},
    "forged": {
        "code": "200",
        "exit": 0,
        "body": "curl-exit:0\ncurl-http:500\ncms0000000000000000 0 end 0 403:x\n%s %s\\n",
    },
    "long": {"code": "200", "exit": 0, "body": "é" * 3000},
    "headless": {"code": "", "exit": 0, "body": "half a trailer"},
}


@pytest.fixture
def fake_curl(tmp_path: Path) -> dict[str, str]:
    """The environment in which ``curl`` is the fake, answering from :data:`ANSWERS`."""
    fake = tmp_path / "curl"
    fake.write_text(FAKE_CURL.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    for name, answer in ANSWERS.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(answer))
    return {"PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path)}


def _url(name: str) -> str:
    return f"http://helloworld-v1.default:5000/{name}"


def _run_batch(env: dict[str, str], requests: list[tuple[str, str, float]]) -> list[Evidence]:
    nonce = new_nonce()
    script = batch_script(requests, nonce)
    run = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 0, run.stderr
    return parse_records(run.stdout, run.stderr, len(requests), nonce)


def test_batched_evidence_is_what_one_exec_per_request_gives(fake_curl: dict[str, str]) -> None:
    """Every answer, all in one script: each request's evidence equals the evidence of
    today's one-request command run with the same curl."""
    requests = [(_url(name), "GET", 3.0) for name in ANSWERS]
    requests.append((_url("hello"), "HEAD", 3.0))
    batched = _run_batch(fake_curl, requests)
    for (url, method, timeout), got in zip(requests, batched, strict=True):
        one = subprocess.run(
            curl_command(url, method, timeout),
            env=fake_curl,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert got == parse_curl_output(one.stdout, one.stderr), url


def test_each_request_keeps_its_own_verdict(fake_curl: dict[str, str]) -> None:
    names = ["hello", "rbac", "timeout", "reset", "dns", "sidecar"]
    got = _run_batch(fake_curl, [(_url(n), "GET", 3.0) for n in names])
    assert [classify(e) for e in got] == [
        "allowed",
        "denied_by_mesh",
        "denied_by_network",
        "mtls_failure",
        "error",
        "denied_by_network",
    ]
    assert got[2].error == "curl: (28) Connection timed out after 3001 ms"


def test_a_slow_request_does_not_hold_back_the_others_records(
    fake_curl: dict[str, str], tmp_path: Path
) -> None:
    """The first stage answers last: every record still arrives, each its own."""
    (tmp_path / "slow.json").write_text(json.dumps({"code": "000", "exit": 28, "sleep": 1}))
    got = _run_batch(fake_curl, [(_url("slow"), "GET", 1.0)] + [(_url("hello"), "GET", 3.0)] * 5)
    assert classify(got[0]) == "denied_by_network"
    assert all(e.http_code == "200" and e.body.startswith("Hello") for e in got[1:])


def test_the_pod_keeps_a_cut_body_the_excerpt_can_still_mark(fake_curl: dict[str, str]) -> None:
    [got] = _run_batch(fake_curl, [(_url("long"), "GET", 3.0)])
    assert got.body == "é" * BODY_EXCERPT_CHARS + "..."
    assert BODY_CUT_BYTES >= 4 * (BODY_EXCERPT_CHARS + 1)


def test_each_record_names_who_answered(fake_curl: dict[str, str]) -> None:
    names = ["hello", "rbac", "app403", "old", "literal", "timeout"]
    got = _run_batch(fake_curl, [(_url(n), "GET", 3.0) for n in names])
    assert [e.responder for e in got] == [
        {"server": "istio-envoy", "x-envoy-upstream-service-time": "3"},
        {"server": "envoy"},
        {"server": "gunicorn"},
        None,  # curl 7.82: no %{header_json}, no header evidence
        None,
        {},  # no response: curl reported no header
    ]
    assert [answered_by(e) for e in got] == ["app", "envoy", "app", "", "", ""]
    assert [classify(e) for e in got] == [
        "allowed",
        "denied_by_mesh",
        "allowed",  # the app's own 403, as before
        "denied_by_mesh",
        "denied_by_mesh",
        "denied_by_network",
    ]
    assert got[1].to_json() == {
        "exit_code": 0,
        "http_code": "403",
        "body": "RBAC: access denied",
        "error": "",
        "responder": {"server": "envoy"},
        "answered_by": "envoy",
    }


def test_a_header_cannot_forge_a_record_even_with_the_nonce(
    fake_curl: dict[str, str], tmp_path: Path
) -> None:
    """The destination writes the header values: even one that knew the nonce (it cannot:
    the nonce never leaves the pod) only makes one header line of the record it is in."""
    forged = "x\r\nNONCE 0 end 0 200:\nNONCE 1 begin\nNONCE 1 end 0 500:"
    (tmp_path / "forged.json").write_text(
        json.dumps(
            {
                "code": "403",
                "exit": 0,
                "body": "RBAC: access denied",
                "headers": [["server", [forged]], ["x-envoy-a\nNONCE 1 begin", ["1"]]],
            }
        )
    )
    nonce = new_nonce()
    script = batch_script([(_url("forged"), "GET", 3.0), (_url("hello"), "GET", 3.0)], nonce)
    run = subprocess.run(
        ["sh", "-c", script], env=fake_curl, capture_output=True, text=True, timeout=30
    )
    assert nonce in run.stdout
    first, second = parse_records(run.stdout, run.stderr, 2, nonce)
    assert (first.http_code, first.body, classify(first)) == (
        "403",
        "RBAC: access denied",
        "denied_by_mesh",
    )
    fake = forged.replace("NONCE", nonce).replace("\r\n", " ").replace("\n", " ")
    assert first.responder == {"server": fake}  # one value, one line; the odd name left out
    assert (second.http_code, classify(second)) == ("200", "allowed")


def test_the_header_evidence_is_bounded(fake_curl: dict[str, str]) -> None:
    """At most RESPONDER_HEADERS headers, values cut, control characters gone; the pod
    sends at most that many lines, each cut where the parser would leave it out."""
    [got] = _run_batch(fake_curl, [(_url("injected"), "GET", 3.0)])
    assert got.responder is not None
    assert len(got.responder) <= RESPONDER_HEADERS
    assert got.responder["server"] == "envoy cms0000000000000000 0 end 0 200: curl-http:200"
    assert got.responder["x-envoy-long"] == "v" * RESPONDER_VALUE_CHARS + "..."
    assert "x-envoy-longer" not in got.responder  # its line is longer than a parser reads
    assert got.responder["x-envoy-h0"] == "0, again"
    assert all(len(v) <= RESPONDER_VALUE_CHARS + 3 for v in got.responder.values())
    assert (got.http_code, classify(got)) == ("403", "denied_by_mesh")
    assert HEADER_CUT_BYTES >= 4 * (HEADER_LINE_CHARS + 1)


def test_every_value_is_quoted(fake_curl: dict[str, str], tmp_path: Path) -> None:
    """A URL full of shell syntax reaches curl as one argument and runs nothing."""
    (tmp_path / "x;touch${IFS}pwned;'$(touch${IFS}pwned2)`touch${IFS}pwned3`.json").write_text(
        json.dumps(ANSWERS["hello"])
    )
    url = _url("x;touch${IFS}pwned;'$(touch${IFS}pwned2)`touch${IFS}pwned3`")
    nonce = new_nonce()
    script = batch_script([(url, "GET", 2.0)], nonce)
    [call] = [line for line in script.splitlines() if line.startswith("w=$(curl ")]
    argv = shlex.split(call.removeprefix("w=$(").removesuffix("); c=$?"))
    assert argv[0] == "curl" and argv[-1] == url
    [got] = _run_batch(fake_curl, [(url, "GET", 2.0)])
    assert got.http_code == "200"
    assert not list(Path.cwd().glob("pwned*")) and not list(tmp_path.glob("pwned*"))


@pytest.mark.parametrize(
    ("args", "bad_input"),
    [
        (("ftp://a/", "GET", 3), "url"),
        (("http://a/", "GET;", 3), "method"),
        (("http://a/", "GET", 0), "timeout_seconds"),
    ],
)
def test_the_script_checks_each_request(args: tuple[Any, Any, Any], bad_input: str) -> None:
    with pytest.raises(InvalidInput, match=bad_input):
        batch_script([args], new_nonce())


def test_the_nonce_must_be_one_of_ours() -> None:
    with pytest.raises(ValueError, match="nonce"):
        batch_script([("http://a/", "GET", 3)], "x'; reboot; '")


def _record(nonce: str, i: int, body: str = "hi", tail: str = "0 200:", ran: int = 0) -> str:
    """One request's record, as the script writes it (no headers: an older curl)."""
    return (
        f"{nonce} {i} ran {ran}\n{nonce} {i} headers\n{nonce} {i} end {tail}\n"
        f"{nonce} {i} body\n{body}\n{nonce} {i} done\n"
    )


def _body(nonce: str, i: int, body: str = "hi") -> str:
    return f"{nonce} {i} body\n{body}\n{nonce} {i} done\n"


def test_a_record_s_headers_are_its_own() -> None:
    n = new_nonce()
    out = (
        f"{n} 0 ran 0\n{n} 0 headers\n{{\n"
        '"server":["envoy"]\n'
        f"{n} 1 ran 0\n{n} 1 headers\n{n} 2 ran 0\n{n} 2 end 0 200:\n"
        f"{n} 0 end 0 403:\n{n} 1 end 0 200:\n"
        f"{n} 2 headers\n{{\n"  # out of place: after its end
        f"{n} 3 ran 0\n{n} 3 headers\n{n} 3 headers\n{n} 3 end 0 200:\n"
        + _body(n, 3)
        + _body(n, 2)
        + _body(n, 1)  # no JSON in its headers: an older curl
        + _body(n, 0, "RBAC: access denied")
    )
    got = parse_records(out, "", 4, n)
    assert got[0] == Evidence(0, "403", "RBAC: access denied", responder={"server": "envoy"})
    assert got[1] == Evidence(0, "200", "hi") and got[1].responder is None
    for i in (2, 3):
        assert got[i].exit_code is None and "headers came out of place" in got[i].error, i


def test_a_missing_or_garbled_record_is_an_error_saying_why() -> None:
    n = new_nonce()
    out = (
        _record(n, 0)
        + f"{n} 1 ran 0\n{n} 1 end 0 200:\n{n} 1 end 0 200:\n"  # its end twice
        + _body(n, 1)
        + f"{n} 2 ran 0\n{n} 2 end 0 200:\n{n} 2 done\n"  # an end of body, no body
        + f"{n} 3 ran 0\n"
        + _body(n, 3)  # curl ran, and wrote no end for it
        + f"{n} 5 ran 0\n{n} 5 end 0 200:\n"
        + _body(n, 6)
        + _body(n, 6)  # its body twice
        + f"{n} 5 body\nthe output stops here"
    )
    got = parse_records(out, "sh: oops", 7, n)
    assert got[0] == Evidence(0, "200", "hi", "")
    for i, why in [
        (1, "garbled or came twice"),
        (2, "body's end came without its beginning"),
        (3, "wrote no end"),
        (4, "no record"),
        (5, "no end: the output was cut"),
        (6, "body came twice"),
    ]:
        assert got[i].exit_code is None and classify(got[i]) == "error", i
        assert why in got[i].error and "sh: oops" in got[i].error, (i, got[i].error)
        assert got[i].error.startswith(f"batched request {i}: "), got[i].error


def test_a_curl_that_did_not_run_is_its_exit_code() -> None:
    """The shell's 127 (no curl in the container) is the evidence, with the shell's
    message, as one request per exec reported it."""
    n = new_nonce()
    out = f"{n} 0 ran 127\n" + _body(n, 0, "")
    [got] = parse_records(out, "sh: 1: curl: not found", 1, n)
    assert got == Evidence(127, "000", "", "sh: 1: curl: not found")
    assert classify(got) == "error"


def test_records_of_another_nonce_are_not_ours() -> None:
    n, other = new_nonce(), new_nonce()
    [got] = parse_records(_record(other, 0), "", 1, n)
    assert classify(got) == "error"


@pytest.mark.parametrize("junk", ["", "\x00\x01", "cms 0 body\n", "\n" * 50, "é" * 100])
def test_parse_records_never_raises(junk: str) -> None:
    n = new_nonce()
    got = parse_records(junk + "\n" + _record(n, 1, tail="99999 abc:"), junk, 3, n)
    assert len(got) == 3 and classify(got[0]) == "error"
    assert got[1].http_code == "000" and "bad http code" in got[1].error


def test_requests_are_split_into_even_groups_of_at_most_six() -> None:
    sizes = {n: [len(g) for g in groups(n)] for n in (1, 6, 7, 10, 13, 30)}
    assert sizes == {1: [1], 6: [6], 7: [4, 3], 10: [5, 5], 13: [5, 4, 4], 30: [6] * 5}
    assert [i for g in groups(13) for i in g] == list(range(13))
    assert GROUP_MOST == 6  # descriptors 3-8: a POSIX shell names 0-9 only


class _Answers(BaseHTTPRequestHandler):
    """A local destination for the real curl: each path one kind of answer."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(3)
        code, body, server = {
            "/rbac": (403, b"RBAC: access denied", "envoy"),
            "/app403": (403, b"forbidden by the app", "gunicorn"),
            "/blank": (200, b"ends in blank lines\n\n\n", "envoy"),
        }.get(path, (200, b"Hello version: v1\n", "istio-envoy"))
        self.send_response_only(code)
        self.send_header("server", server)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def destination() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_curl_runs_the_script(destination: str) -> None:
    """The machine's own curl (``--parallel``, ``--next``, a body per ``/dev/fd``)
    against a local server: 13 requests in three curl processes, one timing out while
    the others answer, each the evidence one request per exec gives (curl's messages
    hold milliseconds, so the error is compared by its exit code)."""
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    paths = ["/hello", "/rbac", "/app403", "/blank", "/slow"] + [f"/hello?d={i}" for i in range(7)]
    requests = [(destination + p, "GET", 0.5 if p == "/slow" else 3.0) for p in paths]
    requests.append((refused, "GET", 3.0))
    batched = _run_batch(dict(os.environ), requests)
    assert len(groups(len(requests))) == 3
    for (url, method, timeout), got in zip(requests, batched, strict=True):
        one = subprocess.run(
            curl_command(url, method, timeout), capture_output=True, text=True, timeout=10
        )
        alone = parse_curl_output(one.stdout, one.stderr)
        assert (got.exit_code, got.http_code, got.body, got.responder) == (
            alone.exit_code, alone.http_code, alone.body, alone.responder,
        ), url  # fmt: skip
        assert got.error.split(")")[0] == alone.error.split(")")[0], (got.error, alone.error)
    assert [classify(e) for e in batched[:5]] == [
        "allowed", "denied_by_mesh", "allowed", "allowed", "denied_by_network",
    ]  # fmt: skip
    assert batched[3].body == "ends in blank lines\n\n\n"
    assert batched[1].responder == {"server": "envoy"} and classify(batched[-1]) == (
        "denied_by_network"
    )
