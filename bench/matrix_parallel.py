"""Benchmark the identity-matrix probe: a 10 x 10 matrix, in parallel vs a sequential loop.

    KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig .venv/bin/python bench/matrix_parallel.py

Deploys, in a namespace of its own, 10 client workloads (curl) and 10 helloworld
workloads with a Service each (no sidecars, no policy: every cell is a real HTTP
request that is allowed), writes their 10 x 10 matrix, then times the probe
(`identity_matrix`, parallel 8 and 16) against the same 100 requests exec'd one after
the other, as a shell loop of `kubectl exec` would. Deletes the namespace at the end.
Needs a running lab. Prints JSON; asserts nothing.
"""

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from kubernetes import client, config

from chaosmesh_sec._kube import exec_in_pod
from chaosmesh_sec.probes import _matrix_evidence, _matrix_spec
from chaosmesh_sec.probes.matrix import identity_matrix

NS = "bench-matrix"
N = 10
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def deploy(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    for i in range(N):
        for role, image, cmd in (
            ("src", "docker.io/curlimages/curl:8.11.1", ["/bin/sleep", "infinity"]),
            ("dst", "docker.io/istio/examples-helloworld-v1:1.0", None),
        ):
            name, labels = f"{role}-{i}", {"app": f"{role}-{i}"}
            container = client.V1Container(name=role, image=image, command=cmd)
            apps.create_namespaced_deployment(
                NS,
                client.V1Deployment(
                    metadata=client.V1ObjectMeta(name=name),
                    spec=client.V1DeploymentSpec(
                        replicas=1,
                        selector=client.V1LabelSelector(match_labels=labels),
                        template=client.V1PodTemplateSpec(
                            metadata=client.V1ObjectMeta(labels=labels),
                            spec=client.V1PodSpec(containers=[container]),
                        ),
                    ),
                ),
            )
            if role == "dst":
                core.create_namespaced_service(
                    NS,
                    client.V1Service(
                        metadata=client.V1ObjectMeta(name=name),
                        spec=client.V1ServiceSpec(
                            selector=labels, ports=[client.V1ServicePort(port=5000)]
                        ),
                    ),
                )


def matrix_file() -> Path:
    doc = {
        "name": "bench-10x10",
        "timeout_seconds": 5,
        "sources": {f"src-{i}": {"namespace": NS, "selector": f"app=src-{i}"} for i in range(N)},
        "destinations": {f"dst-{i}": {"url": f"http://dst-{i}.{NS}:5000/hello"} for i in range(N)},
        "default": "allowed",
    }
    path = Path(tempfile.mkdtemp()) / "bench.matrix.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def sequential(core: client.CoreV1Api, path: Path) -> float:
    parsed = _matrix_spec.parse_matrix(path.read_text())
    pods = {
        s.name: core.list_namespaced_pod(NS, label_selector=s.selector).items[0]
        for s in parsed.sources
    }
    started = time.perf_counter()
    for cell in parsed.cells():
        out, err = exec_in_pod(core.api_client.configuration, pods[cell.source.name], None,
                               cell.command(), 20)  # fmt: skip
        evidence = _matrix_evidence.parse_curl_output(out, err)
        assert _matrix_evidence.classify(evidence) == "allowed", (cell.id, evidence)
    return time.perf_counter() - started


def main() -> None:
    api = config.new_client_from_config()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    deploy(core, apps)
    try:
        path = matrix_file()
        deadline = time.monotonic() + 180  # warm: every pod Ready, every Service served
        while not identity_matrix(matrix=str(path), wait_seconds=120)["holds"]:
            assert time.monotonic() < deadline, "the bench workloads never all answered"
            time.sleep(2)
        out: dict[str, list[float]] = {"sequential": [], "parallel_8": [], "parallel_16": []}
        for _ in range(ROUNDS):
            out["sequential"].append(sequential(core, path))
            for bound in (8, 16):
                result = identity_matrix(matrix=str(path), parallel=bound)
                assert result["holds"], result["cells"]
                out[f"parallel_{bound}"].append(result["seconds"])
        print(json.dumps({k: {"median_s": round(statistics.median(v), 2),
                              "runs": [round(x, 2) for x in v]} for k, v in out.items()},
                         indent=2))  # fmt: skip
    finally:
        core.delete_namespace(NS)


if __name__ == "__main__":
    main()
