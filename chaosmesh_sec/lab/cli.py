"""``chaosmesh-sec lab build | up | down | status``."""

from __future__ import annotations

import sys

import click

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab import build as lab_build
from chaosmesh_sec.lab import hostdeps, manager
from chaosmesh_sec.lab.paths import LabPaths

__all__ = ["lab"]


def _progress(message: str) -> None:
    click.echo(f"lab: {message}", err=True)


def _fail(exc: LabError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group()
def lab() -> None:
    """A local cluster with a real control plane and real istiod (needs root)."""


@lab.command("build")
def build_cmd() -> None:
    """Build the lab's binaries from their pinned Go modules (cached; reused when present)."""
    try:
        hostdeps.ensure(_progress)
        bins = lab_build.build_all(LabPaths.default(), _progress)
    except LabError as exc:
        _fail(exc)
    for name, path in sorted(bins.paths.items()):
        click.echo(f"{name}\t{path}")


@lab.command("up")
def up_cmd() -> None:
    """Build what is missing, start the lab, deploy istiod; print how to use it."""
    try:
        kubeconfig = manager.up(progress=_progress)
    except LabError as exc:
        _fail(exc)
    click.echo(f"export KUBECONFIG={kubeconfig}")
    click.echo("# then: kubectl get nodes; chaos run experiments/smoke.json", err=True)


@lab.command("down")
def down_cmd() -> None:
    """Stop the lab and remove everything it created (processes, namespaces, rules, files)."""
    try:
        manager.down(progress=_progress)
    except LabError as exc:
        _fail(exc)


@lab.command("status")
@click.option(
    "--kubeconfig", "kubeconfig_only", is_flag=True, help="Print only the admin kubeconfig path."
)
def status_cmd(kubeconfig_only: bool) -> None:
    """Show whether the lab runs: processes, namespaces, nodes (JSON)."""
    status = manager.status()
    if kubeconfig_only:
        if not status.running:
            _fail(LabError("the lab is not running: `chaosmesh-sec lab up` first"))
        click.echo(status.kubeconfig)
        return
    click.echo(status.to_json())
