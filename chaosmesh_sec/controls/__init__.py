"""Chaos Toolkit controls of the pack (declared in an experiment's ``controls``).

``safety_net``: at the end of every run, whatever the rollback strategy, heal what
the faults' ledger says is still in effect (:mod:`chaosmesh_sec.faults.leftovers`).
"""
