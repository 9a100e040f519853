"""The one list of the pack's activity modules, and the kind of each.

``chaosmesh_sec.discover()`` is generated from this list, and so are the unit
tests that check discovery. A module holds activities of one kind only:
``probe`` modules are read-only questions, ``action`` modules change the cluster
(faults and their ``heal_*`` / ``restore_*`` rollbacks). To add activities, add
their module here; every name in the module's ``__all__`` becomes an activity.
"""

from typing import Final, Literal

__all__ = ["ACTIVITY_MODULES", "ActivityKind"]

ActivityKind = Literal["action", "probe"]

ACTIVITY_MODULES: Final[tuple[tuple[str, ActivityKind], ...]] = (
    ("chaosmesh_sec.probes.ambient", "probe"),
    ("chaosmesh_sec.probes.cni_chain", "probe"),
    ("chaosmesh_sec.probes.control_plane", "probe"),
    ("chaosmesh_sec.probes.issuance", "probe"),
    ("chaosmesh_sec.probes.matrix", "probe"),
    ("chaosmesh_sec.probes.redirection", "probe"),
    ("chaosmesh_sec.probes.sidecar_certs", "probe"),
    ("chaosmesh_sec.probes.workloads", "probe"),
    ("chaosmesh_sec.faults.istiod", "action"),
    ("chaosmesh_sec.faults.churn", "action"),
    ("chaosmesh_sec.faults.ip_recycle", "action"),
    ("chaosmesh_sec.faults.cni", "action"),
    ("chaosmesh_sec.faults.apiserver_partition", "action"),
    ("chaosmesh_sec.faults.leftovers", "action"),
)
