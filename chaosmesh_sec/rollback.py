"""``chaosmesh-sec rollback``: undo what faults left behind after a crash or a skipped rollback.

Fault pods carry the label ``chaosmesh-sec.io/fault``; every leftover one is healed by
exact spec and deleted. (Replica counts changed by churn faults are restored by their
own ``restore_*`` rollbacks.)
"""

import json
import sys

import click

from chaosmesh_sec.errors import ChaosMeshSecError
from chaosmesh_sec.faults.apiserver_partition import heal_apiserver_partition

__all__ = ["rollback"]


@click.command()
@click.option("--kubeconfig", default="", help="Kubeconfig to use (default: $KUBECONFIG).")
@click.option("--node", default="", help="Only leftovers on this node.")
def rollback(kubeconfig: str, node: str) -> None:
    """Heal every leftover fault (partition rules by exact spec), delete its pods, report."""
    configuration = {"kubeconfig_path": kubeconfig} if kubeconfig else None
    try:
        result = {
            "apiserver_partition": heal_apiserver_partition(node=node, configuration=configuration)
        }
    except ChaosMeshSecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2))
