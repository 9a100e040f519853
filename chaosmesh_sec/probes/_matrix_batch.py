"""All of one source's requests in one exec, pure: the in-pod script and its records.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). The identity matrix
asks each source pod once: :func:`batch_script` is a POSIX ``sh`` script that sends every
request of that source at the same time, each with its own ``--max-time`` (as one
request per exec did), and prints one record per request; :func:`parse_records` turns
the exec's output back into one :class:`~._matrix_evidence.Evidence` per request, the
same evidence one exec per request gave.

The script needs ``sh``, ``curl`` 7.75 or later (``--parallel``, ``%{exitcode}``,
``%{errormsg}``) and the container's ``/dev/fd`` (which every OCI runtime provides),
nothing else: no temporary file, no other tool. curl 7.83 or later also reports the
response headers that name who answered (``%{header_json}``); with an older curl the
evidence has none (its responder is None), the rest is the same.

**One curl process sends up to** :data:`GROUP_MOST` **requests** (``--parallel``, each
transfer after ``--next`` with its own options), because a process start is what a
request costs a pod most: 10 curl processes took 0.10 s of CPU where one curl with 10
transfers took 0.01 s (measured in the lab's pods). A larger source is split into groups
of nearly equal size, which run at once as the stages of one pipeline: each stage prints
its group's records, then copies the stages' before it (stdin) through, line by line, so
that no two stages ever write at the same time.

Inside a group, transfer ``j`` writes its body to ``/dev/fd/(3 + j)``: a pipe that a
command substitution of its own reads, so each body is kept apart from the others
whatever their timing (once curl is done, its level adds a "." there, taken off again,
so that the substitution keeps the body's trailing newlines). The substitutions nest,
one per transfer, around the curl process, whose own output (its ``--write-out``, one
block per transfer, written by curl when that transfer ends) is captured innermost. As
the nest unwinds, the innermost level prints the write-out blocks, then each level its
body, one after the other: nothing in a group is printed concurrently either. A POSIX
shell names descriptors 0-9 only; 3-8 carry bodies and 9 the group's output, hence the
six. Each request gives::

    <nonce> <i> ran <curl's process exit code>
    <nonce> <i> headers
    {                         (when curl wrote header JSON: 7.83 or later)
    <the lines of %{header_json} for server and x-envoy-*: the first RESPONDER_HEADERS
     of them, each cut to HEADER_CUT_BYTES>
    <nonce> <i> end <curl's exit code for the transfer> <http_code>:<curl's error message>
    <nonce> <i> body
    <the body: at most BODY_CUT_BYTES bytes of it, any lines>
    <nonce> <i> done

with a group's ``ran``, ``headers`` and ``end`` lines before its bodies. The nonce is
random per call and never sent to a destination, so no response body or header can
forge a record's framing; a header's value cannot even start a line, as curl's JSON
escapes any CR or LF in it, and every line of that JSON starts with ``{``, ``"`` or
``}``. Every value in the script (the URL, the method, ...) is quoted with
:func:`shlex.quote`; nothing read from the cluster runs unquoted.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from chaosmesh_sec.probes import _matrix_evidence as evidence
from chaosmesh_sec.probes._matrix_evidence import Evidence

__all__ = [
    "BODY_CUT_BYTES",
    "GROUP_MOST",
    "HEADER_CUT_BYTES",
    "Request",
    "batch_script",
    "groups",
    "new_nonce",
    "parse_records",
]

BODY_CUT_BYTES = 4 * (evidence.BODY_EXCERPT_CHARS + 1)
"""What the pod keeps of a body: enough bytes for the excerpt's characters, and one more
(so the excerpt still shows it was cut), whatever their UTF-8 width."""

HEADER_CUT_BYTES = 4 * (evidence.HEADER_LINE_CHARS + 1)
"""What the pod keeps of one header line: a line it cuts is longer than the parser takes."""

GROUP_MOST = 6
"""The most requests one curl process sends: descriptors 3-8 carry their bodies."""

_FIRST_BODY_FD = 3
_NOT_RUN = (126, 127)  # the shell's: curl not executable, not installed
_NONCE = re.compile(r"cms[0-9a-f]{16}")
_INDEX = r"(0|[1-9][0-9]{0,5})"

Request = tuple[str, str, float]
"""One request: URL, method, timeout in seconds."""

# b: a body (and the "." its level writes after curl is done, so that none of the
# body's own trailing newlines is lost to $(...)), w: curl's write-out blocks, c: curl's
# exit code; Q and P: "?" patterns that cut a body and a header line (built in the pod:
# the exec's URL carries the script)
_FUNCTIONS = """body() {
  b=${b%.}
  case $b in $Q*) b=${b%"${b#$Q}"} ;; esac
  printf '%s %s body\\n%s\\n%s %s done\\n' "$N" "$1" "$b" "$N" "$1"
}
outs() (
  for i in "$@"; do printf '%s %s ran %s\\n' "$N" "$i" "$c"; done
  set -f; IFS=$L; n=0
  for l in $w; do
    case $l in "$N "*) printf '%s\\n' "$l"; n=0; continue ;; '{'*) printf '{\\n' ;; esac
    [ $n -lt @MOST@ ] || continue
    case ${l#'{'} in @LINES@) ;; *) continue ;; esac
    case $l in $P*) l=${l%"${l#$P}"} ;; esac
    printf '%s\\n' "$l"; n=$((n + 1))
  done
)
pass() { while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done; }
"""
_FUNCTIONS = _FUNCTIONS.replace(
    "@LINES@", " | ".join(shlex.quote(start) + "*" for start in evidence.RESPONDER_LINES)
).replace("@MOST@", str(evidence.RESPONDER_HEADERS))


def _pattern(name: str, size: int) -> str:
    """Shell that sets `name` to a pattern of `size` "?"."""
    loop = f"while [ $n -lt {size // 4} ]; do {name}=${name}????; n=$((n + 1)); done"
    return f"{name}=; n=0; {loop}\n"


_PATTERNS = _pattern("Q", BODY_CUT_BYTES) + _pattern("P", HEADER_CUT_BYTES)


def new_nonce() -> str:
    """A fresh random record marker."""
    return "cms" + secrets.token_hex(8)


def groups(count: int) -> list[range]:
    """The request indexes each curl process sends: `count` split into the fewest groups
    of at most :data:`GROUP_MOST`, of sizes that differ by one at most."""
    if count < 1:
        raise ValueError("requests: at least one")
    parts = -(-count // GROUP_MOST)
    size, extra = divmod(count, parts)
    out, start = [], 0
    for g in range(parts):
        end = start + size + (1 if g < extra else 0)
        out.append(range(start, end))
        start = end
    return out


def batch_script(requests: Sequence[Request], nonce: str) -> str:
    """The ``sh -c`` script that sends every request of `requests` at once and prints one
    record per request, numbered by its position (see the module's docstring).

    Inputs are checked as one request's are (:func:`~._matrix_evidence.transfer_options`);
    `nonce` must come from :func:`new_nonce`.
    """
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce: expected one of new_nonce()")
    stages = [_group(requests, indexes, nonce) for indexes in groups(len(requests))]
    stages = [stages[0], *(f"{{ {stage}; pass; }}" for stage in stages[1:])]
    head = f"N={nonce}\nL={shlex.quote(chr(10))}\n" + _PATTERNS
    return head + _FUNCTIONS + " |\n".join(stages) + "\n"


def _group(requests: Sequence[Request], indexes: range, nonce: str) -> str:
    """One curl process for `indexes`, nested in one body capture per transfer."""
    transfers: list[str] = []
    for j, i in enumerate(indexes):
        url, method, timeout = requests[i]
        write_out = f"\\n{nonce} {i} headers\\n{evidence.HEADERS_WRITE_OUT}\\n"
        write_out += f"{nonce} {i} end %{{exitcode}} %{{http_code}}:%{{errormsg}}\\n"
        options = evidence.transfer_options(url, method, timeout)
        transfer = [*options, "-o", f"/dev/fd/{_FIRST_BODY_FD + j}", "-w", write_out, url]
        transfers.append(shlex.join(transfer))
    most = str(len(indexes))
    start = shlex.join(["curl", "-q", "-s", "--no-progress-meter", "--parallel",
                        "--parallel-immediate", "--parallel-max", most])  # fmt: skip
    inner = f"w=$({start} " + " --next ".join(transfers) + "); c=$?\n"
    inner += "outs " + " ".join(str(i) for i in indexes)
    for j in reversed(range(len(indexes))):
        fd = _FIRST_BODY_FD + j
        inner = f"b=$(exec {fd}>&1 >&9\n{inner}\nprintf . >&{fd}\n); body {indexes[j]}"
    return f"{{ {inner}; }} 9>&1"


@dataclass
class _Record:
    """What the output held for one request, as it was read."""

    ran: int | None = None
    headers: list[str] | None = None
    end: tuple[int, str] | None = None
    body: list[str] | None = None
    done: bool = False
    problems: list[str] = field(default_factory=list)


def parse_records(stdout: str, stderr: str, count: int, nonce: str) -> list[Evidence]:
    """One evidence per request of a :func:`batch_script` of `count` requests; never raises.

    A request whose record is missing or garbled gets evidence with exit code None (an
    ``error`` verdict) saying so. `stderr` (the script's own, not curl's: curl's
    message is in each record) is kept as the error of a request whose curl did not run.
    A record's header lines are read by :func:`~._matrix_evidence.responder_headers`,
    as one request's are; without them (an older curl) its responder is None.
    """
    frame = re.compile(rf"{re.escape(nonce)} {_INDEX} (ran|headers|end|body|done)(?: (.*))?")
    end = re.compile(r"([0-9]{1,5}) ?(.*)")
    records: dict[int, _Record] = {}
    lines: list[str] | None = None  # where the lines that are no frame go
    for line in stdout.replace("\r\n", "\n").removesuffix("\n").split("\n"):
        framed = frame.fullmatch(line)
        if framed is None:
            if lines is not None:
                lines.append(line)
            continue
        lines = None
        index, kind, rest = int(framed.group(1)), framed.group(2), framed.group(3) or ""
        record = records.setdefault(index, _Record())
        if kind == "ran":
            record.ran = int(rest) if rest.isdigit() and len(rest) <= 5 else None
        elif kind == "headers":
            if record.headers is not None or record.end is not None:
                record.problems.append("its record's headers came out of place")
            lines = record.headers = []
        elif kind == "end":
            trailer = end.fullmatch(rest)
            if record.end is not None or trailer is None:
                record.problems.append("its record's end is garbled or came twice")
            else:
                record.end = (int(trailer.group(1)), trailer.group(2))
        elif kind == "body":
            if record.body is not None:
                record.problems.append("its body came twice")
            lines = record.body = []
        elif record.body is None:  # done
            record.problems.append("its body's end came without its beginning")
        else:
            record.done = True
    return [_evidence(i, records.get(i, _Record()), stderr) for i in range(count)]


def _evidence(index: int, record: _Record, stderr: str) -> Evidence:
    problems = list(record.problems)
    if record.body is None:
        problems.append("no record for this request in the output")
    elif not record.done:
        problems.append("its body has no end: the output was cut")
    if not problems and record.end is None:
        if record.ran in _NOT_RUN:
            return Evidence(record.ran, "000", "", _short(stderr.strip()))
        problems.append("curl ran but wrote no end for this request")
    if problems or record.end is None or record.body is None:
        why = f"batched request {index}: {problems[0]}"
        return Evidence.exec_failed(_join(why, stderr.strip()))
    exit_code, trailer = record.end
    body = "\n".join(record.body)
    code, _, message = trailer.partition(":")
    error = f"curl: ({exit_code}) {message}" if message else ""
    headers = record.headers
    json = headers is not None and any(line.startswith("{") for line in headers)
    responder = evidence.responder_headers(headers) if headers is not None and json else None
    return evidence.evidence_of(exit_code, code, body, error, responder)


def _short(text: str) -> str:
    return evidence.excerpt(text, evidence.ERROR_EXCERPT_CHARS)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
