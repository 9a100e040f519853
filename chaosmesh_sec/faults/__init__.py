"""Faults: actions that break things, each with its rollback.

Every fault validates all its inputs before touching the cluster, returns what it did
(JSON-ready, for the journal and the rollback) and leaves nothing behind on a failure
path. Faults only speak the Kubernetes API.

Activity modules (listed in :mod:`chaosmesh_sec._registry`): ``apiserver_partition``
(a node cut off from the API server, and its heal), ``istiod`` (kill replicas),
``churn`` (scale, rollout restart, the recycled-IP hunt, and the replica restore),
``cni`` (restart a CNI DaemonSet's pods), ``leftovers`` (heal whatever the ledger says
is still in effect). Helpers, private to the faults: the ledger written into the
cluster (``_ledger``), the partition's rules and script (``_partition_rules``), what the
workload faults share (``_workloads``). What faults share with probes is on the floor
(:mod:`chaosmesh_sec._kube`, :mod:`chaosmesh_sec._validate`).
"""
