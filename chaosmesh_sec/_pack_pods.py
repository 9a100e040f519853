"""The pack's own pods on nodes: where they go, what they run, what they tolerate.

Two kinds of pod are the pack's: the partition's fault pod (``faults/``) and the
posture probes' inspection pod (``probes/``). Both are pinned to a node, carry no
ServiceAccount token (they never call the API), run the pack's image (by default
:data:`DEFAULT_IMAGE`, pinned by digest) and live in the fault namespace
(:data:`chaosmesh_sec._run.FAULT_NAMESPACE`) unless
the experiment says otherwise. ``deploy/admission-policy.yaml`` admits, for the
runner's ServiceAccount, exactly these shapes: keep the two in step
(``tests/integration/test_deploy.py`` builds the pods with this code and asks the
API server).
"""

from __future__ import annotations

from kubernetes import client as k8s

__all__ = [
    "CONTROL_PLANE_TAINTS",
    "DEFAULT_IMAGE",
    "NODE_LOSS_TAINTS",
    "tolerations",
]


DEFAULT_IMAGE = (
    "docker.io/nicolaka/netshoot:v0.13"
    "@sha256:a20c2531bf35436ed3766cd6cfe89d352b050ccc4d7005ce6400adf97503da1b"
)
"""The image of the pack's pods (sh, iptables, nsenter, ip), its tag pinned by digest:
a tag can be moved to other content, a digest cannot. Give your own with ``image``
(and add it to the admission policy's allow-list)."""

NODE_LOSS_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
"""NoExecute taints the node lifecycle controller puts on a node it no longer hears
from: a partition cuts its own node off, so its pod must stay through them (without
this, it is evicted after the default 300 s and the cut ends early)."""

CONTROL_PLANE_TAINTS = ("node-role.kubernetes.io/control-plane",)
"""Tolerated (NoSchedule and NoExecute) only when an activity is asked to."""


def tolerations(control_plane: bool) -> list[k8s.V1Toleration]:
    """What a node-pinned pack pod tolerates: losing its node's API server, and the
    control-plane taints only when ``control_plane``. Nothing else (no ``Exists``
    wildcard): a pod is not started on a node tainted against it."""
    found = [
        k8s.V1Toleration(key=key, operator="Exists", effect="NoExecute") for key in NODE_LOSS_TAINTS
    ]
    if control_plane:
        found += [
            k8s.V1Toleration(key=key, operator="Exists", effect=effect)
            for key in CONTROL_PLANE_TAINTS
            for effect in ("NoSchedule", "NoExecute")
        ]
    return found
