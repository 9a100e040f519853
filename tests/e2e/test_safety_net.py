"""The safety-net control heals what a run left, whatever the rollback strategy.

``chaos run --rollback-strategy=never`` skips every rollback; the control still finds
the ledger entry of the scaled Deployment and restores it, and says so in the journal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubernetes import client

from chaosmesh_sec.journal import SAFETY_NET_EXTENSION as EXTENSION
from tests.lab_fixtures import deploy_pause, eventually

CHAOS = Path(sys.executable).parent / "chaos"


def _experiment(namespace: str) -> dict[str, object]:
    scale = {
        "type": "python",
        "module": "chaosmesh_sec.faults.churn",
        "func": "scale_deployment",
        "arguments": {"name": "web", "namespace": namespace, "replicas": 0},
    }
    restore = {
        "type": "python",
        "module": "chaosmesh_sec.faults.churn",
        "func": "restore_replicas",
        "arguments": {"name": "web", "namespace": namespace},
    }
    return {
        "title": "scale away, skip the rollback",
        "description": "The safety net must restore the replicas.",
        "controls": [
            {
                "name": EXTENSION,
                "provider": {"type": "python", "module": "chaosmesh_sec.controls.safety_net"},
            }
        ],
        "method": [{"type": "action", "name": "scale-to-zero", "provider": scale}],
        "rollbacks": [{"type": "action", "name": "restore", "provider": restore}],
    }


def test_never_strategy_skips_rollbacks_and_the_control_heals(
    lab: Path, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    deploy_pause(api, namespace, "web", 2)
    experiment = tmp_path / "experiment.json"
    experiment.write_text(json.dumps(_experiment(namespace)))
    journal_path = tmp_path / "journal.json"

    subprocess.run(
        [
            str(CHAOS),
            "--no-version-check",
            "run",
            "--rollback-strategy=never",
            "--journal-path",
            str(journal_path),
            str(experiment),
        ],
        env={**os.environ, "KUBECONFIG": str(lab)},
        check=True,
        timeout=180,
    )

    journal = json.loads(journal_path.read_text())
    assert journal["rollbacks"] == []  # the strategy skipped them
    [net] = [e for e in journal.get("extensions", []) if e.get("name") == EXTENSION]
    [restored] = net["healed"]["replicas"]
    assert restored == {
        "name": "web",
        "namespace": namespace,
        "replicas": 2,
        "previous_replicas": 0,
        "run_id": net["run_id"],  # this run's entry, and whose it was
        "changed_by": "scale_deployment",
        "changed_at": restored["changed_at"],
    }, net
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 2
    eventually(
        lambda: (apps.read_namespaced_deployment("web", namespace).status.ready_replicas or 0) == 2,
        60,
        "web Ready again",
    )
