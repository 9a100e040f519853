"""Read-only checks. Each returns a JSON-ready dict with a boolean headline for tolerances.

Modules: ``control_plane`` (istiod replicas, the published root certificate).
"""

import logging

__all__: list[str] = []

logger = logging.getLogger("chaostoolkit")
