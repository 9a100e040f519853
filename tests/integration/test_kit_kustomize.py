"""Each kit of ``probes/`` deploys without the pack: ``kubectl apply -k probes/<kit>``.

The lab's kubectl applies every kit's kustomization against the lab's API server with
``--dry-run=server``: the API server admits every object (the Istio and Cilium kinds
included: the lab serves their CRDs). Nothing is changed; the lab runs the kits already
(``lab up`` applies them with ``chaosmesh-sec kit apply``), so their namespaces exist.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chaosmesh_sec import kit
from chaosmesh_sec.lab.build import locate
from chaosmesh_sec.lab.paths import LabPaths


@pytest.fixture(scope="module")
def kubectl(lab: Path) -> Path:
    return locate(LabPaths.default())["kubectl"]


@pytest.mark.parametrize("name", kit.kits())
def test_kubectl_apply_k_is_accepted_by_the_api_server(kubectl: Path, lab: Path, name: str) -> None:
    done = subprocess.run(
        [str(kubectl), "apply", "-k", str(kit.KIT_DIR / name), "--dry-run=server"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(lab)},
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"kubectl apply -k probes/{name}:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert all(line.endswith("(server dry run)") for line in lines), done.stdout
    for doc in kit.documents(name):
        shown = f"/{doc['metadata']['name']} "
        assert any(shown in line for line in lines), f"{doc['kind']} {shown} not applied"
