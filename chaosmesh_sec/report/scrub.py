"""Scrubbing: no token and no private key from a journal ever reaches a report.

A journal keeps what activities returned and raised, verbatim: a response body, an
error message or a traceback may carry a ServiceAccount token (a JWT, also when a
line break splits it), another bearer token (``Authorization: Bearer <opaque>``), or a
private key (PEM, or base64-encoded PEM as a kubeconfig's ``client-key-data`` holds
it). :func:`scrub` replaces them in one text; :func:`scrub_json` applies it
to every string (keys included) of a parsed journal, which is how
:mod:`chaosmesh_sec.report.reading` reads every journal, so nothing downstream sees
the originals. The writers scrub what they print once more, as a second net.
"""

from __future__ import annotations

import base64
import re
from typing import Any

__all__ = [
    "BASE64_PEM",
    "BEARER",
    "JWT",
    "KEY_DATA",
    "PEM_PRIVATE_KEY",
    "REDACTED_KEY",
    "REDACTED_TOKEN",
    "scrub",
    "scrub_json",
]

_B64URL = r"[A-Za-z0-9_-]"
_BREAK = r"(?:[ \t]*(?:\\n|\r?\n)[ \t]*)"  # a line break (or an escaped one) and indentation
JWT = re.compile(
    rf"eyJ(?:{_B64URL}|{_BREAK}(?={_B64URL}))*{_B64URL}{{10,}}"
    rf"(?:(?:{_B64URL}|{_BREAK}(?={_B64URL}|\.)|\.(?:{_BREAK})?)*)"
)
"""A JSON Web Token (or what is left of one): base64url ``{"...`` with its dots, also when
line breaks split it. A lone base64url JSON fragment of 10+ characters counts too."""
BEARER = re.compile(r"(?i)(\bbearer[ \t]+)[A-Za-z0-9._~+/=-]{8,}")
"""A bearer token of any form after ``Bearer`` (an ``Authorization`` header)."""
KEY_DATA = re.compile(r"(?i)([a-z-]*key-data[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9+/=\s]{16,}")
"""A kubeconfig's ``client-key-data`` (base64 PEM private key), whatever it decodes to."""
BASE64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]+(?:(?:\\n|\r?\n)[ \t]*[A-Za-z0-9+/=]+)*")
"""Base64 of ``-----BEGIN ...``: redacted when it decodes to a private key."""
PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
"""A PEM private key block (any kind: RSA, EC, OPENSSH, ENCRYPTED), or its start to the end
of the text when an excerpt cut it before its END line."""
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")

REDACTED_TOKEN = "[redacted token]"  # noqa: S105 - the replacement, not a secret
REDACTED_KEY = "[redacted key]"


def _base64_key(found: re.Match[str]) -> str:
    raw = re.sub(r"(\\n|\s)+", "", found.group(0))
    try:
        head = base64.b64decode(raw[: len(raw) - len(raw) % 4][:64] or "", validate=False)
    except ValueError:
        return found.group(0)
    return REDACTED_KEY if b"PRIVATE KEY" in head else found.group(0)


def scrub(text: str) -> str:
    """`text` without tokens and private keys (each replaced by a marker)."""
    if "eyJ" in text:
        text = JWT.sub(REDACTED_TOKEN, text)
    if "earer" in text or "EARER" in text:
        text = BEARER.sub(lambda m: m.group(1) + REDACTED_TOKEN, text)
    if "ey-data" in text or "EY-DATA" in text:
        text = KEY_DATA.sub(lambda m: m.group(1) + REDACTED_KEY, text)
    if "LS0tLS1CRUdJTi" in text:
        text = BASE64_PEM.sub(_base64_key, text)
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
