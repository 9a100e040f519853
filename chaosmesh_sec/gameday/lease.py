"""The game day's run Lease: taken for its whole length, shared with its ``chaos run`` children.

A game day is one run as far as the cluster is concerned: it takes the run Lease
(:mod:`chaosmesh_sec._lease`) before its first experiment, renews it until its last one
ended, then releases it. Each child ``chaos run`` gets the Lease's holder identity in
:data:`chaosmesh_sec._run.HOLDER_ENV`; its safety net joins the Lease instead of
refusing to start. Another run (a ``chaos run`` by hand, another game day) is refused
for as long as the game day lasts.

Where: the Lease is in the fault namespace the plan's experiments use: ``fault_namespace``
given to every experiment (``--var``, ``--var-file``), else the one value the entries
resolve it to (their ``vars`` / ``var_file``, else the experiment's declared default,
its environment variable first), else :data:`chaosmesh_sec._run.FAULT_NAMESPACE`.
Entries that disagree make the plan invalid (the Lease must be the one their safety
nets look at). The cluster is the kubeconfig the experiments use: ``kubeconfig_path``
given to every experiment, else ``$KUBECONFIG``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_sec import _lease, _run, _validate
from chaosmesh_sec.client import api_client
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.gameday.plan import Entry, Plan, var_file_configuration

__all__ = ["held_for", "lease_place"]

FAULT_NAMESPACE_KEY = "fault_namespace"
KUBECONFIG_KEY = "kubeconfig_path"


def _declared(entry: Entry) -> Any:
    """The experiment's own value of ``fault_namespace`` (its env var, else its default)."""
    text = entry.path.read_text()
    experiment = json.loads(text) if entry.path.suffix == ".json" else yaml.safe_load(text)
    config = experiment.get("configuration") if isinstance(experiment, Mapping) else None
    value = config.get(FAULT_NAMESPACE_KEY) if isinstance(config, Mapping) else None
    if isinstance(value, Mapping) and value.get("type") == "env":
        return os.environ.get(str(value.get("key")), value.get("default"))
    return value


def _entry_value(entry: Entry) -> Any:
    if FAULT_NAMESPACE_KEY in entry.vars:
        return entry.vars[FAULT_NAMESPACE_KEY]
    if entry.var_file is not None:
        given = var_file_configuration(entry.var_file)
        if FAULT_NAMESPACE_KEY in given:
            return given[FAULT_NAMESPACE_KEY]
    return _declared(entry)


def lease_place(
    plan: Plan, var_files: Sequence[Path], variables: Mapping[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    """The fault namespace the Lease goes in, and the configuration naming the cluster."""
    common: dict[str, Any] = {}
    for path in var_files:
        common.update(var_file_configuration(path))
    common.update(variables)
    kubeconfig = common.get(KUBECONFIG_KEY)
    configuration = {KUBECONFIG_KEY: kubeconfig} if isinstance(kubeconfig, str) else None
    if FAULT_NAMESPACE_KEY in common:
        return _validate.dns_label(FAULT_NAMESPACE_KEY, common[FAULT_NAMESPACE_KEY]), configuration
    found = {e.stem: _entry_value(e) for e in plan.entries}
    values = {v for v in found.values() if isinstance(v, str) and v}
    if len(values) > 1:
        which = ", ".join(f"{stem}: {value}" for stem, value in sorted(found.items()) if value)
        raise InvalidInput(
            FAULT_NAMESPACE_KEY,
            f"the plan's experiments use different fault namespaces ({which}); the run "
            "lease is in one: give it to all with --var fault_namespace=...",
        )
    namespace = values.pop() if values else _run.FAULT_NAMESPACE
    return _validate.dns_label(FAULT_NAMESPACE_KEY, namespace), configuration


@contextlib.contextmanager
def held_for(
    plan: Plan, namespace: str, configuration: dict[str, Any] | None
) -> Iterator[_lease.Held]:
    """Take the Lease for the plan (RunRefused if another run holds it), renew it while
    the block runs, release it after."""
    api = api_client(configuration, None)
    holder = _lease.Holder.this_process(_run.new_run_id(), f"game day {plan.name}")
    held = _lease.take(api, namespace, holder)
    renewal = _lease.Renewal(api, held).start()
    try:
        yield held
    finally:
        renewal.stop()
        _lease.release(api, held)
