"""The outbound (15001) and inbound (15006) listeners: mTLS, authorization, relaying.

Outbound (what the client-side Envoy does for a captured connection): read the
original destination (``SO_ORIGINAL_DST``), connect to it from a marked socket
(10 s), answer ``503`` with Envoy's ``upstream connect error ...`` body if that
fails, else do a TLS handshake presenting the workload certificate and trusting
only the mesh root, require the server's leaf to carry a SPIFFE ID of the trust
domain, and relay bytes both ways. A failed handshake or a foreign server
identity closes the client's connection (an empty reply, or a reset).

Inbound (the server-side Envoy): the effective ``PeerAuthentication`` mode for the
original destination port decides what is accepted: ``STRICT`` TLS only (plaintext
is reset), ``PERMISSIVE`` TLS or plaintext (the first byte tells: ``0x16`` starts a
TLS handshake; a client silent for 5 s is taken as plaintext), ``DISABLE``
plaintext. TLS requires a client certificate chaining to the root; the peer's
principal is its SPIFFE ID. The request head is read, the
:mod:`~chaosmesh_sec.lab.standins.authz` decision made (denied: ``403`` ``RBAC:
access denied``), and the request is forwarded to ``127.0.0.1:<port>`` from a
marked socket bound to ``127.0.0.6`` (the application sees that address as its
peer, as behind Istio's inbound passthrough), with ``x-forwarded-client-cert``
set under mTLS (and removed otherwise). Each connection carries one request
(see :mod:`.http1`). One line is logged per decision.

What is left out: HTTP routing, retries, timeouts other than connect, load
balancing, circuit breaking, HTTP/2 and gRPC, protocol sniffing other than TLS,
auto-mTLS (every captured outbound connection is TLS, so a destination without a
sidecar is unreachable), the checked server identity a DestinationRule or the
service's accounts would give (any SPIFFE ID of the trust domain is accepted),
metadata exchange, telemetry, and IPv6.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import ssl
import struct
import weakref
from collections.abc import Awaitable, Callable
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from chaosmesh_sec.lab.standins import authz
from chaosmesh_sec.lab.standins.sidecar import http1
from chaosmesh_sec.lab.standins.sidecar.config import (
    INBOUND_PORT,
    OUTBOUND_PORT,
    SIDECAR_MARK,
    Settings,
)
from chaosmesh_sec.lab.standins.sidecar.identity import Identity, spiffe_uris
from chaosmesh_sec.lab.standins.sidecar.policy import PolicySnapshot, PolicySource

__all__ = ["CONNECT_FAILURE", "CONNECT_TIMEOUT", "Listeners", "original_dst"]

logger = logging.getLogger("chaostoolkit")

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
CONNECT_TIMEOUT_SECONDS = 10.0
HANDSHAKE_TIMEOUT_SECONDS = 10.0
FIRST_BYTE_TIMEOUT_SECONDS = 5.0
HEAD_TIMEOUT_SECONDS = 30.0
CLOSE_TIMEOUT_SECONDS = 2.0
INBOUND_SOURCE = "127.0.0.6"
"""Source address of forwarded inbound connections (Istio's inbound passthrough address)."""
_UPSTREAM_ERROR = b"upstream connect error or disconnect/reset before headers. reset reason: "
CONNECT_TIMEOUT = _UPSTREAM_ERROR + b"connection timeout"
CONNECT_FAILURE = _UPSTREAM_ERROR + b"connection failure"
_NET_ERRORS = (OSError, ssl.SSLError, asyncio.IncompleteReadError)
_HANDED_OVER: weakref.WeakSet[socket.socket] = weakref.WeakSet()
"""Accepted sockets an asyncio transport owns (and closes) from then on."""


class IdentityHolder(Protocol):
    @property
    def current(self) -> Identity | None: ...


def original_dst(sock: socket.socket) -> tuple[str, int]:
    """The IPv4 address and port a redirected connection was sent to; OSError if none."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


def _redirected(sock: socket.socket) -> tuple[str, int] | None:
    """The original destination, None when the connection came straight to the listener."""
    try:
        dst = original_dst(sock)
    except OSError:
        return None
    return None if dst == sock.getsockname()[:2] else dst


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (``SO_LINGER`` 0), as Envoy resets refused connections."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _connect_marked(host: str, port: int, source: str = "") -> socket.socket:
    """A connected socket carrying the sidecar's mark (the capture rules let it out)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, SIDECAR_MARK)
        if source:
            sock.bind((source, 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), CONNECT_TIMEOUT_SECONDS)
    except BaseException:
        sock.close()
        raise
    return sock


async def _accepted_streams(
    sock: socket.socket, context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket; with ``context``, after a server-side TLS handshake."""
    loop = asyncio.get_running_loop()
    _HANDED_OVER.add(sock)
    reader = asyncio.StreamReader(limit=http1.HEAD_LIMIT)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol,
        sock,
        ssl=context,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS if context else None,
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _wait_readable(sock: socket.socket, timeout: float) -> bool:
    """True once ``sock`` has data (or EOF) to read, False after ``timeout``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), on_ready)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(sock.fileno())
    return True


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(*_NET_ERRORS, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_SECONDS)


