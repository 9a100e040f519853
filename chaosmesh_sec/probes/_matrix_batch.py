"""All of one source's requests in one exec, pure: the in-pod script and its records.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). The identity matrix
asks each source pod once: :func:`batch_script` is a POSIX ``sh`` script that runs every
request of that source at the same time, each with its own ``--max-time`` (as one
request per exec did), and prints one record per request; :func:`parse_records` turns
the exec's output back into one :class:`~._matrix_evidence.Evidence` per request, the
same evidence one exec per request gave.

The script needs ``sh`` and ``curl`` 7.75 or later (for ``%{errormsg}``), nothing
else: no temporary file, no other tool. curl 7.83 or later also reports the response
headers that name who answered (``%{header_json}``); with an older curl the evidence
has none (its responder is None), the rest is the same. Its requests run concurrently
as the stages of one pipeline. Stage ``i`` runs its own request, captured whole by
``$(...)``; it then prints its record and copies the records of the stages before it
(stdin) through, line by line. Records cannot interleave: each is written by one stage,
whole, before that stage copies anything. Each record is::

    <nonce> <i> begin
    <body: at most BODY_CUT_BYTES bytes of it, any lines>
    <nonce> <i> headers
    <curl's %{header_json} lines for server and x-envoy-*: the first RESPONDER_HEADERS
     of them, each cut to HEADER_CUT_BYTES>
    <nonce> <i> end <curl's exit code> <http_code>:<curl's error message>

(the ``headers`` line and its lines only when curl wrote its header JSON). The nonce is
random per call and never sent to a destination, so no response body or header can
forge a record's framing; a header's value cannot even start a line, as curl's JSON
escapes any CR or LF in it. Every value in the script (the URL, the method, ...) is
quoted with :func:`shlex.quote`; nothing read from the cluster runs unquoted.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence

from chaosmesh_sec.probes import _matrix_evidence as evidence
from chaosmesh_sec.probes._matrix_evidence import Evidence

__all__ = [
    "BODY_CUT_BYTES",
    "HEADER_CUT_BYTES",
    "Request",
    "batch_script",
    "new_nonce",
    "parse_records",
]

BODY_CUT_BYTES = 4 * (evidence.BODY_EXCERPT_CHARS + 1)
"""What the pod keeps of a body: enough bytes for the excerpt's characters, and one more
(so the excerpt still shows it was cut), whatever their UTF-8 width."""

_NONCE = re.compile(r"cms[0-9a-f]{16}")
_INDEX = r"(0|[1-9][0-9]{0,5})"

Request = tuple[str, str, float]
"""One request: URL, method, timeout in seconds."""

HEADER_CUT_BYTES = 4 * (evidence.HEADER_LINE_CHARS + 1)
"""What the pod keeps of one header line: a line it cuts is longer than the parser takes."""

# t: the trailer, h: the header JSON, b: the body, each after its own nonce mark ($M, $H)
_CELL = """cell() {
  i=$1; shift
  r=$("$@"); c=$?
  case $r in *"$M"*) t=${r##*"$M"}; b=${r%"$M$t"} ;; *) t=; b=$r ;; esac
  case $b in *"$H"*) h=${b##*"$H"}; b=${b%"$H$h"} ;; *) h= ;; esac
  case $b in $Q*) b=${b%"${b#$Q}"} ;; esac
  printf '%s %s begin\\n%s\\n' "$N" "$i" "$b"
  case $h in '{'*) printf '%s %s headers\\n' "$N" "$i"; heads ;; esac
  printf '%s %s end %s %s\\n' "$N" "$i" "$c" "$t"
}
heads() (
  set -f; IFS=$L; n=0
  for l in $h; do
    case ${l#'{'} in @LINES@) ;; *) continue ;; esac
    case $l in $P*) l=${l%"${l#$P}"} ;; esac
    printf '%s\\n' "$l"; n=$((n + 1)); [ $n -lt @MOST@ ] || break
  done
)
pass() { while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done; }
"""
_CELL = _CELL.replace(
    "@LINES@", " | ".join(shlex.quote(start) + "*" for start in evidence.RESPONDER_LINES)
).replace("@MOST@", str(evidence.RESPONDER_HEADERS))


def _pattern(name: str, size: int) -> str:
    """Shell that sets `name` to a pattern of `size` "?" (built in the pod: the exec's URL
    carries the script)."""
    loop = f"while [ $n -lt {size // 4} ]; do {name}=${name}????; n=$((n + 1)); done"
    return f"{name}=; n=0; {loop}\n"


_PATTERNS = _pattern("Q", BODY_CUT_BYTES) + _pattern("P", HEADER_CUT_BYTES)


def new_nonce() -> str:
    """A fresh random record marker."""
    return "cms" + secrets.token_hex(8)


def batch_script(requests: Sequence[Request], nonce: str) -> str:
    """The ``sh -c`` script that sends every request of `requests` at once and prints one
    record per request, numbered by its position (see the module's docstring).

    Inputs are checked as one request's are (:func:`~._matrix_evidence.curl_argv`);
    `nonce` must come from :func:`new_nonce`.
    """
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce: expected one of new_nonce()")
    if not requests:
        raise ValueError("requests: at least one")
    write_out = f"\\n{nonce};{evidence.HEADERS_WRITE_OUT}\\n{nonce}:%{{http_code}}:%{{errormsg}}"
    stages = []
    for i, (url, method, timeout) in enumerate(requests):
        argv = evidence.curl_argv(url, method, timeout, write_out, show_errors=False)
        call = f"cell {i} {shlex.join(argv)}"
        stages.append(call if i == 0 else f"{{ {call}; pass; }}")
    marks = f"M={shlex.quote(chr(10) + nonce + ':')}\nH={shlex.quote(chr(10) + nonce + ';')}\n"
    head = f"N={nonce}\n{marks}L={shlex.quote(chr(10))}\n" + _PATTERNS
    return head + _CELL + " |\n  ".join(stages) + "\n"


def parse_records(stdout: str, stderr: str, count: int, nonce: str) -> list[Evidence]:
    """One evidence per request of a :func:`batch_script` of `count` requests; never raises.

    A request whose record is missing or garbled gets evidence with exit code None (an
    ``error`` verdict) saying so. `stderr` (the script's own, not curl's: curl's
    message is in each record) is kept as the error of a request whose curl did not run.
    A record's header lines are read by :func:`~._matrix_evidence.responder_headers`,
    as one request's are; without them (an older curl) its responder is None.
    """
    begin = re.compile(rf"{re.escape(nonce)} {_INDEX} begin")
    heads = re.compile(rf"{re.escape(nonce)} {_INDEX} headers")
    end = re.compile(rf"{re.escape(nonce)} {_INDEX} end ([0-9]{{1,5}}) ?(.*)")
    found: dict[int, Evidence] = {}
    garbled: dict[int, str] = {}
    lines = stdout.replace("\r\n", "\n").split("\n")
    current: int | None = None
    body: list[str] = []
    headers: list[str] | None = None
    for line in lines:
        opened, named, closed = begin.fullmatch(line), heads.fullmatch(line), end.fullmatch(line)
        if opened:
            if current is not None:
                garbled[current] = "its record was cut short by another"
            current, body, headers = int(opened.group(1)), [], None
        elif named:
            index = int(named.group(1))
            if current == index and headers is None:
                headers = []
            else:
                garbled[index] = "its record's headers came out of place"
        elif closed:
            index = int(closed.group(1))
            if current != index:
                garbled[index] = "its record's end came without its beginning"
            else:
                exit_code, trailer = int(closed.group(2)), closed.group(3)
                found[index] = _evidence(exit_code, trailer, body, headers, stderr)
            current = None
        elif current is not None:
            (body if headers is None else headers).append(line)
    if current is not None:
        garbled[current] = "its record has no end: the output was cut"
    out = []
    for i in range(count):
        if i in found and i not in garbled:
            out.append(found[i])
            continue
        why = garbled.get(i, "no record for this request in the output")
        out.append(Evidence.exec_failed(_join(f"batched request {i}: {why}", stderr.strip())))
    return out


def _evidence(
    exit_code: int,
    trailer: str,
    body_lines: list[str],
    header_lines: list[str] | None,
    stderr: str,
) -> Evidence:
    body = "\n".join(body_lines)
    code, sep, message = trailer.partition(":")
    if not sep:  # curl wrote no trailer: it did not run (exit 127: not installed)
        return Evidence(exit_code, "000", evidence.excerpt(body), _short(stderr.strip()))
    error = f"curl: ({exit_code}) {message}" if message else ""
    responder = None if header_lines is None else evidence.responder_headers(header_lines)
    return evidence.evidence_of(exit_code, code, body, error, responder)


def _short(text: str) -> str:
    return evidence.excerpt(text, evidence.ERROR_EXCERPT_CHARS)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
