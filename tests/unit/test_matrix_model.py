"""The identity matrix model (pure): the file, one request's verdict, the comparison."""

from __future__ import annotations

import dataclasses
import http.server
import os
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes._matrix_evidence import (
    BODY_EXCERPT_CHARS,
    DENIALS,
    HEADER_LINE_CHARS,
    RESPONDER_HEADERS,
    RESPONDER_VALUE_CHARS,
    VERDICTS,
    Evidence,
    answered_by,
    classify,
    curl_command,
    parse_curl_output,
    responder_headers,
)
from chaosmesh_sec.probes._matrix_judgement import MatrixOutcome, compare, verdicts_from_json
from chaosmesh_sec.probes._matrix_spec import Matrix, parse_matrix

EXAMPLE = """\
name: wrong-identity
sources:
  sleep-v1: {namespace: default, selector: "app=sleep,version=v1", container: sleep}
  sleep-v2: {namespace: default, selector: "app=sleep,version=v2", container: sleep}
destinations:
  helloworld-v1: {url: "http://helloworld-v1.default:5000/hello"}
  helloworld-v2: {url: "http://helloworld-v2.default:5000/hello", method: GET}
expect:
  sleep-v1: {helloworld-v1: allowed, helloworld-v2: denied}
  sleep-v2: {helloworld-v1: denied_by_network, helloworld-v2: allowed}
"""

V1, V2 = ("sleep-v1", "helloworld-v1"), ("sleep-v1", "helloworld-v2")
W1, W2 = ("sleep-v2", "helloworld-v1"), ("sleep-v2", "helloworld-v2")

OK_200 = Evidence(0, "200", "Hello version: v1")
RBAC_403 = Evidence(0, "403", "RBAC: access denied")
TIMEOUT = Evidence(28, "000", "", "curl: (28) Connection timed out after 5001 milliseconds")
RESET = Evidence(56, "000", "", "curl: (56) Recv failure: Connection reset by peer")
REFUSED = Evidence(7, "000", "", "curl: (7) Failed to connect: Connection refused")
SSL_ERROR = Evidence(35, "000", "", "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL")


def _base() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE)  # type: ignore[no-any-return]