async def _answer(down: tuple[asyncio.StreamReader, asyncio.StreamWriter], response: bytes) -> None:
    """Send a local reply, then let the client read it before the connection closes.

    A plaintext client gets a half-close at once, then its unread bytes are drained
    for a moment: closing on them would reset the connection and could discard the
    reply. Over TLS the close is the transport's (``close_notify``).
    """
    reader, writer = down
    with contextlib.suppress(*_NET_ERRORS, TimeoutError):
        writer.write(response)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
            async with asyncio.timeout(1.0):
                while await reader.read(65536):
                    pass


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until EOF; network errors propagate."""
    while data := await src.read(65536):
        dst.write(data)
        await dst.drain()


async def _relay(
    down: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    up: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    to_up: Awaitable[None] | None = None,
) -> None:
    """Relay both ways until the upstream side is done; ``to_up`` replaces the client copy.

    A clean end of the client's side is passed on as a half-close when the upstream
    transport allows it (not over TLS), and the response is still awaited. The end of
    the upstream side ends the relay (passed on as a half-close to a plaintext client,
    which gets a moment to close). Any error on either side ends both.
    """
    (down_r, down_w), (up_r, up_w) = down, up
    client = asyncio.ensure_future(to_up if to_up is not None else _pipe(down_r, up_w))
    server = asyncio.ensure_future(_pipe(up_r, down_w))
    try:
        await asyncio.wait({client, server}, return_when=asyncio.FIRST_COMPLETED)
        if client.done() and not server.done():
            if client.exception() is not None:
                return
            if to_up is None and up_w.can_write_eof():
                with contextlib.suppress(*_NET_ERRORS):
                    up_w.write_eof()
            await asyncio.wait({server})
        if server.exception() is None and not client.done() and down_w.can_write_eof():
            with contextlib.suppress(*_NET_ERRORS):
                down_w.write_eof()
                await asyncio.wait({client}, timeout=5.0)
    finally:
        for task in (client, server):
            task.cancel()
        for task in (client, server):
            with contextlib.suppress(asyncio.CancelledError, *_NET_ERRORS, http1.HeadError):
                await task


def _peer_leaf(writer: asyncio.StreamWriter) -> x509.Certificate | None:
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return x509.load_der_x509_certificate(der) if der else None


class Listeners:
    """Both listeners on one event loop; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self, settings: Settings, identity: IdentityHolder, policies: PolicySource
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.policies = policies
        self._sockets: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "0.0.0.0") -> None:
        for port, handler in ((OUTBOUND_PORT, self._outbound), (INBOUND_PORT, self._inbound)):
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((host, port))
            lsock.listen(512)
            lsock.setblocking(False)
            self._sockets.append(lsock)
            self._spawn(self._accept_loop(lsock, handler))
        logger.info(
            "sidecar: listening on :%d (outbound) and :%d (inbound)", OUTBOUND_PORT, INBOUND_PORT
        )

    async def stop(self) -> None:
        for lsock in self._sockets:
            lsock.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(
        self,
        lsock: socket.socket,
        handler: Callable[[socket.socket, tuple[str, int]], Awaitable[None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(lsock)
            except OSError as exc:
                logger.warning("sidecar: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            self._spawn(self._guard(handler, conn, peer))

    async def _guard(
        self,
        handler: Callable[[socket.socket, tuple[str, int]], Awaitable[None]],
        conn: socket.socket,
        peer: tuple[str, int],
    ) -> None:
        try:
            await handler(conn, peer)
        except asyncio.CancelledError:
            raise
        except Exception:  # one connection's failure must not stop the listener
            logger.exception("sidecar: connection from %s:%d failed", *peer)
        finally:
            if conn.fileno() != -1 and conn not in _HANDED_OVER:
                _reset(conn)

    # ------------------------------------------------------------ outbound

    async def _outbound(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        dst = _redirected(conn)
        if dst is None:
            _reset(conn)  # not a captured connection: nothing to proxy to
            return
        identity = self.identity.current
        if identity is None:
            logger.warning("sidecar: outbound %s:%d refused: no certificate yet", *dst)
            _reset(conn)
            return
        try:
            upstream = await _connect_marked(*dst)
        except TimeoutError:
            logger.info("sidecar: outbound %s:%d: connect timeout", *dst)
            await self._local_reply(conn, 503, CONNECT_TIMEOUT)
            return
        except OSError as exc:
            logger.info("sidecar: outbound %s:%d: connect failed: %s", *dst, exc.strerror or exc)
            await self._local_reply(conn, 503, CONNECT_FAILURE)
            return
        try:
            up = await asyncio.open_connection(
                sock=upstream,
                ssl=identity.client_context,
                server_hostname="",
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS,
            )
        except (*_NET_ERRORS, TimeoutError) as exc:
            upstream.close()
            logger.info("sidecar: outbound %s:%d: TLS handshake failed: %s", *dst, exc)
            _reset(conn)
            return
        leaf = _peer_leaf(up[1])
        uris = spiffe_uris(leaf) if leaf is not None else []
        domain = f"spiffe://{self.settings.trust_domain}/"
        if not any(u.startswith(domain) for u in uris):
            logger.info(
                "sidecar: outbound %s:%d: server identity %s is not in %s",
                *dst,
                uris or "(none)",
                domain,
            )
            await _close(up[1])
            _reset(conn)
            return
        logger.info("sidecar: outbound %s:%d -> %s", *dst, uris[0])
        down = await _accepted_streams(conn)
        try:
            await _relay(down, up)
        finally:
            await _close(up[1])
            await _close(down[1])

    async def _local_reply(self, conn: socket.socket, status: int, body: bytes) -> None:
        """Answer a plaintext client, then close gracefully (its request is drained first)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            await loop.sock_sendall(conn, http1.reply(status, body))
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while await loop.sock_recv(conn, 65536):
                        pass
        conn.close()

    # ------------------------------------------------------------- inbound

    async def _inbound(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        dst = _redirected(conn)
        if dst is None:
            _reset(conn)
            return
        port = dst[1]
        snapshot = self.policies.snapshot()
        if snapshot is None:
            logger.warning(
                "sidecar: inbound :%d from %s refused: policies not read yet", port, peer[0]
            )
            _reset(conn)
            return
        workload = authz.Workload(self.settings.pod_namespace, snapshot.pod_labels)
        mode = authz.peer_authentication_mode(
            snapshot.peer_authentications, workload, port, self.settings.root_namespace
        )
        tls = False
        if mode != "DISABLE":
            if await _wait_readable(conn, FIRST_BYTE_TIMEOUT_SECONDS):
                try:
                    first = conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    first = b""
                if not first:
                    conn.close()
                    return
                tls = first == b"\x16"
            else:
                tls = mode == "STRICT"  # silent peer: STRICT still only speaks TLS
        if mode == "STRICT" and not tls:
            logger.info(
                "sidecar: inbound :%d from %s (plaintext): denied - mTLS required (STRICT)",
                port,
                peer[0],
            )
            _reset(conn)
            return
        identity = self.identity.current
        peer_leaf: x509.Certificate | None = None
        if tls:
            if identity is None:
                logger.warning(
                    "sidecar: inbound :%d from %s refused: no certificate yet", port, peer[0]
                )
                _reset(conn)
                return
            try:
                down = await _accepted_streams(conn, identity.server_context)
            except (*_NET_ERRORS, TimeoutError) as exc:
                logger.info(
                    "sidecar: inbound :%d from %s: TLS handshake failed: %s", port, peer[0], exc
                )
                return
            peer_leaf = _peer_leaf(down[1])
        else:
            down = await _accepted_streams(conn)
        try:
            await self._serve(down, port, peer[0], snapshot, identity, peer_leaf, tls)
        finally:
            await _close(down[1])

    async def _serve(
        self,
        down: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        port: int,
        source_ip: str,
        snapshot: PolicySnapshot,
        identity: Identity | None,
        peer_leaf: x509.Certificate | None,
        tls: bool,
    ) -> None:
        """One request: read its head, decide, answer 403 or forward it to the app."""
        uris = spiffe_uris(peer_leaf) if peer_leaf is not None else []
        principal = uris[0].removeprefix("spiffe://") if uris else None
        reader = down[0]
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_SECONDS)
            head = http1.parse_head(raw)
            framing = head.framing()
        except asyncio.LimitOverrunError:
            await _answer(down, http1.reply(431, b"request header fields too large"))
            return
        except http1.HeadError as exc:
            logger.info("sidecar: inbound :%d from %s: bad request (%s)", port, source_ip, exc)
            await _answer(down, http1.reply(exc.status, str(exc).encode()))
            return
        except (*_NET_ERRORS, TimeoutError):
            return
        workload = authz.Workload(self.settings.pod_namespace, snapshot.pod_labels)
        request = authz.Request(
            principal=principal,
            method=head.method,
            path=head.path,
            port=port,
            source_ip=source_ip,
            mtls=tls,
            headers=head.headers,
        )
        decision = authz.authorize(
            snapshot.authorization_policies, workload, request, self.settings.root_namespace
        )
        logger.info(
            "sidecar: inbound %s %s :%d from %s (%s): %s - %s",
            head.method,
            head.path.split("?", 1)[0],
            port,
            principal or "no principal",
            source_ip,
            "allowed" if decision.allowed else "denied",
            decision.reason,
        )
        if not decision.allowed:
            await _answer(down, http1.reply(authz.DENIED_STATUS, authz.access_denied_body()))
            return
        try:
            upstream = await _connect_marked("127.0.0.1", port, INBOUND_SOURCE)
        except OSError as exc:
            timeout = isinstance(exc, TimeoutError)
            logger.info(
                "sidecar: inbound to 127.0.0.1:%d: connect %s",
                port,
                "timeout" if timeout else f"failed: {exc.strerror or exc}",
            )
            await _answer(down, http1.reply(503, CONNECT_TIMEOUT if timeout else CONNECT_FAILURE))
            return
        up = await asyncio.open_connection(sock=upstream)
        fields = {"connection": "close"}
        drop = ["x-forwarded-client-cert"]  # never trust one from the client
        if tls and peer_leaf is not None and identity is not None:
            digest = hashlib.sha256(peer_leaf.public_bytes(Encoding.DER)).hexdigest()
            fields["x-forwarded-client-cert"] = (
                f'By={identity.spiffe_id};Hash={digest};Subject="";URI={uris[0] if uris else ""}'
            )
        up[1].write(head.render(fields, drop=drop))

        async def forward() -> None:
            await http1.copy_body(reader, up[1], framing)
            while await reader.read(65536):  # one request per connection: drop the rest
                pass

        try:
            await _relay(down, up, forward())
        finally:
            await _close(up[1])
