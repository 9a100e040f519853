"""Faults: actions that break things, each with its rollback.

Every fault validates all its inputs before touching the cluster, returns what it did
(JSON-ready, for the journal and the rollback) and leaves nothing behind on a failure
path. Faults only speak the Kubernetes API.
"""
