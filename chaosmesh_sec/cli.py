"""``chaosmesh-sec``: the pack's command line (``lab``, ``kit``, ``init``, ``gameday``,
``report``, ``rollback``, ``reference``).

Each command imports what it runs when it runs, so ``chaosmesh-sec --help`` stays quick;
the lab's group is :mod:`chaosmesh_sec.lab.cli`.
"""

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from chaosmesh_sec import __version__
from chaosmesh_sec.errors import ChaosMeshSecError
from chaosmesh_sec.lab.cli import lab

__all__ = ["main"]


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
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that are there already.")
def init(directory: Path, force: bool) -> None:
    """Write the shipped experiments, game-day plans, deploy/ and the probe kit into DIRECTORY.

    DIRECTORY gets experiments/, gamedays/, deploy/ and probes/ as the pack ships them
    (created if needed); nothing is overwritten without --force.
    """
    from chaosmesh_sec._shipped import copy_shipped

    try:
        written = copy_shipped(directory, force=force)
    except FileExistsError as exc:
        click.echo(f"error: {exc} (--force overwrites them)", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo("\n".join(str(path) for path in written))


@main.command()
@click.option("--kubeconfig", default="", help="Kubeconfig to use (default: $KUBECONFIG).")
@click.option("--node", default="", help="Only partitions on this node.")
@click.option("--namespace", default="", help="Only Deployments in this namespace.")
@click.option(
    "--fault-namespace",
    default="chaosmesh-sec-faults",
    show_default=True,
    help="Where partition fault pods are looked for (the experiments' fault_namespace).",
)
def rollback(kubeconfig: str, node: str, namespace: str, fault_namespace: str) -> None:
    """Heal every leftover fault recorded in the cluster's ledger, of every run; report as JSON.

    Undoes what faults left behind after a crash or a skipped rollback: partition fault
    pods are healed by exact spec and deleted, scaled Deployments get their replica
    count back, the IP hunt's labels come off. Each entry says whose it was (the run
    id, and for a Deployment what changed it and when); a line per entry on stderr
    says it too. Exit code 1 when something could not be undone.
    """
    from chaosmesh_sec.faults.leftovers import heal_leftovers

    configuration = {"kubeconfig_path": kubeconfig} if kubeconfig else None
    try:
        result = heal_leftovers(
            node=node,
            namespace=namespace,
            fault_namespace=fault_namespace,
            all_runs=True,
            configuration=configuration,
        )
    except ChaosMeshSecError as exc:
        done = getattr(exc, "result", None)
        if done is not None:
            _say_whose(done)
            click.echo(json.dumps(done, indent=2))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _say_whose(result)
    click.echo(json.dumps(result, indent=2))


def _say_whose(result: dict[str, Any]) -> None:
    """One line per healed entry on stderr: what it was and whose (run id, by what, when)."""
    partition = result.get("apiserver_partition") or {}
    for kind in ("healed", "expired", "ended"):
        for entry in partition.get(kind) or []:
            click.echo(
                f"partition {entry.get('run_id')} on {entry.get('node')}: {kind} "
                f"(run {entry.get('owner_run')})",
                err=True,
            )
    for entry in result.get("replicas") or []:
        click.echo(
            f"Deployment {entry['namespace']}/{entry['name']}: restored to "
            f"{entry['replicas']} (run {entry.get('run_id')}, changed by "
            f"{entry.get('changed_by')} at {entry.get('changed_at')})",
            err=True,
        )
    for entry in result.get("recycled_labels") or []:
        click.echo(
            f"pod {entry['namespace']}/{entry['name']}: recycled-from={entry['victim']} "
            f"label removed (run {entry.get('run_id')})",
            err=True,
        )


@main.command()
def reference() -> None:
    """Print the activity reference (Markdown) generated from the code."""
    from chaosmesh_sec._reference import activity_reference

    click.echo(activity_reference(), nl=False)


class _GamedayCommand(click.Command):
    """Usage errors exit 4 (the plan is invalid), not click's 2 (which means "not applied")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.show()
            ctx.exit(4)


@main.command(cls=_GamedayCommand)
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("journals"),
    show_default=True,
    help="Base directory; the game day writes into <out>/<YYYY-MM-DD>-<plan name>/.",
)
@click.option(
    "--var-file",
    "var_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A chaos var-file ({configuration: ...}) for every experiment; repeatable.",
)
@click.option(
    "--var",
    "var_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A configuration value for every experiment (JSON-typed: 30, true); wins over all.",
)
@click.option("--yes", is_flag=True, help="Never wait at pause_before: prompt (unattended).")
@click.option("--quiet", is_flag=True, help="Keep chaos's output in <NN>-<experiment>.out.")
@click.option("--check", "check_only", is_flag=True, help="Only validate the plan (exit 0 or 4).")
def gameday(source: Path, **options: Any) -> None:
    """Run a game day: every experiment of SOURCE (a plan file or a directory), in order.

    Exit code: 0 every hypothesis held, 1 one deviated (or a fail-open), 2 a fault could
    not be applied, 3 a rollback failed, 4 the plan is invalid (nothing ran).
    """
    from chaosmesh_sec import gameday as gd

    sys.exit(gd.main(source, **options))


@main.command()
@click.argument("journals", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write report.html, report.md and junit.xml in (created if needed).",
)
@click.option("--title", default="", help="The report's title (default: from the first run's day).")
def report(journals: tuple[Path, ...], out_dir: Path, title: str) -> None:
    """Render Chaos Toolkit JOURNALS as report.html, report.md and junit.xml."""
    from chaosmesh_sec.report import write_reports

    try:
        written = write_reports(journals, out_dir, title)
    except (ChaosMeshSecError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo("\n".join(str(path) for path in written.values()))


main.add_command(lab)
