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
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass
from typing import Any

from chaosmesh_sec import _validate

__all__ = [
    "BODY_EXCERPT_CHARS",
    "DEFAULT_TIMEOUT_SECONDS",
    "DENIALS",
    "MAX_TIMEOUT_SECONDS",
    "MIN_TIMEOUT_SECONDS",
    "VERDICTS",
    "Evidence",
    "classify",
    "curl_argv",
    "curl_command",
    "evidence_of",
    "excerpt",
    "parse_curl_output",
    "request_timeout",
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

HTTP_MARK = "curl-http:"
EXIT_MARK = "curl-exit:"
_WRITE_OUT = f"\\n{HTTP_MARK}%{{http_code}}\\n"  # curl expands the \n itself
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
    failure was nobody's deny.
    """

    exit_code: int | None
    http_code: str
    body: str
    error: str = ""
    unserved: str = ""

    def unserved_by(self, service: str) -> Evidence:
        """This request, known to have gone to ``service`` while it had no Ready endpoint."""
        return dataclasses.replace(self, unserved=service)

    @classmethod
    def exec_failed(cls, error: str) -> Evidence:
        """The request could not even be sent (no pod, exec refused, ...)."""
        return cls(None, "000", "", _excerpt(error, ERROR_EXCERPT_CHARS))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exit_code": self.exit_code,
            "http_code": self.http_code,
            "body": self.body,
            "error": self.error,
        }
        if self.unserved:
            out["unserved"] = self.unserved
        return out


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
    refused) and 28 (timed out) are ``denied_by_network``; 35 (SSL connect error) and
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
        return "denied_by_network"
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

    ``sh -c`` running ``curl -q -sS --noproxy '*' -m T -X METHOD -o - -w TRAILER URL;
    echo "curl-exit:$?"``, TRAILER being ``\\ncurl-http:%{http_code}\\n``. The shell
    always exits 0, so curl's exit code survives an exec that loses it. ``-q`` skips
    any ``.curlrc`` and ``--noproxy`` any proxy variable of the container: the request
    goes straight from the source. ``HEAD`` uses ``--head`` (``-X HEAD`` waits for a
    body). Read the output with :func:`parse_curl_output`.
    """
    curl = curl_argv(url, method, timeout_seconds, _WRITE_OUT)
    return ["sh", "-c", f'{shlex.join(curl)}; echo "{EXIT_MARK}$?"']


def curl_argv(
    url: str,
    method: str,
    timeout_seconds: float,
    write_out: str,
    show_errors: bool = True,
) -> list[str]:
    """curl's own argv for one request (inputs checked), printing `write_out` after the
    body: ``curl -q -sS --noproxy '*' -m T -X METHOD -o - -w WRITE_OUT URL`` (``-s``
    alone without `show_errors`)."""
    url = _validate.http_url("url", url)
    method = _validate.http_method("method", method)
    seconds = request_timeout("timeout_seconds", timeout_seconds)
    verb = ["--head"] if method == "HEAD" else ["-X", method]
    timeout = f"{seconds:.3f}".rstrip("0").rstrip(".")
    curl = ["curl", "-q", "-sS" if show_errors else "-s", "--noproxy", "*", "-m", timeout]
    return [*curl, *verb, "-o", "-", "-w", write_out, url]


def parse_curl_output(stdout: str, stderr: str) -> Evidence:
    """The evidence in what :func:`curl_command` printed; never raises.

    Without the exit-code line (the shell did not run, the output was cut), the
    evidence has exit code None and says so in `error`. The body is cut to
    :data:`BODY_EXCERPT_CHARS`; `error` holds curl's own message, from `stderr`.
    """
    error = _excerpt(stderr.strip(), ERROR_EXCERPT_CHARS)
    text = stdout.replace("\r\n", "\n").rstrip()
    head, mark, tail = text.rpartition(EXIT_MARK)
    if not mark or not _EXIT_CODE.fullmatch(tail) or (head and not head.endswith("\n")):
        problem = f"no {EXIT_MARK!r} line in the output: the command did not run to its end"
        return Evidence(None, "000", _excerpt(stdout), _join(problem, error))
    exit_code = int(tail)
    head = head.removesuffix("\n")
    body, mark, code = head.rpartition("\n" + HTTP_MARK)
    if not mark and head.startswith(HTTP_MARK):  # nothing before the write-out at all
        body, mark, code = "", HTTP_MARK, head.removeprefix(HTTP_MARK)
    if not mark:  # curl did not write its trailer (not installed: exit 127)
        return Evidence(exit_code, "000", _excerpt(head), error)
    return evidence_of(exit_code, code, body, error)


def evidence_of(exit_code: int, http_code: str, body: str, error: str) -> Evidence:
    """The evidence of a request whose curl ran to its end (exit code known) and wrote its
    `http_code`: the body cut to :data:`BODY_EXCERPT_CHARS`, a malformed code kept as
    ``000`` with why."""
    error = _excerpt(error, ERROR_EXCERPT_CHARS)
    code = http_code.strip()
    if not _HTTP_CODE.fullmatch(code):
        return Evidence(exit_code, "000", _excerpt(body), _join(f"bad http code {code!r}", error))
    return Evidence(exit_code, code, _excerpt(body), error)


def excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    """`text` cut to `limit` characters (``...`` marks a cut)."""
    return _excerpt(text, limit)


def _excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
