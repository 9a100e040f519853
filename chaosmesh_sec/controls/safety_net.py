"""The safety net: at the end of every run, heal what the pack's faults left behind.

Chaos Toolkit's default rollback strategy skips rollbacks after a failed run, and
``--rollback-strategy=never`` (or exit signal 30) skips them always. This control
runs at the end of the experiment whatever happened, reads the ledger in the
cluster and undoes what is still there (see
:func:`chaosmesh_sec.faults.leftovers.heal_leftovers`). What it did goes into the
journal's ``extensions`` as ``{"name": "chaosmesh-sec-safety-net", ...}``
(:data:`chaosmesh_sec.journal.SAFETY_NET_EXTENSION`: the game day and the report read
it there). Declare it in an experiment::

    "controls": [{"name": "chaosmesh-sec-safety-net",
                  "provider": {"type": "python",
                               "module": "chaosmesh_sec.controls.safety_net"}}]

It heals every leftover in the cluster, so run one experiment at a time per
cluster (a game day does).
"""

from __future__ import annotations

import logging
from typing import Any

from chaosmesh_sec.errors import ChaosMeshSecError
from chaosmesh_sec.faults.leftovers import heal_leftovers
from chaosmesh_sec.journal import SAFETY_NET_EXTENSION

__all__ = ["after_experiment_control"]

logger = logging.getLogger("chaostoolkit")


def after_experiment_control(
    context: Any,
    state: Any,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    namespace: str = "",
    **kwargs: Any,
) -> None:
    """Heal leftovers once the experiment (and any rollbacks) ended; note it in the journal."""
    record: dict[str, Any] = {"name": SAFETY_NET_EXTENSION}
    try:
        record["healed"] = heal_leftovers(
            namespace=namespace, configuration=configuration, secrets=secrets
        )
    except ChaosMeshSecError as exc:
        logger.error("safety net: could not heal everything: %s", exc)
        record["error"] = str(exc)
    else:
        if record["healed"]["nothing_left"]:
            logger.info("safety net: no fault left in effect")
        else:
            logger.warning("safety net: healed faults the rollbacks left: %s", record["healed"])
    if isinstance(state, dict):
        state.setdefault("extensions", []).append(record)
