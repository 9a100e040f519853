"""``chaosmesh-sec rollback``: undo what faults left behind after a crash or a skipped rollback.

Reads the ledger in the cluster (:mod:`chaosmesh_sec.faults._ledger`): partition
fault pods are healed by exact spec and deleted, scaled Deployments get their
replica count back. Prints what it did as JSON; exit code 1 when something could
not be undone.
"""

import json
import sys

import click

from chaosmesh_sec.errors import ChaosMeshSecError
from chaosmesh_sec.faults.leftovers import heal_leftovers

__all__ = ["rollback"]


@click.command()
@click.option("--kubeconfig", default="", help="Kubeconfig to use (default: $KUBECONFIG).")
@click.option("--node", default="", help="Only partitions on this node.")
@click.option("--namespace", default="", help="Only Deployments in this namespace.")
def rollback(kubeconfig: str, node: str, namespace: str) -> None:
    """Heal every leftover fault recorded in the cluster's ledger, report as JSON."""
    configuration = {"kubeconfig_path": kubeconfig} if kubeconfig else None
    try:
        result = heal_leftovers(node=node, namespace=namespace, configuration=configuration)
    except ChaosMeshSecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2))
