"""One request of the identity matrix, pure: the curl command, its evidence, its verdict.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). :func:`curl_command`
is what the probe execs in a pod of each source, :func:`parse_curl_output` turns what
came back into :class:`Evidence`, and :func:`classify` names the layer that decided:

- ``allowed``: the request reached the application, whatever it answered (except a 5xx);
- ``denied_by_mesh``: the server's sidecar refused it (HTTP 403 ``RBAC: access denied``);
- ``denied_by_network``: an L4 policy dropped or refused the connection;
- ``mtls_failure``: the TLS handshake failed, or plaintext was refused under STRICT;
- ``error``: anything else (DNS failure, a 5xx, the exec failed...), evidence kept.

``mtls_failure`` counts as a deny: the request did not get through (:data:`DENIALS`).

The evidence also keeps the response headers that name who answered (``server`` and
every ``x-envoy-*``, from curl's ``%{header_json}``: :func:`responder_headers`), and
:func:`answered_by` reads them: Envoy's own reply or the application's. They are
evidence only: no verdict depends on them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaosmesh_sec import _validate

__all__ = [
    "BODY_EXCERPT_CHARS",
    "DEFAULT_TIMEOUT_SECONDS",
    "DENIALS",
    "HEADER_LINE_CHARS",
    "MAX_TIMEOUT_SECONDS",
    "MIN_TIMEOUT_SECONDS",
    "RESPONDER_HEADERS",
    "RESPONDER_LINES",
    "RESPONDER_VALUE_CHARS",
    "VERDICTS",
    "Evidence",
    "answered_by",
    "classify",
    "curl_argv",
    "curl_command",
    "evidence_of",
    "excerpt",
    "parse_curl_output",
    "request_timeout",
    "responder_headers",
    "transfer_options",
]

VERDICTS = ("allowed", "denied_by_mesh", "denied_by_network", "mtls_failure", "error")
"""Every verdict of one request, attributed to the layer that decided."""
DENIALS = ("denied_by_mesh", "denied_by_network", "mtls_failure")
"""The verdicts that mean the request did not get through."""

DEFAULT_TIMEOUT_SECONDS = 5.0
MIN_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 300.0
BODY_EXCERPT_CHARS = 256  # room for Envoy's longest reset reason, with its TLS details
ERROR_EXCERPT_CHARS = 512

RBAC_DENIED = "RBAC: access denied"
UPSTREAM_CONNECT_ERROR = "upstream connect error"
_TLS_MARKERS = ("tls error", "tls_error", "ssl", "certificate")
_NETWORK_RESETS = ("connection timeout", "connection failure", "reset")
NETWORK_EXITS = frozenset({7, 28})  # couldn't connect (refused, unreachable); timed out
MTLS_EXITS = frozenset({35, 56})  # SSL connect error; recv failure (reset after connect)
RESOLVE_TIMEOUT = "curl: (28) Resolving timed out"  # a 28 that is a DNS failure, as 6 is

RESPONDER_HEADERS = 8
"""At most this many response headers are kept as the responder (the first ones)."""
RESPONDER_VALUE_CHARS = 200
"""A responder header's value is cut to this many characters (``...`` marks a cut)."""
HEADER_LINE_CHARS = 512
"""A line of curl's ``%{header_json}`` longer than this is left out (a pod cuts them)."""
ENVOY_SERVERS = frozenset({"envoy", "istio-envoy"})
"""The ``server`` values Envoy answers with (its default; istio's sidecars and gateways)."""
UPSTREAM_TIME = "x-envoy-upstream-service-time"
ENVOY_LOCAL_REPLIES = (RBAC_DENIED, UPSTREAM_CONNECT_ERROR, "no healthy upstream")
"""How Envoy's own replies begin: the RBAC filter's 403, the router's 503s."""
"""The header Envoy adds to a response it got from its upstream (not to its own replies)."""
RESPONDER_LINES = ('"server":', '"x-envoy-')
"""How a line of ``%{header_json}`` naming a responder header starts (after any ``{``)."""
_RESPONDER = re.compile(r"server|x-envoy-[a-z0-9-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")  # and line separators

HTTP_MARK = "curl-http:"
EXIT_MARK = "curl-exit:"
HEADERS_MARK = "curl-headers:"
HEADERS_WRITE_OUT = "%{header_json}"
"""curl's response headers as JSON (curl 7.83 or later; an older curl writes nothing)."""
# curl expands the \n itself
_WRITE_OUT = f"\\n{HEADERS_MARK}{HEADERS_WRITE_OUT}\\n{HTTP_MARK}%{{http_code}}\\n"
_HTTP_CODE = re.compile(r"\d{3}")
_EXIT_CODE = re.compile(r"\d{1,5}")


