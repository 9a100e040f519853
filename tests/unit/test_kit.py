"""The probe kit's documents, as ``chaosmesh-sec kit apply`` adjusts them (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_sec import kit
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import _matrix_spec


def _deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def test_the_kits_are_listed() -> None:
    assert "wrong-identity" in kit.kits()


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


def test_an_unknown_kit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no kit 'nope'"):
        kit.documents("nope")


@pytest.mark.parametrize("path", sorted(kit.KIT_DIR.glob("*.matrix.yaml")), ids=lambda p: p.name)
def test_every_kit_matrix_parses(path: Any) -> None:
    matrix = _matrix_spec.parse_matrix(path.read_text(), origin=str(path))
    assert matrix.cells()
