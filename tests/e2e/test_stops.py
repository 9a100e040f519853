"""A run stops where it should, and ``chaos run``'s exit code says so (issue 15, item 8).

Each test runs a shipped experiment with ``chaos run`` as a user does and checks the
exit code, the journal and the cluster:

- a bad ``--var`` stops the run before the steady state is probed, and the API
  server's audit log shows that the run wrote nothing (the run acts as a fresh
  ServiceAccount, so its requests are told from everyone else's; its first request
  is made on purpose, to show the log would see one);
- a fault that fails during the method: no later fault is applied, the rollbacks run;
- a permissive mesh caught by the before-hypothesis exits non-zero, the method unrun;
- an API error's body, headers and the caller's token stay out of the journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client, config

from chaosmesh_sec.faults._ledger import FAULT_LABEL, REPLICAS_BEFORE
from chaosmesh_sec.faults.ip_recycle import RECYCLED_FROM
from chaosmesh_sec.gameday.verdict import journal_status
from chaosmesh_sec.journal import safety_net_records
from chaosmesh_sec.probes import matrix
from tests.audit import writes_by
from tests.chaos_runs import EXPERIMENTS, chaos_run
from tests.identities import service_account
from tests.lab_fixtures import eventually

NS = "default"
CELL = ("sleep-v2", "helloworld-v1")


def _fault_pods(core: client.CoreV1Api) -> list[str]:
    pods = core.list_pod_for_all_namespaces(label_selector=FAULT_LABEL).items
    return sorted(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods)


def test_a_bad_var_stops_the_run_before_the_steady_state_and_nothing_is_written(
    lab: Path, core: client.CoreV1Api, tmp_path: Path
) -> None:
    """The flagship with a hunt timeout of "abc": the hunt is the method's third
    activity, so without the preflight the partition (a write) would come first."""
    with service_account(lab, core, NS, tmp_path / "kubeconfig", prefix="cms-preflight") as who:
        probe = client.CoreV1Api(client.ApiClient(_configuration(who.kubeconfig)))
        try:  # the audit log sees this identity's writes, even refused ones
            probe.create_namespaced_config_map(
                NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cms-audit-probe"))
            )
        except client.ApiException as exc:
            assert exc.status == 403
        seen = writes_by(who.username)
        assert [(w["verb"], w["code"]) for w in seen] == [("create", 403)], seen
        run = chaos_run(
            EXPERIMENTS / "wrong-identity.json",
            who.kubeconfig,
            tmp_path / "journal.json",
            {"hunt_timeout_seconds": "abc"},
        )
        assert writes_by(who.username) == seen, "the refused run wrote to the API server"
    assert run["_exit_code"] == 1, run["_stderr"][-2000:]
    assert run["status"] == "interrupted"
    assert run["steady_states"]["before"] is None, "the steady state was probed"
    assert run["run"] == [] and run["rollbacks"] == []
    (record,) = safety_net_records(run)
    (refusal,) = record["preflight"]["refused"]
    assert (refusal["phase"], refusal["activity"], refusal["input"]) == (
        "method",
        "hunt-recycled-ip",
        "timeout_seconds",
    )
    assert "hunt-recycled-ip" in run["_stderr"] and "timeout_seconds" in run["_stderr"]
    assert who.token not in (tmp_path / "journal.json").read_text()


def test_a_fault_that_fails_stops_the_method_and_the_rollbacks_run(
    lab: Path, core: client.CoreV1Api, kit_holds: None, tmp_path: Path
) -> None:
    """The flagship's partition targets the node of pods that do not exist: it passes
    the preflight (a valid selector: only the cluster knows it matches nothing) and
    fails. The hunter is not scaled, no IP is hunted, the three rollbacks run."""
    apps = client.AppsV1Api(core.api_client)
    before = {d: apps.read_namespaced_deployment(d, NS) for d in ("sleep-v1", "sleep-v2")}
    run = chaos_run(
        EXPERIMENTS / "wrong-identity.json",
        lab,
        tmp_path / "journal.json",
        {"server_selector": "app=helloworld,version=v9"},
    )
    assert run["_exit_code"] == 1, run["_stderr"][-2000:]
    assert run["status"] == "aborted"
    assert run["steady_states"]["before"]["steady_state_met"] is True
    assert run["steady_states"]["after"] is None
    # what ran: the matrix timeline started in the background, then the cut, which failed
    names = [r["activity"]["name"] for r in run["run"]]
    assert names == ["matrix-timeline-across-the-fault", "cut-helloworld-v1-node-from-apiserver"]
    cut = run["run"][1]
    assert cut["status"] == "failed" and "InvalidInput" in "".join(cut["exception"])
    assert [(r["activity"]["name"], r["status"]) for r in run["rollbacks"]] == [
        ("heal-apiserver-partition", "succeeded"),
        ("restore-victim-replicas", "succeeded"),
        ("restore-hunter-replicas", "succeeded"),
    ]
    (record,) = safety_net_records(run)
    assert record["stopped"]["activity"] == "cut-helloworld-v1-node-from-apiserver"
    assert record["healed"]["nothing_left"] is True
    # the cluster: nothing scaled, nothing labelled, no fault pod
    for name, deployment in before.items():
        now = apps.read_namespaced_deployment(name, NS)
        assert now.spec.replicas == deployment.spec.replicas, name
        assert REPLICAS_BEFORE not in (now.metadata.annotations or {}), name
        assert now.metadata.generation == deployment.metadata.generation, name
    assert core.list_namespaced_pod(NS, label_selector=RECYCLED_FROM).items == []
    assert _fault_pods(core) == []


def test_a_permissive_mesh_caught_by_the_before_hypothesis_exits_non_zero(
    lab: Path, custom: Any, kit_holds: None, kit_restored: None, tmp_path: Path
) -> None:
    """allow-nothing removed, helloworld-v1's ALLOW widened to the namespace and its L4
    policy removed: sleep-v2 -> helloworld-v1 is allowed before any fault. The
    before-hypothesis finds it: the method never runs, the journal is deviated, and
    ``chaos run`` exits 1."""
    custom.delete_namespaced_custom_object(
        "security.istio.io", "v1", NS, "authorizationpolicies", "allow-nothing"
    )
    wide = {"spec": {"rules": [{"from": [{"source": {"namespaces": [NS]}}]}]}}
    custom.patch_namespaced_custom_object(
        "security.istio.io", "v1", NS, "authorizationpolicies", "helloworld-v1", wide
    )
    custom.delete_namespaced_custom_object(
        "cilium.io", "v2", NS, "ciliumnetworkpolicies", "helloworld-v1"
    )

    def open_now() -> bool:
        result = matrix.identity_matrix(matrix="wrong-identity", sources="sleep-v2")
        return _open_cells(result) == [CELL]

    eventually(open_now, 150, "the permissive mesh to let sleep-v2 reach helloworld-v1")
    run = chaos_run(EXPERIMENTS / "wrong-identity.json", lab, tmp_path / "journal.json")
    assert run["_exit_code"] == 1, run["_stderr"][-2000:]
    assert run["deviated"] is True and journal_status(run) == "deviated"
    [probe] = run["steady_states"]["before"]["probes"]
    assert run["steady_states"]["before"]["steady_state_met"] is False
    assert _open_cells(probe["output"]) == [CELL]
    assert run["run"] == [], "the method ran on a mesh that was not steady"
    (record,) = safety_net_records(run)
    assert record["fail_open_cells"] == 1


def test_an_api_error_leaves_no_body_header_or_token_in_the_journal(
    lab: Path, core: client.CoreV1Api, tmp_path: Path
) -> None:
    """smoke.json as a ServiceAccount with no rights: every probe gets the real API
    server's 403, whose body names the user and whose headers carry an Audit-Id."""
    journal = tmp_path / "journal.json"
    with service_account(lab, core, NS, tmp_path / "kubeconfig") as nobody:
        run = chaos_run(EXPERIMENTS / "smoke.json", nobody.kubeconfig, journal)
    assert run["_exit_code"] == 1
    failed = [p for p in run["steady_states"]["before"]["probes"] if p["status"] == "failed"]
    assert failed and all("403" in "".join(p["exception"]) for p in failed)
    text = journal.read_text()
    for leaked in (nobody.token, nobody.token[-20:], nobody.username, "Audit-Id", "forbidden:"):
        assert leaked not in text, f"{leaked[:30]!r} is in the journal"


def _open_cells(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["source"], c["destination"]) for c in result["cells"] if c["fail_open"]]


def _configuration(kubeconfig: Path) -> client.Configuration:
    loaded = client.Configuration()
    config.load_kube_config(str(kubeconfig), client_configuration=loaded)
    return loaded
