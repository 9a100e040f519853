"""The stand-in's process: identity, policies, listeners, capture and admin; SIGTERM stops it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from chaosmesh_sec.lab.standins.sidecar import iptables_tool
from chaosmesh_sec.lab.standins.sidecar.admin import AdminServers
from chaosmesh_sec.lab.standins.sidecar.config import Settings
from chaosmesh_sec.lab.standins.sidecar.identity import IdentityManager, certs_json
from chaosmesh_sec.lab.standins.sidecar.listeners import Listeners
from chaosmesh_sec.lab.standins.sidecar.policy import (
    KubePolicySource,
    PolicySource,
    StaticPolicySource,
)

__all__ = ["main", "policy_source"]

logger = logging.getLogger("chaostoolkit")


def policy_source(settings: Settings) -> PolicySource:
    """The static file source when ``CMSLAB_SIDECAR_POLICY_FILE`` is set, else the API."""
    if settings.policy_file:
        return StaticPolicySource(settings.policy_file, settings.pod_namespace)
    return KubePolicySource(settings.pod_namespace, settings.pod_name, settings.root_namespace)


async def _serve(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # The capture rules are not ours to install: istio-cni (the node agent) or the
    # istio-init container wrote them before any container of the pod started (once the
    # nat table has rules, conntrack adopts a connection it has not seen, and the
    # inbound REDIRECT would take the replies of a connection opened earlier).
    policies = policy_source(settings)
    try:
        policies.start()
    except Exception as exc:  # noqa: BLE001 - e.g. no in-cluster config: say why and exit
        logger.error("sidecar: cannot start: %s: %s", type(exc).__name__, exc)
        return 1
    identity = IdentityManager(settings)
    identity.start()

    def ready() -> tuple[bool, str]:
        if identity.current is None:
            return False, "no certificate yet"
        if policies.snapshot() is None:
            return False, "policies not read yet"
        return True, ""

    admin = AdminServers(ready, lambda: certs_json(identity.current))
    listeners = Listeners(settings, identity, policies)
    code = 0
    try:
        admin.start()
        await listeners.start()
        logger.info("sidecar: started for %s/%s", settings.pod_namespace, settings.pod_name or "?")
        await stop.wait()
        logger.info("sidecar: stopping")
    except (OSError, RuntimeError) as exc:
        logger.error("sidecar: %s", exc)
        code = 1
    finally:
        await listeners.stop()
        identity.stop()
        policies.stop()
        admin.stop()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM; the container's args (``proxy sidecar ...``) are ignored.

    Run as ``istio-iptables`` (the ``istio-init``/``istio-validation`` init containers
    of an injected pod), it does their work: :mod:`.iptables_tool`.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["istio-iptables"]:
        return iptables_tool.run(args[1:])
    try:
        settings = Settings.from_env(os.environ)
    except ValueError as exc:
        logger.error("sidecar: bad setting: %s", exc)
        return 2
    return asyncio.run(_serve(settings))
