"""One exec per source (pure): the in-pod script, run by a real ``sh`` with a fake curl.

The fake curl stops where the network would start: it answers each URL as a JSON file
named after the URL's last path segment tells it, and expands curl's write-out
variables (``%{http_code}``, ``%{errormsg}``) as curl does. The shell, the pipeline,
the quoting and the parser are the real ones.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes._matrix_batch import (
    BODY_CUT_BYTES,
    batch_script,
    new_nonce,
    parse_records,
)
from chaosmesh_sec.probes._matrix_evidence import (
    BODY_EXCERPT_CHARS,
    Evidence,
    classify,
    curl_command,
    parse_curl_output,
)

FAKE_CURL = """#!{python}
import json, os, sys, time
args = sys.argv[1:]
url, write_out = args[-1], args[args.index("-w") + 1]
name = url.rstrip("/").rsplit("/", 1)[-1]
with open(os.path.join(os.environ["FAKE_DIR"], name + ".json")) as f:
    answer = json.load(f)
time.sleep(answer.get("sleep", 0))
code, exit_code, error = answer["code"], answer["exit"], answer.get("error", "")
out = write_out.replace("\\\\n", "\\n").replace("%{{http_code}}", code)
out = out.replace("%{{errormsg}}", error)
sys.stdout.write(answer.get("body", "") + out)
if error and "-sS" in args:
    sys.stderr.write("curl: (%d) %s\\n" % (exit_code, error))
sys.exit(exit_code)
"""

ANSWERS: dict[str, dict[str, Any]] = {
    "hello": {"code": "200", "exit": 0, "body": "Hello version: v1, instance: x\n"},
    "rbac": {"code": "403", "exit": 0, "body": "RBAC: access denied"},
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


def test_every_value_is_quoted(fake_curl: dict[str, str], tmp_path: Path) -> None:
    """A URL full of shell syntax reaches curl as one argument and runs nothing."""
    (tmp_path / "x;touch${IFS}pwned;'$(touch${IFS}pwned2)`touch${IFS}pwned3`.json").write_text(
        json.dumps(ANSWERS["hello"])
    )
    url = _url("x;touch${IFS}pwned;'$(touch${IFS}pwned2)`touch${IFS}pwned3`")
    nonce = new_nonce()
    script = batch_script([(url, "GET", 2.0)], nonce)
    [stage] = [line for line in script.splitlines() if line.startswith("cell 0 ")]
    assert shlex.split(stage)[-1] == url
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


def _record(nonce: str, i: int, body: str = "hi", tail: str = "0 200:") -> str:
    return f"{nonce} {i} begin\n{body}\n{nonce} {i} end {tail}\n"


def test_a_missing_or_garbled_record_is_an_error_saying_why() -> None:
    n = new_nonce()
    out = (
        _record(n, 0)
        + f"{n} 1 begin\npartial\n"  # cut short by record 2
        + _record(n, 2)
        + f"{n} 3 end 0 200:\n"  # an end without its beginning
        + f"{n} 5 begin\nthe output stops here"
    )
    got = parse_records(out, "sh: oops", 6, n)
    assert got[0] == Evidence(0, "200", "hi", "")
    assert got[2] == Evidence(0, "200", "hi", "")
    for i, why in [
        (1, "cut short"),
        (3, "end came without its beginning"),
        (4, "no record"),
        (5, "no end"),
    ]:
        assert got[i].exit_code is None and classify(got[i]) == "error", i
        assert why in got[i].error and "sh: oops" in got[i].error, (i, got[i].error)


def test_records_of_another_nonce_are_not_ours() -> None:
    n, other = new_nonce(), new_nonce()
    [got] = parse_records(_record(other, 0), "", 1, n)
    assert classify(got) == "error"


@pytest.mark.parametrize("junk", ["", "\x00\x01", "cms 0 begin\n", "\n" * 50, "é" * 100])
def test_parse_records_never_raises(junk: str) -> None:
    n = new_nonce()
    got = parse_records(junk + "\n" + _record(n, 1, tail="99999 abc:"), junk, 3, n)
    assert len(got) == 3 and classify(got[0]) == "error"
    assert got[1].http_code == "000" and "bad http code" in got[1].error
