"""All of one source's requests in one exec, pure: the in-pod script and its records.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). The identity matrix
asks each source pod once: :func:`batch_script` is a POSIX ``sh`` script that runs every
request of that source at the same time, each with its own ``--max-time`` (as one
request per exec did), and prints one record per request; :func:`parse_records` turns
the exec's output back into one :class:`~._matrix_evidence.Evidence` per request, the
same evidence one exec per request gave.

The script needs ``sh`` and ``curl`` (7.75 or later, for ``%{errormsg}``), nothing
else: no temporary file, no other tool. Its requests run concurrently as the stages of
one pipeline. Stage ``i`` runs its own request, captured whole by ``$(...)``; it then
prints its record and copies the records of the stages before it (stdin) through, line
by line. Records cannot interleave: each is written by one stage, in one piece, before
that stage copies anything. Each record is::

    <nonce> <i> begin
    <body: at most BODY_CUT_BYTES bytes of it, any lines>
    <nonce> <i> end <curl's exit code> <http_code>:<curl's error message>

The nonce is random per call and never sent to a destination, so no response body can
forge a record's framing. Every value in the script (the URL, the method, ...) is
quoted with :func:`shlex.quote`; nothing read from the cluster runs unquoted.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence

from chaosmesh_sec.probes import _matrix_evidence as evidence
from chaosmesh_sec.probes._matrix_evidence import Evidence

__all__ = ["BODY_CUT_BYTES", "Request", "batch_script", "new_nonce", "parse_records"]

BODY_CUT_BYTES = 4 * (evidence.BODY_EXCERPT_CHARS + 1)
"""What the pod keeps of a body: enough bytes for the excerpt's characters, and one more
(so the excerpt still shows it was cut), whatever their UTF-8 width."""

_NONCE = re.compile(r"cms[0-9a-f]{16}")
_INDEX = r"(0|[1-9][0-9]{0,5})"

Request = tuple[str, str, float]
"""One request: URL, method, timeout in seconds."""

_CELL = """cell() {
  i=$1; shift
  r=$("$@"); c=$?
  case $r in *"$M"*) t=${r##*"$M"}; b=${r%"$M$t"} ;; *) t=; b=$r ;; esac
  case $b in $Q*) b=${b%"${b#$Q}"} ;; esac
  printf '%s %s begin\\n%s\\n%s %s end %s %s\\n' "$N" "$i" "$b" "$N" "$i" "$c" "$t"
}
pass() { while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done; }
"""


# Q: a pattern of BODY_CUT_BYTES "?", built in the pod (the exec's URL carries the script)
_PATTERN = f"Q=; n=0; while [ $n -lt {BODY_CUT_BYTES // 4} ]; do Q=$Q????; n=$((n + 1)); done\n"


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
    write_out = f"\\n{nonce}:%{{http_code}}:%{{errormsg}}"
    stages = []
    for i, (url, method, timeout) in enumerate(requests):
        argv = evidence.curl_argv(url, method, timeout, write_out, show_errors=False)
        call = f"cell {i} {shlex.join(argv)}"
        stages.append(call if i == 0 else f"{{ {call}; pass; }}")
    head = f"N={nonce}\nM={shlex.quote(chr(10) + nonce + ':')}\n" + _PATTERN
    return head + _CELL + " |\n  ".join(stages) + "\n"


def parse_records(stdout: str, stderr: str, count: int, nonce: str) -> list[Evidence]:
    """One evidence per request of a :func:`batch_script` of `count` requests; never raises.

    A request whose record is missing or garbled gets evidence with exit code None (an
    ``error`` verdict) saying so. `stderr` (the script's own, not curl's: curl's
    message is in each record) is kept as the error of a request whose curl did not run.
    """
    begin = re.compile(rf"{re.escape(nonce)} {_INDEX} begin")
    end = re.compile(rf"{re.escape(nonce)} {_INDEX} end ([0-9]{{1,5}}) ?(.*)")
    found: dict[int, Evidence] = {}
    garbled: dict[int, str] = {}
    lines = stdout.replace("\r\n", "\n").split("\n")
    current: int | None = None
    body: list[str] = []
    for line in lines:
        opened, closed = begin.fullmatch(line), end.fullmatch(line)
        if opened:
            if current is not None:
                garbled[current] = "its record was cut short by another"
            current, body = int(opened.group(1)), []
        elif closed:
            index = int(closed.group(1))
            if current != index:
                garbled[index] = "its record's end came without its beginning"
            else:
                found[index] = _evidence(int(closed.group(2)), closed.group(3), body, stderr)
            current = None
        elif current is not None:
            body.append(line)
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


def _evidence(exit_code: int, trailer: str, body_lines: list[str], stderr: str) -> Evidence:
    body = "\n".join(body_lines)
    code, sep, message = trailer.partition(":")
    if not sep:  # curl wrote no trailer: it did not run (exit 127: not installed)
        return Evidence(exit_code, "000", evidence.excerpt(body), _short(stderr.strip()))
    error = f"curl: ({exit_code}) {message}" if message else ""
    return evidence.evidence_of(exit_code, code, body, error)


def _short(text: str) -> str:
    return evidence.excerpt(text, evidence.ERROR_EXCERPT_CHARS)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
