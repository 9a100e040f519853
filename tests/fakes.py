"""Fake secrets for tests that check scrubbing, made at run time (none sits in the repo).

They have the shapes the pack must never print - a JWT, a PEM private key - and no
value: the signatures are words, the keys are not keys.
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["fake_jwt", "fake_pem_key"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt(claims: dict[str, Any], alg: str = "RS256", signature: bytes = b"not-signed") -> str:
    """``header.claims.signature`` in base64url, as a ServiceAccount token looks."""
    header = _b64url(json.dumps({"alg": alg}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{body}.{_b64url(signature)}"


def fake_pem_key(body: str, kind: str = "PRIVATE KEY", end: bool = True) -> str:
    """A PEM block of ``kind`` around ``body`` (``end`` False: cut before its end line)."""
    marker = " ".join(("BEGIN", kind))
    text = f"-----{marker}-----\n{body}\n"
    return text + f"-----END {kind}-----\n" if end else text.rstrip("\n")
