"""Just enough HTTP/1.1 for the inbound listener: request heads, body framing, replies.

The inbound listener reads one request head, decides on it, and forwards that one
request (head and body) to the application with ``connection: close``: each
connection carries one checked request, so nothing reaches the application
undecided. No HTTP/2, no upgrades (WebSocket), no pipelining: bytes a client sends
after its first request are not forwarded.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlsplit

__all__ = [
    "HEAD_LIMIT",
    "HeadError",
    "RequestHead",
    "copy_body",
    "parse_head",
    "reply",
]

HEAD_LIMIT = 64 * 1024
"""Largest request head accepted (request line and headers), in bytes."""

_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VERSION = re.compile(rb"^HTTP/1\.[01]$")
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class HeadError(ValueError):
    """A request the listener refuses, with the status to answer."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class RequestHead:
    """A parsed request line and header fields (names as sent, in order)."""

    method: str
    target: str
    version: str
    fields: tuple[tuple[str, str], ...]

    @property
    def headers(self) -> dict[str, str]:
        """Lower-case names; repeated fields joined with ``,``."""
        out: dict[str, str] = {}
        for name, value in self.fields:
            key = name.lower()
            out[key] = f"{out[key]},{value}" if key in out else value
        return out

    @property
    def path(self) -> str:
        """The path and query (an absolute-form target is reduced to them)."""
        if self.target.startswith("/"):
            return self.target
        parts = urlsplit(self.target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def framing(self) -> tuple[str, int]:
        """How the body is delimited: ("none", 0), ("length", n) or ("chunked", 0)."""
        headers = self.headers
        encoding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if encoding is not None:
            if length is not None:
                raise HeadError(400, "both transfer-encoding and content-length")
            codings = [c.strip().lower() for c in encoding.split(",")]
            if codings[-1:] != ["chunked"]:
                raise HeadError(400, f"unsupported transfer-encoding {encoding!r}")
            return "chunked", 0
        if length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise HeadError(400, f"bad content-length {length!r}")
            size = int(values.pop())
            return ("length", size) if size else ("none", 0)
        return "none", 0

    def render(self, set_fields: Mapping[str, str], drop: Iterable[str] = ()) -> bytes:
        """The head again: ``set_fields`` replace fields of those names, ``drop`` are removed."""
        removed = {name.lower() for name in (*set_fields, *drop)}
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{n}: {v}" for n, v in self.fields if n.lower() not in removed]
        lines += [f"{n}: {v}" for n, v in set_fields.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(raw: bytes) -> RequestHead:
    """Parse a request head ending in CRLF CRLF; :class:`HeadError` (400) if malformed."""
    if len(raw) > HEAD_LIMIT:
        raise HeadError(431, "request head too large")
    lines = raw.split(b"\r\n")
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise HeadError(400, "empty request")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise HeadError(400, "malformed request line")
    if not _VERSION.match(parts[2]):
        raise HeadError(400, "not an HTTP/1.x request")
    if any(b < 0x21 or b == 0x7F for b in parts[1]):
        raise HeadError(400, "malformed request target")
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line or line[:1] in (b" ", b"\t"):
            raise HeadError(400, "malformed or folded header line")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HeadError(400, "malformed header line")
        if any((b < 0x20 and b != 0x09) or b == 0x7F for b in value):
            raise HeadError(400, "control character in a header value")
        fields.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    method, target, version = parts
    return RequestHead(
        method.decode("ascii"), target.decode("latin-1"), version.decode("ascii"), tuple(fields)
    )


async def copy_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: tuple[str, int]
) -> None:
    """Copy one request body as framed; IncompleteReadError if the client stops early."""
    kind, length = framing
    if kind == "length":
        while length:
            data = await reader.read(min(length, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", length)
            writer.write(data)
            length -= len(data)
            await writer.drain()
    elif kind == "chunked":
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HeadError(400, "malformed chunk size") from None
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                await writer.drain()
                return
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()


def reply(status: int, body: bytes, *, content_type: str = "text/plain") -> bytes:
    """A complete ``connection: close`` response, as Envoy writes its local replies."""
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        f"content-length: {len(body)}",
        f"content-type: {content_type}",
        f"date: {formatdate(usegmt=True)}",
        "server: envoy",
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
