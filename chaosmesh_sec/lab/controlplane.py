"""Command lines of the real control plane: etcd, kube-apiserver, controller-manager, scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from chaosmesh_sec.lab.build import Binaries
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.pki import LabPKI
from chaosmesh_sec.lab.topology import Topology

__all__ = ["AUDIT_POLICY", "ProcessSpec", "control_plane"]

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIT_POLICY = """\
# The lab API server's audit policy: every request that can change something (any verb
# but get, list and watch), at Metadata level (who, what, when, the response code; never
# a request or response body), once it is answered. Tests read it to show that a run
# made no write (tests/audit.py).
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Metadata
"""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    cmd: tuple[str, ...]
    netns: str = ""


def _etcd(bins: Binaries, paths: LabPaths, topo: Topology) -> ProcessSpec:
    peer = f"http://127.0.0.1:{topo.etcd_peer_port}"
    return ProcessSpec(
        "etcd",
        (
            str(bins["etcd"]),
            "--name=lab",
            f"--data-dir={paths.etcd_data}",
            f"--listen-client-urls={topo.etcd_url}",
            f"--advertise-client-urls={topo.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lab={peer}",
            "--unsafe-no-fsync=true",  # a throwaway lab store: durability buys nothing
            "--log-level=warn",
        ),
    )


def _apiserver(bins: Binaries, paths: LabPaths, pki: LabPKI, topo: Topology) -> ProcessSpec:
    server = pki.pair("apiserver")
    kubelet_client = pki.pair("apiserver-kubelet-client")
    return ProcessSpec(
        "kube-apiserver",
        (
            str(bins["kube-apiserver"]),
            f"--advertise-address={topo.apiserver_ip}",
            f"--bind-address={topo.apiserver_ip}",
            f"--secure-port={topo.apiserver_port}",
            f"--etcd-servers={topo.etcd_url}",
            f"--tls-cert-file={server.cert}",
            f"--tls-private-key-file={server.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--authorization-mode=Node,RBAC",
            f"--service-cluster-ip-range={topo.service_cidr}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            f"--kubelet-certificate-authority={pki.ca.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            # a webhook's Service is resolved to its endpoints (istiod's injector, at
            # its pod's IP: the host routes to the pods, it has no ClusterIP routing)
            "--enable-aggregator-routing=true",
            "--profiling=false",
            f"--audit-policy-file={paths.audit_policy}",
            f"--audit-log-path={paths.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=100",  # MB, then one older file is kept
            "--audit-log-maxbackup=1",
            "--v=1",
        ),
    )


def _component(
    name: str, bins: Binaries, paths: LabPaths, port: int, extra: tuple[str, ...]
) -> ProcessSpec:
    kubeconfig = paths.kubeconfig(name)
    return ProcessSpec(
        name,
        (
            str(bins[name]),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
            "--profiling=false",
            *extra,
        ),
    )


def control_plane(
    bins: Binaries, paths: LabPaths, pki: LabPKI, topo: Topology
) -> tuple[ProcessSpec, ...]:
    """The control-plane processes, in start order."""
    kcm_extra = (
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca.cert}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        f"--service-cluster-ip-range={topo.service_cidr}",
        "--node-monitor-grace-period=40s",
    )
    return (
        _etcd(bins, paths, topo),
        _apiserver(bins, paths, pki, topo),
        _component("kube-controller-manager", bins, paths, 10257, kcm_extra),
        _component("kube-scheduler", bins, paths, 10259, ()),
    )
