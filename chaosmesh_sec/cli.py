"""``chaosmesh-sec``: the pack's command line (``lab``, ``rollback``, ``reference``)."""

import logging

import click

from chaosmesh_sec import __version__
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


@main.command()
def reference() -> None:
    """Print the activity reference (Markdown) generated from the code."""
    from chaosmesh_sec.reference import activity_reference

    click.echo(activity_reference(), nl=False)


main.add_command(lab)
main.add_command(rollback)
