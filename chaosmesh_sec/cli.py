"""``chaosmesh-sec``: the pack's command line (``lab``, ``kit``, ``rollback``, ``reference``)."""

import logging
import sys

import click

from chaosmesh_sec import __version__
from chaosmesh_sec.errors import ChaosMeshSecError
from chaosmesh_sec.lab.cli import lab
from chaosmesh_sec.rollback import rollback

__all__ = ["main"]

logger = logging.getLogger("chaostoolkit")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="chaosmesh-sec", help="Show the version.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log debug detail (API calls, commands run) to stderr.",
)
def main(verbose: bool) -> None:
    """Prove a Kubernetes + Istio mesh keeps its security promises while things break."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )


@main.group()
def kit() -> None:
    """The probe kit: canary workloads, their policies and identity matrices."""


@kit.command("list")
def kit_list() -> None:
    """List the kits shipped with the pack."""
    from chaosmesh_sec import kit as kits

    for name in kits.kits():
        click.echo(name)


@kit.command("apply")
@click.argument("name")
@click.option("--kubeconfig", default="", help="Kubeconfig to use (default: $KUBECONFIG).")
@click.option("--client-node", default="", help="Pin the kit's clients (sleep, curl) here.")
@click.option("--server-node", default="", help="Pin the kit's servers here.")
@click.option("--auto-inject", is_flag=True, help="Let the cluster's istiod inject sidecars.")
def kit_apply(
    name: str, kubeconfig: str, client_node: str, server_node: str, auto_inject: bool
) -> None:
    """Apply kit NAME (server-side apply) and wait until its Deployments are available."""
    from chaosmesh_sec import kit as kits

    configuration = {"kubeconfig_path": kubeconfig} if kubeconfig else None
    try:
        done = kits.apply(name, client_node, server_node, auto_inject, configuration=configuration)
    except ChaosMeshSecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo("\n".join(done))


@kit.command("delete")
@click.argument("name")
@click.option("--kubeconfig", default="", help="Kubeconfig to use (default: $KUBECONFIG).")
def kit_delete(name: str, kubeconfig: str) -> None:
    """Delete kit NAME's objects."""
    from chaosmesh_sec import kit as kits

    configuration = {"kubeconfig_path": kubeconfig} if kubeconfig else None
    try:
        click.echo("\n".join(kits.delete(name, configuration=configuration)))
    except ChaosMeshSecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.command()
def reference() -> None:
    """Print the activity reference (Markdown) generated from the code."""
    from chaosmesh_sec.reference import activity_reference

    click.echo(activity_reference(), nl=False)


main.add_command(lab)
main.add_command(rollback)