def _text(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def _with(path: str, value: Any) -> str:
    """The example with the value at dotted `path` replaced (``...`` deletes it)."""
    doc = _base()
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return _text(doc)


# ---------------------------------------------------------------- parsing


def test_example_parses_in_file_order() -> None:
    matrix = parse_matrix(EXAMPLE, "m.yaml")
    assert matrix.name == "wrong-identity"
    assert [(c.key, c.expected) for c in matrix.cells()] == [
        (V1, "allowed"),
        (V2, "denied"),
        (W1, "denied_by_network"),
        (W2, "allowed"),
    ]
    source = matrix.sources[0]
    assert (source.namespace, source.selector, source.container) == (
        "default",
        "app=sleep,version=v1",
        "sleep",
    )
    dest = matrix.destinations[0]
    assert (dest.method, dest.timeout_seconds, dest.pod) == ("GET", 5.0, None)
    assert dest.target_url() == "http://helloworld-v1.default:5000/hello"
    assert matrix.cells()[1].id == "sleep-v1 -> helloworld-v2"


def test_default_row_words_timeouts_and_pod_destinations() -> None:
    text = """\
name: team-isolation
timeout_seconds: 2.5
sources:
  a: {namespace: team-a, selector: app=client}
  b: {namespace: team-b, selector: "app in (client, tools)"}
destinations:
  svc: {url: "https://svc.team-a.svc.cluster.local/", method: POST, timeout_seconds: 7}
  pod: {namespace: team-a, selector: app=server, port: 8080, path: /healthz}
default: denied
expect:
  a: {svc: allowed}
  b: denied_by_mesh
"""
    matrix = parse_matrix(text)
    assert [c.expected for c in matrix.cells()] == [
        "allowed",
        "denied",
        "denied_by_mesh",
        "denied_by_mesh",
    ]
    svc, pod = matrix.destinations
    assert (svc.method, svc.timeout_seconds) == ("POST", 7.0)
    assert (pod.method, pod.timeout_seconds) == ("GET", 2.5)
    assert matrix.sources[0].container is None
    assert pod.target_url("10.1.2.3") == "http://10.1.2.3:8080/healthz"
    assert pod.target_url("fd00::7") == "http://[fd00::7]:8080/healthz"
    with pytest.raises(ValueError, match="pod's IP"):
        pod.target_url()
    with pytest.raises(ValueError):
        pod.target_url("not-an-ip")
    assert matrix.cells()[1].command("10.1.2.3")[-1].startswith("curl ")


def test_default_alone_fills_every_cell_and_expect_may_be_left_out() -> None:
    text = _with("expect", ...) + "default: denied\n"
    assert {c.expected for c in parse_matrix(text).cells()} == {"denied"}


C = "expect.sleep-v1.helloworld-v1"  # a cell
U = "destinations.helloworld-v1.url"
T = "timeout_seconds"
S = "sources.sleep-v1"
POD = {"namespace": "a", "selector": "b=c", "port": 80}
PP = "destinations.pod.port"
BETWEEN = "between 0.1 and 300"


@pytest.mark.parametrize(
    ("path", "value", "problem", "where"),
    [
        # verdict words
        (C, "deny", "unknown verdict 'deny'", ""),
        (C, "error", "not an expectation", ""),
        (C, True, "unknown verdict True", ""),
        ("expect.sleep-v1", "nope", "unknown verdict 'nope'", ""),
        ("expect.sleep-v1", ["allowed"], "got list", ""),
        ("default", "maybe", "unknown verdict 'maybe'", ""),
        # cells naming unknown rows / columns, and missing cells
        ("expect.sleep-v9", "denied", "unknown source 'sleep-v9'", ""),
        ("expect.sleep-v1.hello", "denied", "unknown destination 'hello'", ""),
        ("expect.sleep-v2", {"helloworld-v2": "allowed"}, "for sleep-v2 -> helloworld-v1", ""),
        ("expect", ..., "sleep-v1 -> helloworld-v1, sleep-v1 -> helloworld-v2", "expect.sleep-v1"),
        # URLs
        (U, "ftp://helloworld-v1/", "http or https", ""),
        (U, "helloworld-v1:5000/hello", "http or https", ""),
        (U, "http:///hello", "no host", ""),
        (U, "http://u:p@helloworld-v1/", "credentials", ""),
        (U, "http://helloworld-v1:99999/", "not a URL", ""),
        (U, "http://hello world/", "spaces", ""),
        (U, "http://a;b/", "not a host name", ""),
        (U, 5000, "got int", ""),
        # methods and timeouts
        ("destinations.helloworld-v2.method", "get", "not an HTTP method", ""),
        ("destinations.helloworld-v2.method", "FETCH", "not an HTTP method", ""),
        (T, 0, BETWEEN, ""),
        (T, -1, BETWEEN, ""),
        (T, 301, BETWEEN, ""),
        (T, float("nan"), BETWEEN, ""),
        (T, "5", "number of seconds, got str", ""),
        (T, True, "got bool", ""),
        ("destinations.helloworld-v1.timeout_seconds", 0.01, BETWEEN, ""),
        # sources
        (f"{S}.namespace", "Default", "not a valid name", ""),
        (f"{S}.namespace", ..., "is required", ""),
        (f"{S}.selector", "app in (sleep", "not a label selector", ""),
        (f"{S}.selector", "", "must not be empty", ""),
        (f"{S}.container", "Sleep_1", "not a valid name", ""),
        (f"{S}.namspace", "default", "unknown key", ""),
        (S, None, "got nothing", ""),
        ("sources.sleep v3", {"namespace": "a", "selector": "b"}, "not a name", ""),
        ("sources", {}, "at least one", ""),
        # destinations
        ("destinations.helloworld-v1", {"method": "GET"}, "needs a `url`", ""),
        ("destinations.helloworld-v1.port", 5000, "takes no pod keys", ""),
        ("destinations.pod", {**POD, "port": 0}, "port number", PP),
        ("destinations.pod", {**POD, "port": "80"}, "port number", PP),
        ("destinations.pod", {"namespace": "a", "selector": "b"}, "is required", PP),
        ("destinations.pod", {**POD, "path": "x"}, "starting with '/'", "destinations.pod.path"),
        ("destinations.pod", {**POD, "scheme": "tcp"}, "http or https", "destinations.pod.scheme"),
        # the top level
        ("defaults", "denied", "unknown key", ""),
        ("sources", ..., "is required", ""),
        ("name", "wrong identity", "not a name", ""),
        ("description", ["x"], "must be a string", ""),
    ],
)
def test_parse_errors_name_the_place(path: str, value: Any, problem: str, where: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_matrix(_with(path, value), "m.yaml")
    assert info.value.name == f"m.yaml: {where or path}"
    assert problem in info.value.problem
    assert f"'m.yaml: {where or path}'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("- a\n- b\n", "m.yaml", "the file must be a mapping, got list"),
        ("", "m.yaml", "the file must be a mapping, got nothing"),
        ("name: [unclosed\n", "m.yaml", "not valid YAML"),
        ("a: 1\n---\nb: 2\n", "m.yaml", "not valid YAML"),
        (
            EXAMPLE.replace("  sleep-v2: {namespace", "  sleep-v1: {namespace", 1),
            "m.yaml: sources.sleep-v1",
            "duplicate key 'sleep-v1' (lines 3 and 4)",
        ),
        (
            EXAMPLE.replace("helloworld-v2: denied}", "helloworld-v1: denied}"),
            "m.yaml: expect.sleep-v1.helloworld-v1",
            "duplicate key 'helloworld-v1' (lines 9 and 9)",
        ),
        (EXAMPLE + "name: again\n", "m.yaml: name", "duplicate key 'name' (lines 1 and 11)"),
    ],
)
def test_file_level_errors(text: str, where: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_matrix(text, "m.yaml")
    assert info.value.name == where
    assert problem in info.value.problem


def test_missing_cells_are_listed_with_a_count_beyond_ten() -> None:
    doc = _base()
    doc["destinations"] = {f"d{i}": {"url": f"http://d{i}.default/"} for i in range(12)}
    doc["expect"] = {}
    with pytest.raises(InvalidInput, match=r"sleep-v1 -> d9 and 14 more \(write each cell"):
        parse_matrix(_text(doc))


def test_aliases_and_recursion_do_not_hang_the_duplicate_check() -> None:
    text = EXAMPLE + "description: &d desc\n"
    assert parse_matrix(text).description == "desc"
    with pytest.raises(InvalidInput, match="must be a string"):
        parse_matrix(EXAMPLE + "description: &r [*r]\n")


# ---------------------------------------------------------------- one request's verdict

UPSTREAM = "upstream connect error or disconnect/reset before headers. "
TIMEOUT_503 = UPSTREAM + "reset reason: connection timeout"
TERMINATION_503 = UPSTREAM + "reset reason: connection termination"
REFUSED_503 = (
    UPSTREAM + "retried and the latest reset reason: connection failure, "
    "transport failure reason: delayed connect error: 111"
)
TLS_503 = (
    UPSTREAM + "retried and the latest reset reason: remote connection failure, "
    "transport failure reason: TLS_error:|268435581:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
)


@pytest.mark.parametrize(
    ("evidence", "verdict"),
    [
        (OK_200, "allowed"),
        (Evidence(0, "302", ""), "allowed"),
        (Evidence(0, "404", "not found"), "allowed"),  # the app answered
        (Evidence(0, "403", "forbidden by the app"), "allowed"),  # the app's own 403
        (Evidence(28, "200", "partial body"), "allowed"),  # timed out after the headers
        (RBAC_403, "denied_by_mesh"),
        (Evidence(0, "503", TIMEOUT_503), "denied_by_network"),
        (Evidence(0, "503", REFUSED_503), "denied_by_network"),
        (Evidence(0, "503", TERMINATION_503), "denied_by_network"),
        (Evidence(0, "503", TLS_503), "mtls_failure"),
        (Evidence(0, "503", UPSTREAM + "reset reason: overflow"), "error"),  # circuit breaker
        (Evidence(0, "503", "no healthy upstream"), "error"),
        (Evidence(0, "500", "boom"), "error"),
        (Evidence(0, "504", "upstream request timeout"), "error"),
        (TIMEOUT, "denied_by_network"),
        (REFUSED, "denied_by_network"),
        (RESET, "mtls_failure"),
        (SSL_ERROR, "mtls_failure"),
        (Evidence(6, "000", "", "curl: (6) Could not resolve host: nowhere"), "error"),
        (Evidence(127, "000", "", "sh: curl: not found"), "error"),
        (Evidence(0, "000", ""), "error"),
        (Evidence(0, "2x0", ""), "error"),
        (Evidence.exec_failed("pods is forbidden"), "error"),
        (Evidence(None, "200", "Hello"), "error"),  # no exit code: nothing is trusted
    ],
)  # fmt: skip
def test_classify(evidence: Evidence, verdict: str) -> None:
    assert classify(evidence) == verdict


# ---------------------------------------------------------------- the comparison


def test_everything_as_expected_holds() -> None:
    outcome = compare(parse_matrix(EXAMPLE), {V1: OK_200, V2: RBAC_403, W1: TIMEOUT, W2: "allowed"})
    assert outcome.holds
    assert outcome.counts() == {
        "allowed": 2,
        "denied_by_mesh": 1,
        "denied_by_network": 1,
        "mtls_failure": 0,
        "error": 0,
    }
    assert not (outcome.fail_open or outcome.unexpected_denies or outcome.layer_mismatches)
    assert outcome.cells[3].evidence is None  # given as a verdict alone
    assert outcome.cells[0].evidence == OK_200


@pytest.mark.parametrize(
    ("results", "holds", "lists"),
    [
        # sleep-v1 reaches helloworld-v2: a fail-open
        ({V1: "allowed", V2: "allowed", W1: "denied_by_network", W2: "allowed"}, False,
         {"fail_open": [V2], "failures": [V2]}),
        # sleep-v2 is refused where it should pass
        ({V1: "allowed", V2: "denied_by_mesh", W1: "denied_by_network", W2: "mtls_failure"}, False,
         {"unexpected_denies": [W2], "failures": [W2]}),
        # the network layer was expected, the mesh denied: holds, reported
        ({V1: "allowed", V2: "denied_by_mesh", W1: "denied_by_mesh", W2: "allowed"}, True,
         {"layer_mismatches": [W1]}),
        # an mTLS failure is a deny: `denied` accepts it; a specific layer reports it
        ({V1: "allowed", V2: "mtls_failure", W1: "mtls_failure", W2: "allowed"}, True,
         {"layer_mismatches": [W1]}),
        # an error is never ok, whatever was expected
        ({V1: "error", V2: "error", W1: "denied_by_network", W2: "allowed"}, False,
         {"errors": [V1, V2], "failures": [V1, V2]}),
        # a cell without a result was not checked: an error
        ({V1: "allowed", V2: "denied_by_mesh", W1: "denied_by_network"}, False,
         {"errors": [W2], "failures": [W2]}),
    ],
)  # fmt: skip
def test_compare_judges_each_cell(
    results: dict[tuple[str, str], str], holds: bool, lists: dict[str, list[tuple[str, str]]]
) -> None:
    outcome = compare(parse_matrix(EXAMPLE), results)
    assert outcome.holds is holds
    for name in ("failures", "fail_open", "unexpected_denies", "layer_mismatches", "errors"):
        assert [c.key for c in getattr(outcome, name)] == lists.get(name, []), name
    assert sum(outcome.counts().values()) == 4


def test_missing_result_keeps_a_reason() -> None:
    outcome = compare(parse_matrix(EXAMPLE), {V1: "allowed", V2: "denied_by_mesh", W1: TIMEOUT})
    missing = outcome.cells[3]
    assert missing.verdict == "error"
    assert missing.evidence is not None
    assert missing.evidence.error == "no result for this cell"


def test_layer_change_against_the_baseline() -> None:
    matrix = parse_matrix(EXAMPLE)
    before = compare(matrix, {V1: OK_200, V2: TIMEOUT, W1: TIMEOUT, W2: OK_200})
    during = compare(matrix, {V1: OK_200, V2: RBAC_403, W1: TIMEOUT, W2: OK_200}, before)
    assert during.holds  # L4 was bypassed, the mesh held
    (changed,) = during.layer_changes
    assert changed.key == V2
    assert changed.layer_change == "denied_by_network -> denied_by_mesh"
    assert changed.baseline == "denied_by_network"
    assert not changed.layer_mismatch  # `denied` was expected: any layer
    assert during.cells[0].layer_change is None
    assert during.cells[0].baseline == "allowed"

    # the same baseline, read back from a journal's JSON
    again = compare(matrix, {V1: OK_200, V2: RBAC_403, W1: TIMEOUT, W2: OK_200},
                    verdicts_from_json(before.to_json()))  # fmt: skip
    assert again == during

    # a baseline that lacks a cell: no change reported for it
    partial = compare(matrix, {V1: "allowed", V2: "denied_by_mesh"}, {V1: "denied_by_mesh"})
    assert [c.layer_change for c in partial.cells] == [
        "denied_by_mesh -> allowed",
        None,
        None,
        None,
    ]


def test_to_json_is_plain_json() -> None:
    import json

    outcome = compare(
        parse_matrix(EXAMPLE),
        {V1: OK_200, V2: OK_200, W1: RBAC_403, W2: RESET},
        {V1: "allowed", V2: "denied_by_mesh", W1: "denied_by_network", W2: "allowed"},
    )
    data = json.loads(json.dumps(outcome.to_json()))
    assert data["matrix"] == "wrong-identity"
    assert data["holds"] is False
    assert data["total"] == 4
    assert data["fail_open"] == ["sleep-v1 -> helloworld-v2"]
    assert data["unexpected_denies"] == ["sleep-v2 -> helloworld-v2"]
    assert data["layer_mismatches"] == ["sleep-v2 -> helloworld-v1"]
    assert data["failures"] == ["sleep-v1 -> helloworld-v2", "sleep-v2 -> helloworld-v2"]
    assert [(c["cell"], c["baseline"], c["verdict"]) for c in data["layer_changes"]] == [
        ("sleep-v1 -> helloworld-v2", "denied_by_mesh", "allowed"),
        ("sleep-v2 -> helloworld-v1", "denied_by_network", "denied_by_mesh"),
        ("sleep-v2 -> helloworld-v2", "allowed", "mtls_failure"),
    ]
    assert set(data["counts"]) == set(VERDICTS)
    cell = data["cells"][3]
    assert cell["evidence"] == {
        "exit_code": 56,
        "http_code": "000",
        "body": "",
        "error": RESET.error,
    }
    assert (cell["expected"], cell["verdict"], cell["ok"]) == ("allowed", "mtls_failure", False)


@pytest.mark.parametrize(
    ("results", "baseline", "message"),
    [
        ({("sleep-v3", "helloworld-v1"): "allowed"}, None, "not in matrix 'wrong-identity'"),
        ({V1: "denied"}, None, "result of sleep-v1 -> helloworld-v1: 'denied' is not a verdict"),
        ({V1: "allowed"}, {V1: "ok"}, "baseline of sleep-v1 -> helloworld-v1"),
    ],
)
def test_compare_refuses_what_it_cannot_judge(
    results: dict[Any, Any], baseline: dict[Any, Any] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compare(parse_matrix(EXAMPLE), results, baseline)


@pytest.mark.parametrize(
    "data",
    [{}, {"cells": {}}, {"cells": [1]}, {"cells": [{"source": "a"}]},
     {"cells": [{"source": "a", "destination": "b", "verdict": "maybe"}]}],
)  # fmt: skip
def test_verdicts_from_json_refuses_other_shapes(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        verdicts_from_json(data)


def test_denials_are_the_deny_verdicts() -> None:
    assert set(DENIALS) < set(VERDICTS)
    assert "allowed" not in DENIALS
    assert "error" not in DENIALS


# ---------------------------------------------------------------- the curl command


def test_curl_command_shape() -> None:
    argv = curl_command("http://helloworld-v1.default:5000/hello", "POST", 2.5)
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == (
        "curl -q -sS -g --noproxy '*' -m 2.5 -X POST -o - "
        "-w '\\ncurl-headers:%{header_json}\\ncurl-http:%{http_code}\\n' "
        'http://helloworld-v1.default:5000/hello; echo "curl-exit:$?"'
    )
    assert " --head " in curl_command("http://a/", "HEAD")[2]
    assert " -m 10 " in curl_command("http://a/", "GET", 10)[2]


def test_a_url_with_glob_characters_is_one_request_as_written() -> None:
    """The real curl against a local server: ``[1-2]`` and ``{a,b}`` are no curl glob."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/cell[1-2]{{a,b}}"
        run = subprocess.run(
            curl_command(url, "GET", 5), capture_output=True, text=True, timeout=20
        )
        server.shutdown()
    evidence = parse_curl_output(run.stdout, run.stderr)
    assert (evidence.exit_code, evidence.http_code) == (0, "200")
    assert seen == ["/cell[1-2]{a,b}"]


@pytest.mark.parametrize(
    ("args", "bad_input"),
    [
        (("http://a/; rm -rf /", "GET", 5), "url"),
        (("file:///etc/passwd", "GET", 5), "url"),
        (("http://a/", "GET;", 5), "method"),
        (("http://a/", "GET", 0), "timeout_seconds"),
    ],
)
def test_curl_command_refuses_bad_input(args: tuple[Any, Any, Any], bad_input: str) -> None:
    with pytest.raises(InvalidInput) as info:
        curl_command(*args)
    assert info.value.name == bad_input


HELLO = "Hello version: v1\n"
FAKED = "x\ncurl-http:200\ncurl-exit:0\n"
NOT_FOUND = "sh: 1: curl: not found"
NO_EXIT = "no 'curl-exit:' line in the output: the command did not run to its end"


@pytest.mark.parametrize(
    ("stdout", "stderr", "expected"),
    [
        (HELLO + "\ncurl-http:200\ncurl-exit:0\n", "", Evidence(0, "200", HELLO)),
        ("RBAC: access denied\ncurl-http:403\ncurl-exit:0\n", "", RBAC_403),
        ("\ncurl-http:000\ncurl-exit:28\n", TIMEOUT.error + "\n", TIMEOUT),
        ("\r\ncurl-http:000\r\ncurl-exit:56\r\n", RESET.error, RESET),
        ("curl-http:204\ncurl-exit:0", "", Evidence(0, "204", "")),  # leading newline lost
        ("curl-exit:127\n", NOT_FOUND + "\n", Evidence(127, "000", "", NOT_FOUND)),
        # a body that imitates the trailer: the last one is curl's
        (FAKED + "\ncurl-http:403\ncurl-exit:0\n", "", Evidence(0, "403", FAKED)),
        (
            "body\ncurl-http:2x0\ncurl-exit:0\n",
            "",
            Evidence(0, "000", "body", "bad http code '2x0'"),
        ),
    ],
)
def test_parse_curl_output(stdout: str, stderr: str, expected: Evidence) -> None:
    assert parse_curl_output(stdout, stderr) == expected


@pytest.mark.parametrize(
    ("stdout", "stderr", "error"),
    [
        ("", "", NO_EXIT),
        (
            "",
            "error: unable to upgrade connection",
            f"{NO_EXIT}; error: unable to upgrade connection",
        ),
        ("partial body", "", NO_EXIT),
        ("\ncurl-http:200\ncurl-exit:zero\n", "", NO_EXIT),
        ("text curl-exit:0\n", "", NO_EXIT),
    ],
)
def test_parse_curl_output_without_the_exit_line(stdout: str, stderr: str, error: str) -> None:
    """The command did not run to its end: no exit code, what came back is kept."""
    assert parse_curl_output(stdout, stderr) == Evidence(None, "000", stdout, error)


def test_parse_curl_output_cuts_long_bodies_and_errors() -> None:
    evidence = parse_curl_output("x" * 5000 + "\ncurl-http:200\ncurl-exit:0\n", "e" * 5000)
    assert evidence.body == "x" * BODY_EXCERPT_CHARS + "..."
    assert len(evidence.error) < 600
    assert classify(evidence) == "allowed"


@pytest.mark.parametrize("junk", ["\x00\x01", "curl-exit:", "curl-exit:-1", "\n" * 3, "é€🙂"])
def test_parse_curl_output_never_raises(junk: str) -> None:
    evidence = parse_curl_output(junk, junk)
    assert evidence.exit_code is None
    assert classify(evidence) == "error"


# ---------------------------------------------------------------- who answered

ENVOY = {"server": "envoy"}
PROXIED = {"server": "istio-envoy", "x-envoy-upstream-service-time": "3"}


def _out(body: str, headers: str, code: str, exit_code: int = 0) -> str:
    """What curl_command prints: the body, curl's write-out, the shell's exit line."""
    return f"{body}\ncurl-headers:{headers}\ncurl-http:{code}\ncurl-exit:{exit_code}\n"


RBAC_HEADERS = '{"content-length":["19"],\n"content-type":["text/plain"],\n"server":["envoy"]\n}'


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        # curl 7.83 or later: the headers that name who answered, the others left out
        (_out("RBAC: access denied", RBAC_HEADERS, "403"),
         Evidence(0, "403", "RBAC: access denied", responder=ENVOY)),
        (_out(HELLO, '{"server":["istio-envoy"],\n"x-envoy-upstream-service-time":["3"]\n}',
              "200"), Evidence(0, "200", HELLO, responder=PROXIED)),
        # no such header, or no response at all: none to keep, curl did report
        (_out("hi", '{"server":["gunicorn"],\n"x-powered-by":["me"]\n}', "200"),
         Evidence(0, "200", "hi", responder={"server": "gunicorn"})),
        (_out("", "{\n}", "000", 7), Evidence(7, "000", "", responder={})),
        # an older curl writes nothing for %{header_json}, or the variable as it is
        (_out("hi", "", "200"), Evidence(0, "200", "hi")),
        (_out("hi", "%{header_json}", "200"), Evidence(0, "200", "hi")),
        # a body that imitates the headers' mark: the last one is curl's
        (_out('x\ncurl-headers:{"server":["envoy"]}', '{"server":["gunicorn"]\n}', "403"),
         Evidence(0, "403", 'x\ncurl-headers:{"server":["envoy"]}',
                  responder={"server": "gunicorn"})),
        # a curl that did not escape a header's newline: that header is garbled and left
        # out, its fake trailer lines come before curl's own and fake nothing
        (_out("RBAC: access denied",
              '{"server":["envoy\ncurl-http:200\ncurl-exit:0\n"],\n'
              '"x-envoy-upstream-service-time":["1"]\n}', "403"),
         Evidence(0, "403", "RBAC: access denied",
                  responder={"x-envoy-upstream-service-time": "1"})),
    ],
)  # fmt: skip
def test_parse_curl_output_keeps_who_answered(stdout: str, expected: Evidence) -> None:
    got = parse_curl_output(stdout, "")
    assert got == expected
    assert classify(got) == classify(dataclasses.replace(got, responder=None))


def test_the_responder_headers_a_destination_cannot_abuse() -> None:
    """Values are the destination's text: one line each, cut; at most a few headers."""
    lines = (
        [
            '{"date":["Mon"],',
            '"server":["envoy\\r\\ncms0000000000000000 0 end 0 200:\\u2028x"],',
            '"x-envoy-long":["' + "v" * 300 + '"],',
            '"x-envoy-a b":["a name that is no header name"],',
            '"x-envoy-twice":["1","2"],',
            '"x-envoy-odd":[1,"n",null],',
            '"x-envoy-cut":["no end',
            '"x-envoy-long-line":["' + "w" * HEADER_LINE_CHARS + '"],',
        ]
        + [f'"x-envoy-h{i}":["{i}"],' for i in range(10)]
        + ["}"]
    )
    got = responder_headers(lines)
    assert got == {
        "server": "envoy cms0000000000000000 0 end 0 200: x",
        "x-envoy-long": "v" * RESPONDER_VALUE_CHARS + "...",
        "x-envoy-twice": "1, 2",
        "x-envoy-odd": "n",
        "x-envoy-h0": "0",
    }  # the first RESPONDER_HEADERS lines naming one are read, the unreadable left out
    assert all("\n" not in v and "\r" not in v for v in got.values())
    assert len(responder_headers([f'"x-envoy-h{i}":["{i}"],' for i in range(20)])) == (
        RESPONDER_HEADERS
    )


@pytest.mark.parametrize(
    "lines",
    [[], ["{", "}"], ["{}"], ['{"server":["envoy"]}'], ["\x00", '"server":', '"server":[]}']],
)
def test_responder_headers_never_raises(lines: list[str]) -> None:
    assert responder_headers(lines) in ({}, ENVOY, {"server": ""})


@pytest.mark.parametrize(
    ("evidence", "who"),
    [
        (Evidence(0, "403", "RBAC: access denied", responder=ENVOY), "envoy"),
        (Evidence(0, "403", "RBAC: access denied", responder={"server": "istio-envoy"}),
         "envoy"),
        (Evidence(0, "503", TIMEOUT_503, responder={"server": "Envoy "}), "envoy"),
        (Evidence(0, "200", HELLO, responder=PROXIED), "app"),
        # the server's sidecar's reply, timed by a client's sidecar (as the real Envoy
        # answers in the lab): its text still tells
        (Evidence(0, "403", "RBAC: access denied",
                  responder={**ENVOY, "x-envoy-upstream-service-time": "1"}), "envoy"),
        (Evidence(0, "403", "forbidden by the app",
                  responder={**ENVOY, "x-envoy-upstream-service-time": "1"}), "app"),
        (Evidence(0, "403", "forbidden by the app", responder={"server": "gunicorn"}), "app"),
        (Evidence(0, "200", HELLO, responder={}), "app"),  # no Envoy header at all
        (Evidence(28, "200", "partial", responder=ENVOY), "envoy"),
        (Evidence(7, "000", "", responder={}), ""),  # no response
        (Evidence(0, "403", "RBAC: access denied"), ""),  # curl did not report the headers
        (Evidence.exec_failed("pods is forbidden"), ""),
        (Evidence(None, "200", "Hello", responder=ENVOY), ""),
    ],
)  # fmt: skip
def test_answered_by(evidence: Evidence, who: str) -> None:
    assert answered_by(evidence) == who


def test_to_json_names_the_responder_only_when_there_is_one() -> None:
    plain = {"exit_code": 0, "http_code": "403", "body": "RBAC: access denied", "error": ""}
    assert RBAC_403.to_json() == plain  # no header evidence: as before
    assert Evidence(0, "403", "RBAC: access denied", responder={}).to_json() == {
        **plain,
        "answered_by": "app",
    }
    assert Evidence(0, "403", "RBAC: access denied", responder=ENVOY).to_json() == {
        **plain,
        "responder": {"server": "envoy"},
        "answered_by": "envoy",
    }
    assert "responder" not in Evidence(7, "000", "", responder={}).to_json()
    assert "answered_by" not in Evidence(7, "000", "", responder={}).to_json()
    hash(Evidence(0, "403", "", responder=ENVOY))  # still hashable, as frozen evidence was


FAKE_CURL = """#!/bin/sh
# stands in for curl: records its arguments, answers as told by the environment
for arg in "$@"; do printf '%s\\n' "$arg"; done > "$FAKE_ARGS"
printf '%s' "$FAKE_BODY"
printf '\\ncurl-http:%s\\n' "$FAKE_CODE"
[ -n "$FAKE_ERROR" ] && printf '%s\\n' "$FAKE_ERROR" >&2
exit "$FAKE_EXIT"
"""


@pytest.mark.parametrize(
    ("body", "code", "exit_code", "error", "verdict"),
    [
        ("Hello version: v1", "200", 0, "", "allowed"),
        ("RBAC: access denied", "403", 0, "", "denied_by_mesh"),
        (UPSTREAM + "reset reason: connection timeout", "503", 0, "", "denied_by_network"),
        ("", "000", 28, "curl: (28) Connection timed out", "denied_by_network"),
        ("", "000", 56, "curl: (56) Recv failure: Connection reset by peer", "mtls_failure"),
        ("", "000", 6, "curl: (6) Could not resolve host: x", "error"),
        # a name lookup that timed out is a 28 too: a DNS failure, no network policy
        ("", "000", 28, "curl: (28) Resolving timed out after 3000 milliseconds", "error"),
    ],
)
def test_round_trip_through_the_shell(
    tmp_path: Path, body: str, code: str, exit_code: int, error: str, verdict: str
) -> None:
    """The real ``sh -c`` wrapper, a fake curl: the exit code reaches the parser."""
    fake = tmp_path / "curl"
    fake.write_text(FAKE_CURL)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "FAKE_ARGS": str(tmp_path / "args"),
        "FAKE_BODY": body,
        "FAKE_CODE": code,
        "FAKE_EXIT": str(exit_code),
        "FAKE_ERROR": error,
    }
    argv = curl_command("http://helloworld-v2.default:5000/hello", "GET", 3)
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10, check=False)
    assert run.returncode == 0  # the shell hides curl's exit code: the trailer carries it
    evidence = parse_curl_output(run.stdout, run.stderr)
    assert evidence == Evidence(exit_code, code, body, error)
    assert classify(evidence) == verdict
    assert (tmp_path / "args").read_text().splitlines() == [
        "-q",
        "-sS",
        "-g",
        "--noproxy",
        "*",
        "-m",
        "3",
        "-X",
        "GET",
        "-o",
        "-",
        "-w",
        "\\ncurl-headers:%{header_json}\\ncurl-http:%{http_code}\\n",
        "http://helloworld-v2.default:5000/hello",
    ]


def test_outcome_and_matrix_are_frozen() -> None:
    matrix = parse_matrix(EXAMPLE)
    outcome = compare(matrix, {})
    with pytest.raises(AttributeError):
        matrix.name = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        outcome.matrix = "x"  # type: ignore[misc]
    assert isinstance(matrix, Matrix)
    assert isinstance(outcome, MatrixOutcome)
    assert hash(matrix) == hash(parse_matrix(EXAMPLE))
