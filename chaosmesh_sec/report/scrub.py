"""Scrubbing: no token and no private key from a journal ever reaches a report.

A journal keeps what activities returned and raised, verbatim: a response body, an
error message or a traceback may carry a ServiceAccount token (a JWT, also when a
line break splits it), another bearer token (``Authorization: Bearer <opaque>``), or a
private key (PEM, or base64-encoded PEM as a kubeconfig's ``client-key-data`` holds
it). :func:`scrub` replaces them in one text; :func:`scrub_json` applies it
to every string (keys included) of a parsed journal, which is how
:mod:`chaosmesh_sec.report.reading` reads every journal, so nothing downstream sees
the originals. The writers scrub what they print once more, as a second net.

A line break is followed into the next line only while what it splits is unfinished: a
JWT's JSON segment that does not decode to a whole object yet, a signature shorter than
its header's ``alg`` makes it, a base64 PEM block before its ``END`` line. A secret that
ends a line therefore takes nothing of the next one with it.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

__all__ = [
    "BEARER",
    "KEY_DATA",
    "PEM_PRIVATE_KEY",
    "REDACTED_KEY",
    "REDACTED_TOKEN",
    "scrub",
    "scrub_json",
]

BEARER = re.compile(r"(?i)(\bbearer[ \t]+)[A-Za-z0-9._~+/=-]{8,}")
"""A bearer token of any form after ``Bearer`` (an ``Authorization`` header)."""
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
"""A PEM private key block (any kind: RSA, EC, OPENSSH, ENCRYPTED), or its start to the end
of the text when an excerpt cut it before its END line."""
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")

REDACTED_TOKEN = "[redacted token]"  # noqa: S105 - the replacement, not a secret
REDACTED_KEY = "[redacted key]"


_B64URL = r"[A-Za-z0-9_-]"
_BREAK = re.compile(r"[ \t]*(?:\\n|\r?\n)[ \t]*")
"""A line break (or an escaped one, as a repr prints it) with the spaces around it."""
_B64URL_RUN = re.compile(f"{_B64URL}*")
_B64_RUN = re.compile(r"[A-Za-z0-9+/=]*")
_DOT = frozenset(".")
_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_RSA = (171, 342, 512, 683, 1366)  # 1024- to 8192-bit keys
_SIGNATURE_LENGTHS: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "HS256": (43,),
    "HS384": (64,),
    "HS512": (86,),
    "ES256": (86,),
    "ES384": (128,),
    "ES512": (176,),
    "EdDSA": (86, 152),
    **{f"{family}{bits}": _RSA for family in ("RS", "PS") for bits in (256, 384, 512)},
}
"""How long (base64url characters) a JWS signature is, by the header's ``alg``."""
_JWT_MIN = 13  # "eyJ" and 10 more: a lone base64url JSON fragment that short still counts
KEY_DATA = re.compile(r"(?i)([a-z-]*key-data[\"']?\s*[:=]\s*[\"']?)(?=[A-Za-z0-9+/=])")
"""Where a kubeconfig's ``client-key-data`` (base64 PEM private key) starts."""
_BASE64_PEM = "LS0tLS1CRUdJTi"  # base64 of "-----BEGIN"
_PEM_END_B = re.compile(rb"-----END [A-Z0-9 ]*-----")


def _run(pattern: re.Pattern[str], text: str, pos: int) -> str:
    """What `pattern` (a run of characters) matches at `pos`, perhaps nothing."""
    found = pattern.match(text, pos)
    return found.group() if found else ""


def _next_line_starts(text: str, pos: int, chars: frozenset[str]) -> int | None:
    """Where the next line's text begins when a line break at `pos` is followed by one of
    `chars` (the token may go on there), else None."""
    found = _BREAK.match(text, pos)
    if found and found.end() < len(text) and text[found.end()] in chars:
        return found.end()
    return None