def request_timeout(name: str, value: object) -> float:
    """A request's timeout: a number of seconds in [0.1, 300]."""
    return _validate.seconds(name, value, MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class Evidence:
    """What one request left behind.

    `exit_code`: curl's, None when the exec itself failed. `http_code`: as curl
    printed it, "000" when no response came. `body`: an excerpt of the response.
    `error`: curl's message (stderr), or why the exec failed. `unserved`: the Service
    (``namespace/name``) the request went to when it had no Ready endpoint, so that the
    failure was nobody's deny. `responder`: the response headers that name who answered
    (:func:`responder_headers`: ``server`` and ``x-envoy-*``, lower-case name -> value),
    ``{}`` when the response had none of them, None when curl did not report its
    headers (older than 7.83, or the command did not run).
    """

    exit_code: int | None
    http_code: str
    body: str
    error: str = ""
    unserved: str = ""
    responder: dict[str, str] | None = field(default=None, hash=False)

    def unserved_by(self, service: str) -> Evidence:
        """This request, known to have gone to ``service`` while it had no Ready endpoint."""
        return dataclasses.replace(self, unserved=service)

    @classmethod
    def exec_failed(cls, error: str) -> Evidence:
        """The request could not even be sent (no pod, exec refused, ...)."""
        return cls(None, "000", "", _excerpt(error, ERROR_EXCERPT_CHARS))

    def to_json(self) -> dict[str, Any]:
        """``{"exit_code", "http_code", "body", "error"}``, with ``"unserved"`` when set,
        ``"responder": {name: value}`` when it names any header, and ``"answered_by"``
        (``"envoy"`` or ``"app"``, :func:`answered_by`) when a response came and curl
        reported its headers."""
        out: dict[str, Any] = {
            "exit_code": self.exit_code,
            "http_code": self.http_code,
            "body": self.body,
            "error": self.error,
        }
        if self.unserved:
            out["unserved"] = self.unserved
        if self.responder:
            out["responder"] = dict(self.responder)
        who = answered_by(self)
        if who:
            out["answered_by"] = who
        return out


def answered_by(evidence: Evidence) -> str:
    """Who wrote the response, as its headers and body tell: ``"envoy"``, ``"app"`` or ``""``.

    - ``"envoy"``: the ``server`` header names Envoy (``envoy``, or istio's
      ``istio-envoy``) and the response is one of Envoy's own (a local reply: the RBAC
      403, a sidecar's 503): its body is a local reply's text
      (:data:`ENVOY_LOCAL_REPLIES`), or nothing timed an upstream (no
      ``x-envoy-upstream-service-time``, which Envoy's router adds to what it got from
      upstream);
    - ``"app"``: any other response (its own body, through the sidecars or not);
    - ``""``: no response (HTTP code 000), or curl did not report the headers.

    Measured with the real Envoy: behind a client's sidecar, the server sidecar's RBAC
    403 does carry ``x-envoy-upstream-service-time`` (the client's router timed it), so
    the header alone cannot tell; the local reply's text can. An application that
    answers with that very text reads ``"envoy"``. Evidence only; :func:`classify` does
    not read it.
    """
    if evidence.responder is None or evidence.exit_code is None or evidence.http_code == "000":
        return ""
    server = evidence.responder.get("server", "").strip().lower()
    if server not in ENVOY_SERVERS:
        return "app"
    local = evidence.body.strip().startswith(ENVOY_LOCAL_REPLIES)
    return "envoy" if local or UPSTREAM_TIME not in evidence.responder else "app"


def classify(evidence: Evidence) -> str:
    """The verdict of one request (one of :data:`VERDICTS`), from its evidence.

    A response came back (HTTP code other than 000), judged by the code:

    - 403 with ``RBAC: access denied``: ``denied_by_mesh``;
    - 503 with ``upstream connect error`` (the client's sidecar could not connect):
      ``mtls_failure`` when the reason names TLS / SSL / a certificate,
      ``denied_by_network`` on a connection timeout, failure or reset, ``error``
      otherwise (``overflow``: a circuit breaker);
    - any other 1xx-4xx: ``allowed``. The request reached the application, so
      neither the network nor the mesh stopped it (a 404, or the app's own 403,
      still counts: a deny-expected cell is then a fail-open);
    - any other 5xx: ``error``.

    Whatever curl's exit code: a timeout after the headers arrived still reached the
    application. No response (000), judged by curl's exit code: 7 (could not connect,
    refused) and 28 (timed out) are ``denied_by_network``, but for a 28 that timed out
    resolving the name (``Resolving timed out``: a DNS failure, as 6 is, seen in the lab
    when a pod's names were not there yet), which is an ``error``; 35 (SSL connect error) and
    56 (reset after connect: plaintext refused under STRICT) are ``mtls_failure``;
    anything else (6: DNS failure, 0 without a response, the exec failed) is ``error``.

    Only what curl sees is used, so two denies may be put on the wrong layer (both
    still count as denies): ztunnel's L4 deny (ambient mode) resets the connection
    and reads as ``mtls_failure``; a client sidecar's plaintext refused under STRICT
    (``reset reason: connection termination``) reads as ``denied_by_network``.

    A failure to connect to a Service that had no Ready endpoint then (``unserved``,
    which the probe asks the API) is an ``error``: no policy decided it. A partition
    makes one: after the node monitor's grace period the cut-off node is NotReady and
    its pods leave their Services' endpoints.
    """
    if evidence.exit_code is None or evidence.unserved:
        return "error"
    code = evidence.http_code.strip()
    if code != "000":
        if not _HTTP_CODE.fullmatch(code):
            return "error"
        status = int(code)
        if status == 403 and RBAC_DENIED in evidence.body:
            return "denied_by_mesh"
        if status == 503 and UPSTREAM_CONNECT_ERROR in evidence.body:
            return _sidecar_503(evidence.body)
        return "allowed" if 100 <= status < 500 else "error"
    if evidence.exit_code in NETWORK_EXITS:
        # curl's 28 also ends a name lookup that took too long: no network policy said so
        return "error" if evidence.error.startswith(RESOLVE_TIMEOUT) else "denied_by_network"
    if evidence.exit_code in MTLS_EXITS:
        return "mtls_failure"
    return "error"


def _sidecar_503(body: str) -> str:
    """The verdict of Envoy's ``upstream connect error ... reset reason: ...``."""
    text = body.lower()
    if any(marker in text for marker in _TLS_MARKERS):
        return "mtls_failure"
    if "overflow" in text:
        return "error"
    if any(reason in text for reason in _NETWORK_RESETS):
        return "denied_by_network"
    return "error"


def curl_command(
    url: str, method: str = "GET", timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
) -> list[str]:
    """The argv to exec in a source's container: curl, then its exit code on the last line.

    ``sh -c`` running ``curl -q -sS -g --noproxy '*' -m T -X METHOD -o - -w TRAILER URL;
    echo "curl-exit:$?"``, TRAILER being
    ``\\ncurl-headers:%{header_json}\\ncurl-http:%{http_code}\\n`` (the response
    headers as JSON need curl 7.83 or later; an older one leaves them out). The shell
    always exits 0, so curl's exit code survives an exec that loses it. ``-q`` skips
    any ``.curlrc`` and ``--noproxy`` any proxy variable of the container: the request
    goes straight from the source. ``-g`` (``--globoff``) takes the URL as written:
    ``[1-9]`` or ``{a,b}`` in it is no curl glob (one cell, one request). ``HEAD`` uses
    ``--head`` (``-X HEAD`` waits for a body). Read the output with :func:`parse_curl_output`.
    """
    curl = curl_argv(url, method, timeout_seconds, _WRITE_OUT)
    return ["sh", "-c", f'{shlex.join(curl)}; echo "{EXIT_MARK}$?"']


def curl_argv(
    url: str,
    method: str,
    timeout_seconds: float,
    write_out: str,
) -> list[str]:
    """curl's own argv for one request (inputs checked), printing `write_out` after the
    body: ``curl -q -sS -g --noproxy '*' -m T -X METHOD -o - -w WRITE_OUT URL``."""
    return ["curl", "-q", "-sS", *transfer_options(url, method, timeout_seconds), "-o", "-",
            "-w", write_out, url]  # fmt: skip


def transfer_options(url: str, method: str, timeout_seconds: float) -> list[str]:
    """The options of one transfer (inputs checked; `url` itself is not among them):
    ``-g --noproxy '*' -m T`` and ``-X METHOD`` (``--head`` for HEAD). They are per
    transfer in curl: after ``--next`` each transfer states them again."""
    _validate.http_url("url", url)
    method = _validate.http_method("method", method)
    seconds = request_timeout("timeout_seconds", timeout_seconds)
    verb = ["--head"] if method == "HEAD" else ["-X", method]
    timeout = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return ["-g", "--noproxy", "*", "-m", timeout, *verb]


def parse_curl_output(stdout: str, stderr: str) -> Evidence:
    """The evidence in what :func:`curl_command` printed; never raises.

    Without the exit-code line (the shell did not run, the output was cut), the
    evidence has exit code None and says so in `error`. The body is cut to
    :data:`BODY_EXCERPT_CHARS`; `error` holds curl's own message, from `stderr`. The
    responder is read from the headers curl wrote (:func:`responder_headers`); None
    when curl wrote no JSON there (older than 7.83: nothing, or the variable as is).
    """
    error = _excerpt(stderr.strip(), ERROR_EXCERPT_CHARS)
    text = stdout.replace("\r\n", "\n").rstrip()
    head, mark, tail = text.rpartition(EXIT_MARK)
    if not mark or not _EXIT_CODE.fullmatch(tail) or (head and not head.endswith("\n")):
        problem = f"no {EXIT_MARK!r} line in the output: the command did not run to its end"
        return Evidence(None, "000", _excerpt(stdout), _join(problem, error))
    exit_code = int(tail)
    head = head.removesuffix("\n")
    body, code, found = _cut_mark(head, HTTP_MARK)
    if not found:  # curl did not write its trailer (not installed: exit 127)
        return Evidence(exit_code, "000", _excerpt(head), error)
    # the headers' JSON has a newline only between two headers, each line starting
    # with '{', '"' or '}': no header can fake a mark, and the last one is curl's
    body, headers, found = _cut_mark(body, HEADERS_MARK)
    responder = responder_headers(headers.split("\n")) if headers.startswith("{") else None
    return evidence_of(exit_code, code, body, error, responder)


def _cut_mark(text: str, mark: str) -> tuple[str, str, bool]:
    """`text` split at its last line starting with `mark`: (before, after, found)."""
    before, sep, after = text.rpartition("\n" + mark)
    if not sep and text.startswith(mark):  # nothing before the mark at all
        return "", text.removeprefix(mark), True
    return (before, after, True) if sep else (text, "", False)


def evidence_of(
    exit_code: int,
    http_code: str,
    body: str,
    error: str,
    responder: dict[str, str] | None = None,
) -> Evidence:
    """The evidence of a request whose curl ran to its end (exit code known) and wrote its
    `http_code`: the body cut to :data:`BODY_EXCERPT_CHARS`, a malformed code kept as
    ``000`` with why; `responder` as :func:`responder_headers` read it."""
    error = _excerpt(error, ERROR_EXCERPT_CHARS)
    code = http_code.strip()
    if not _HTTP_CODE.fullmatch(code):
        problem = _join(f"bad http code {code!r}", error)
        return Evidence(exit_code, "000", _excerpt(body), problem, responder=responder)
    return Evidence(exit_code, code, _excerpt(body), error, responder=responder)


def responder_headers(lines: Iterable[str]) -> dict[str, str]:
    """The response headers that name who answered, from the lines of curl's
    ``%{header_json}``: ``server`` and every ``x-envoy-*``, name -> value; never raises.

    curl writes one header per line (``"name":["value",...],``, the first line opening
    with ``{``). Only the first :data:`RESPONDER_HEADERS` lines that start as one of
    these headers (:data:`RESPONDER_LINES`) are read, as the batch script keeps them;
    one that does not parse as that (longer than :data:`HEADER_LINE_CHARS`, or
    garbled) is left out. A header sent more than once has its values joined with
    ``, `` (as ``%header{name}`` writes them). A value is the destination's own text:
    control characters (CR, LF, ...) become spaces and it is cut to
    :data:`RESPONDER_VALUE_CHARS`.
    """
    out: dict[str, str] = {}
    candidates = 0
    for line in lines:
        member = line.removeprefix("{")
        if not member.startswith(RESPONDER_LINES):
            continue
        candidates += 1
        if candidates > RESPONDER_HEADERS:
            break
        if len(line) > HEADER_LINE_CHARS:
            continue
        member = member.rstrip().removesuffix("}").removesuffix(",")
        try:
            parsed = json.loads("{" + member + "}")
        except ValueError:
            continue
        if not isinstance(parsed, dict) or len(parsed) != 1:
            continue
        [(name, values)] = parsed.items()
        if not _RESPONDER.fullmatch(name) or name in out:
            continue
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            continue
        text = ", ".join(v for v in values if isinstance(v, str))
        out[name] = _excerpt(_CONTROL.sub(" ", text).strip(), RESPONDER_VALUE_CHARS)
    return out


def excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """`text` cut to `limit` characters (``...`` marks a cut)."""
    return _excerpt(text, limit)


def _excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
