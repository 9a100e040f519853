"""The probe kit: its folders, and its documents as ``chaosmesh-sec kit apply`` adjusts them
(no cluster; ``kubectl kustomize`` renders offline, when a kubectl is at hand)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaosmesh_sec import kit
from chaosmesh_sec.errors import InvalidInput, LabError
from chaosmesh_sec.lab.build import locate
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.probes import _matrix_spec


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def test_the_kits_are_listed() -> None:
    assert "wrong-identity" in kit.kits()
    assert kit.kits() == [
        "cni-canary",
        "team-isolation",
        "wrong-identity",
        "wrong-identity-networkpolicy",
    ]
    assert kit.matrices() == ["team-isolation", "wrong-identity"]


def test_wrong_identity_has_the_seeds_workloads_and_policies() -> None:
    docs = kit.documents("wrong-identity")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for v in ("v1", "v2"):
        assert ("Deployment", f"sleep-{v}") in kinds
        assert ("Deployment", f"helloworld-{v}") in kinds
        assert ("CiliumNetworkPolicy", f"helloworld-{v}") in kinds
        assert ("AuthorizationPolicy", f"helloworld-{v}") in kinds
    assert ("AuthorizationPolicy", "allow-nothing") in kinds
    assert ("PeerAuthentication", "default") in kinds
    for dep in _deployments(docs).values():
        names = [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]]
        assert "istio-proxy" in names


def test_nodes_pin_clients_and_servers() -> None:
    deps = _deployments(kit.documents("wrong-identity", client_node="n1", server_node="n2"))
    for name, dep in deps.items():
        want = "n1" if name.startswith("sleep") else "n2"
        assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": want}


def test_auto_inject_drops_the_written_out_sidecars() -> None:
    docs = kit.documents("wrong-identity", auto_inject=True)
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "default", "labels": {"istio-injection": "enabled"}},
    }
    for dep in _deployments(docs).values():
        spec = dep["spec"]["template"]["spec"]
        assert [c["name"] for c in spec["containers"]] != ["istio-proxy"]
        assert all(c["name"] != "istio-proxy" for c in spec["containers"])
        assert all(v["name"] not in kit.SIDECAR_VOLUMES for v in spec["volumes"])


@pytest.mark.parametrize("name", kit.kits())
def test_auto_inject_labels_each_namespace_once(name: str) -> None:
    """One Namespace document per namespace, labelled: a kit's own Namespace applied
    after a labelled copy (same field manager) would take the label off again."""
    docs = kit.documents(name, auto_inject=True)
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    names = [d["metadata"]["name"] for d in namespaces]
    assert len(names) == len(set(names))
    used = {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}
    assert used <= set(names)
    assert all(d["metadata"]["labels"]["istio-injection"] == "enabled" for d in namespaces)
    assert all(
        "istio-injection" not in d["metadata"].get("labels", {})
        for d in kit.documents(name)
        if d["kind"] == "Namespace"
    )


def test_an_unknown_kit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no kit 'nope'"):
        kit.documents("nope")


@pytest.mark.parametrize("name", kit.matrices())
def test_every_kit_matrix_parses(name: str) -> None:
    path = kit.matrix_file(name)
    matrix = _matrix_spec.parse_matrix(path.read_text(), origin=str(path))
    assert matrix.cells()
    assert matrix.name == name


def test_the_kit_is_the_top_level_probes_folder() -> None:
    assert Path(__file__).resolve().parents[2] / "probes" == kit.KIT_DIR


@pytest.mark.parametrize("name", kit.kits())
def test_every_kit_is_a_plain_kustomization_of_its_own_files(name: str) -> None:
    """Only ``resources``, each a file of the kit's folder, every manifest listed: so
    ``kubectl apply -k probes/<kit>`` deploys what ``chaosmesh-sec kit apply`` does."""
    folder = kit.KIT_DIR / name
    spec = yaml.safe_load((folder / kit.KUSTOMIZATION).read_text())
    assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert spec["kind"] == "Kustomization"
    assert set(spec) == {"apiVersion", "kind", "resources"}, "the pack reads resources only"
    listed = kit.manifests(name)
    assert listed and all(p.parent == folder and p.is_file() for p in listed)
    manifests = {p for p in folder.glob("*.yaml") if p.name not in (kit.KUSTOMIZATION, kit.MATRIX)}
    assert set(listed) == manifests
    assert len(listed) == len(set(listed))


def _kubectl() -> Path | None:
    """The lab's kubectl when it is built, else one on PATH (``kustomize`` runs offline)."""
    try:
        return locate(LabPaths.default())["kubectl"]
    except LabError:  # not built here: look on PATH
        found = shutil.which("kubectl")
        return Path(found) if found else None


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


@pytest.mark.parametrize("name", kit.kits())
def test_kustomize_renders_the_objects_the_pack_applies(name: str) -> None:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl on this machine to render the kustomization with")
    done = subprocess.run(
        [str(kubectl), "kustomize", str(kit.KIT_DIR / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rendered = {_key(d): d for d in yaml.safe_load_all(done.stdout) if d}
    assert rendered == {_key(d): d for d in kit.documents(name)}
