"""The lab API server's audit log: its policy logs every write, no read, no body."""

from pathlib import Path

import yaml

from chaosmesh_sec.lab.build import Binaries
from chaosmesh_sec.lab.controlplane import AUDIT_POLICY, control_plane
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.pki import LabPKI
from chaosmesh_sec.lab.topology import DEFAULT


def test_the_policy_logs_writes_at_metadata_level_and_no_read() -> None:
    policy = yaml.safe_load(AUDIT_POLICY)
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    first, last = policy["rules"]
    assert first == {"level": "None", "verbs": ["get", "list", "watch"]}
    assert last == {"level": "Metadata"}  # never Request / RequestResponse: no body logged
    assert policy["omitStages"] == ["RequestReceived"]


def test_the_api_server_is_started_with_the_policy_and_the_log(tmp_path: Path) -> None:
    paths = LabPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    bins = Binaries({name: tmp_path / name for name in names})
    specs = {s.name: s for s in control_plane(bins, paths, LabPKI(paths.pki), DEFAULT)}
    cmd = specs["kube-apiserver"].cmd
    assert f"--audit-policy-file={paths.audit_policy}" in cmd
    assert f"--audit-log-path={paths.audit_log}" in cmd
    assert "--audit-log-format=json" in cmd
    assert paths.audit_log.parent == paths.logs