def _json_object(parts: list[str], length: int) -> dict[str, Any] | None:
    """The JSON object a base64url segment (its `parts`, `length` characters in all)
    decodes to, or None (not one, or not whole yet)."""
    if length % 4 == 1:
        return None
    tail = ""
    for part in reversed(parts):  # enough of the end for its last group of four
        tail = part + tail
        if len(tail) >= 4:
            break
    tail = tail[-(length % 4 or 4) :]
    try:  # its last group first: a whole object ends with "}" (a long run stays linear)
        if not base64.urlsafe_b64decode(tail + "=" * (-length % 4)).rstrip().endswith(b"}"):
            return None
        value = json.loads(base64.urlsafe_b64decode("".join(parts) + "=" * (-length % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _signature_end(text: str, pos: int, have: int, lengths: tuple[int, ...] | None) -> int | None:
    """Where a signature of `have` characters that a line break at `pos` may interrupt ends:
    the farthest line end that brings it to a length its ``alg`` gives (`lengths`), else
    None. Only lines that are one base64url run each can carry it on."""
    end = None
    while lengths and (start := _next_line_starts(text, pos, _B64URL_CHARS)) is not None:
        run = _run(_B64URL_RUN, text, start)
        have, pos = have + len(run), start + len(run)
        if have > max(lengths):
            break
        end = pos if have in lengths else end
    return end


def _jwt_end(text: str, start: int) -> int | None:
    """Where the JWT starting at `start` (``eyJ``) ends, or None when it is too short.

    A line break inside a JSON segment (header, claims) is followed until the segment
    decodes to a whole JSON object; one inside or before the signature only when the lines
    after it bring the signature to the length its header's ``alg`` gives. So a token that
    ends a line leaves the next line alone.
    """
    pos, lengths, first, jsons = start, None, 0, 0
    segment: list[str] = []
    length = 0
    while True:  # one JSON segment a turn: the header, then the claims
        run = _run(_B64URL_RUN, text, pos)
        segment.append(run)
        length, pos = length + len(run), pos + len(run)
        claims = _json_object(segment, length)
        if claims is None and (going_on := _next_line_starts(text, pos, _B64URL_CHARS)):
            pos = going_on
            continue
        first, jsons = first or length, jsons + 1
        if claims is not None and lengths is None:
            lengths = _SIGNATURE_LENGTHS.get(str(claims.get("alg")))
        dot = pos if text.startswith(".", pos) else _next_line_starts(text, pos, _DOT)
        if dot is None:
            break
        pos, segment, length = dot + 1, [], 0
        below = _next_line_starts(text, pos, _B64URL_CHARS)
        claims_next = jsons < 2  # else the signature
        if below is not None and claims_next and text.startswith("eyJ", below):
            pos = below
        elif below is not None:
            pos = _signature_end(text, pos, 0, lengths) or pos
            break
        elif not (claims_next and text.startswith("eyJ", pos)):
            pos = _signature_and_parts_end(text, pos, lengths)
            break
    return pos if first >= _JWT_MIN else None


def _signature_and_parts_end(text: str, pos: int, lengths: tuple[int, ...] | None) -> int:
    """Where a signature starting at `pos` ends, with the parts a JWE adds after it."""
    run = _run(_B64URL_RUN, text, pos)
    pos = _signature_end(text, pos + len(run), len(run), lengths) or pos + len(run)
    while text.startswith(".", pos) and pos + 1 < len(text) and text[pos + 1] in _B64URL_CHARS:
        pos += 1 + len(_run(_B64URL_RUN, text, pos + 1))  # a JWE's further parts, same line
    return pos


def _base64_end(text: str, pos: int) -> int:
    """Where the base64 starting at `pos` ends: across line breaks only while it is an
    unfinished PEM block (no padding, no ``END`` line yet), so the line after a whole one
    is left alone."""
    pending, head, tail = "", b"", b""
    while True:
        run = _run(_B64_RUN, text, pos)
        pos += len(run)
        if "=" in run:  # padding: the end
            return pos
        pending += run
        whole = len(pending) - len(pending) % 4
        fresh, pending = base64.b64decode(pending[:whole]), pending[whole:]
        head, tail = (head + fresh)[:10], (tail + fresh)[-80:]
        unfinished = head.startswith(b"-----BEGIN") or b"-----BEGIN".startswith(head)
        going_on = _next_line_starts(text, pos, _B64_CHARS)
        if going_on is None or not unfinished or _PEM_END_B.search(tail):
            return pos
        pos = going_on


def _decodes_to_private_key(value: str) -> bool:
    raw = re.sub(r"(\\n|\s)+", "", value)
    try:
        head = base64.b64decode(raw[: len(raw) - len(raw) % 4][:64] or "")
    except ValueError:
        return False
    return b"PRIVATE KEY" in head


def _replace(text: str, spans: list[tuple[int, int]], marker: str) -> str:
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], marker]
        last = end
    return "".join([*out, text[last:]])


def _jwt_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (start := text.find("eyJ", pos)) != -1:
        end = _jwt_end(text, start)
        if end is None:
            pos = start + 3
            continue
        spans.append((start, end))
        pos = end
    return spans


def _key_data_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for found in KEY_DATA.finditer(text):
        end = _base64_end(text, found.end())
        if end - found.end() >= 16 and not (spans and found.end() < spans[-1][1]):
            spans.append((found.end(), end))
    return spans


def _base64_pem_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (start := text.find(_BASE64_PEM, pos)) != -1:
        end = _base64_end(text, start)
        if _decodes_to_private_key(text[start:end]):
            spans.append((start, end))
        pos = end
    return spans


def scrub(text: str) -> str:
    """`text` without tokens and private keys (each replaced by a marker)."""
    if "eyJ" in text:
        text = _replace(text, _jwt_spans(text), REDACTED_TOKEN)
    if "earer" in text or "EARER" in text:
        text = BEARER.sub(lambda m: m.group(1) + REDACTED_TOKEN, text)
    if "ey-data" in text or "EY-DATA" in text:
        text = _replace(text, _key_data_spans(text), REDACTED_KEY)
    if _BASE64_PEM in text:
        text = _replace(text, _base64_pem_spans(text), REDACTED_KEY)
    if "PRIVATE KEY-----" in text:
        text = PEM_PRIVATE_KEY.sub(REDACTED_KEY, text)
        text = _PEM_END.sub(REDACTED_KEY, text)  # an END line whose BEGIN was cut off
    return text


def scrub_json(value: Any) -> Any:
    """A copy of parsed JSON with :func:`scrub` applied to every string, keys included."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    return value
