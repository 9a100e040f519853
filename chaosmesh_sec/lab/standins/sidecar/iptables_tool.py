"""``istio-iptables``: what the injected init containers run, for the lab.

- ``istio-iptables --run-validation`` (the ``istio-validation`` init container of a
  pod whose rules come from istio-cni): checks that outbound TCP really is
  redirected. It listens on ``127.0.0.1`` at the outbound and inbound capture ports
  and connects to ``127.0.0.6:15002``; only a REDIRECT can make that connection
  arrive, and the listener checks the original destination. No arrival within
  ``--probe-timeout`` (default 5 s): exit 126, the code Istio's repair controller
  looks for.
- ``istio-iptables`` with any other flags (the ``istio-init`` container of a pod
  without istio-cni): installs the rules of :mod:`.capture`, with the exclusions of
  the container's environment (:class:`.config.Settings`), not its flags.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Sequence

from chaosmesh_sec.lab.standins.sidecar import capture
from chaosmesh_sec.lab.standins.sidecar.config import INBOUND_PORT, OUTBOUND_PORT, Settings

__all__ = ["VALIDATION_ERROR_CODE", "run", "validate"]

logger = logging.getLogger("chaostoolkit")

VALIDATION_ERROR_CODE = 126
PROBE_IP, PROBE_PORT = "127.0.0.6", 15002
SO_ORIGINAL_DST = 80


def _original_port(conn: socket.socket) -> int:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port: int = struct.unpack_from("!H", raw, 2)[0]
    return port


def validate(timeout: float) -> bool:
    """True when a connection to the probe address is redirected to a capture port."""
    redirected = threading.Event()
    listeners: list[socket.socket] = []
    for port in (OUTBOUND_PORT, INBOUND_PORT):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(8)
        sock.settimeout(0.2)
        listeners.append(sock)

    def accept(sock: socket.socket) -> None:
        while not redirected.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                if _original_port(conn) == PROBE_PORT:
                    redirected.set()

    for sock in listeners:
        threading.Thread(target=accept, args=(sock,), daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not redirected.is_set() and time.monotonic() < deadline:
            try:
                with socket.create_connection((PROBE_IP, PROBE_PORT), timeout=0.5):
                    pass
            except OSError:
                pass
            redirected.wait(min(1.0, max(0.0, deadline - time.monotonic())))
    finally:
        for sock in listeners:
            sock.close()
    return redirected.is_set()


def _timeout(args: Sequence[str]) -> float:
    for i, arg in enumerate(args):
        if arg.startswith("--probe-timeout="):
            raw = arg.split("=", 1)[1]
        elif arg == "--probe-timeout" and i + 1 < len(args):
            raw = args[i + 1]
        else:
            continue
        return float(raw.rstrip("s") or 5)
    return 5.0


def run(args: Sequence[str]) -> int:
    """The tool's exit code for ``args`` (what follows ``istio-iptables``)."""
    if "--run-validation" in args:
        logger.info("istio-validation: checking that traffic is redirected")
        if validate(_timeout(args)):
            logger.info("istio-validation: passed, iptables rules established")
            return 0
        logger.error(
            "istio-validation: failed: connection to %s:%d was not redirected: "
            "traffic is not captured (istio-cni did not set this pod up)",
            PROBE_IP,
            PROBE_PORT,
        )
        return VALIDATION_ERROR_CODE
    try:
        settings = Settings.from_env(os.environ)
        capture.install(settings, capture.subprocess_runner(settings.iptables))
    except (ValueError, RuntimeError) as exc:
        logger.error("istio-init: %s", exc)
        return 1
    return 0
