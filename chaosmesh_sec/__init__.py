"""chaosmesh-sec: Chaos Toolkit activities that check a mesh's security promises under faults.

The package is a Chaos Toolkit extension: ``chaos discover chaosmesh-sec`` calls
:func:`discover`, which lists every activity of the modules in
:mod:`chaosmesh_sec._registry`.
"""

import logging

from chaoslib.discovery.discover import (
    discover_actions,
    discover_probes,
    initialize_discovery_result,
)

from chaosmesh_sec._registry import ACTIVITY_MODULES
from chaosmesh_sec._types import JSONObject

__all__ = ["__version__", "discover"]
__version__ = "0.1.0"

logger = logging.getLogger("chaostoolkit")


def discover(discover_system: bool = True) -> JSONObject:
    """Discover the activities this extension offers (one entry per registered module).

    ``discover_system`` is part of chaoslib's extension contract; this pack
    does not describe the target system, so it has no effect.
    """
    logger.info("Discovering capabilities from chaosmesh-sec")
    discovery: JSONObject = initialize_discovery_result("chaosmesh-sec", __version__, "kubernetes")
    for module, kind in ACTIVITY_MODULES:
        found = discover_probes(module) if kind == "probe" else discover_actions(module)
        discovery["activities"].extend(found)
    return discovery
