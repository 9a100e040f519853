"""The node agent's reconcile loop: watch the node's pods, run them, clean up after them."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab import inspect, network
from chaosmesh_sec.lab.agent import kwokres, podstatus, volumes
from chaosmesh_sec.lab.agent.cni import ChainResult, CniError, NodeCni, PodRef
from chaosmesh_sec.lab.agent.crilog import CriLogPump
from chaosmesh_sec.lab.agent.runtime import ContainerProcess, start_container
from chaosmesh_sec.lab.agent.services import ServiceProxy
from chaosmesh_sec.lab.images import Image
from chaosmesh_sec.lab.topology import Node, Topology

__all__ = ["NodeAgent"]

logger = logging.getLogger("chaostoolkit")

PRIMARY_CONFLIST = "10-cmslab.conflist"
RESTART_BACKOFF = 2.0
PROBE_PERIOD = 2.0
PROBE_TIMEOUT = 1  # a probe's timeoutSeconds when it gives none, as in the kubelet
PROBE_WORKERS = 16
SANDBOX_RETRY = 10.0
# At most, for the pods being torn down to free the IP a new pod got (an ADD in
# flight is cancelled, so this bounds a DEL or a plugin that ignores the kill).
RELEASE_WAIT = 45.0
INIT_BACKOFF = (5.0, 10.0, 20.0, 40.0)
CNI_PLUGINS = ("ptp", "host-local")


@dataclass
class PodState:
    uid: str
    namespace: str
    name: str
    pod_dir: Path
    netns: str
    pod_ip: str = ""
    probe_failures: int = 0
    processes: dict[str, ContainerProcess] = field(default_factory=dict)
    pumps: list[CriLogPump] = field(default_factory=list)
    gone: bool = False
    sandbox: subprocess.Popen[bytes] | None = None
    chain: ChainResult | None = None  # what its CNI ADD went through, for the DEL
    host_network: bool = False
    setting_up: bool = True  # its worker is still making the sandbox and starting it
    worker: threading.Thread | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)  # deleted meanwhile

    @property
    def ref(self) -> PodRef:
        return PodRef(self.namespace, self.name, self.uid)


class NodeAgent:
    def __init__(
        self,
        node: Node,
        topo: Topology,
        api: client.ApiClient,
        pods_root: Path,
        images: dict[str, Image],
        node_root: Path,
        cni_bin_dir: Path,
    ) -> None:
        self.node = node
        self.topo = topo
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.pods_root = pods_root
        self.images = images
        self.node_root = node_root
        self.cni_bin_dir = cni_bin_dir
        self.cni = NodeCni(node_root)
        # pod uid -> (when to try again, namespace, name)
        self.sandbox_failures: dict[str, tuple[float, str, str]] = {}
        self.services = ServiceProxy(api, self._hosts_files)
        self.pods: dict[str, PodState] = {}
        self.lock = threading.RLock()
        # pod IP -> the teardowns still freeing it (a recycled IP may have several)
        self.releasing: dict[str, list[threading.Thread]] = {}
        self.releasing_lock = threading.Lock()
        self.base_env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "KUBERNETES_SERVICE_HOST": topo.kubernetes_service_ip,
            "KUBERNETES_SERVICE_PORT": "443",
            # Service names live in each pod's /etc/hosts (agent.services), not in DNS:
            # gRPC's own resolver (c-ares) would ask a DNS server; getaddrinfo reads hosts.
            "GRPC_DNS_RESOLVER": "native",
        }
        marker = os.environ.get("CHAOSMESH_LAB")
        if marker:
            self.base_env["CHAOSMESH_LAB"] = marker

    # -- the loop ---------------------------------------------------------------
    def run_forever(self) -> None:
        self._write_primary_cni_config()
        self.services.start()
        threading.Thread(target=self._probe_loop, name="readiness", daemon=True).start()
        selector = f"spec.nodeName={self.node.name}"
        while True:
            try:
                listed: Any = self.core.list_pod_for_all_namespaces(field_selector=selector)
                seen = {p.metadata.uid for p in listed.items}
                for pod in listed.items:
                    self._reconcile(pod)
                for uid in set(self.pods) - seen:
                    self._teardown(uid)
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=300,
                )
                for event in stream:
                    pod = event["object"]
                    if event["type"] == "DELETED":
                        self._teardown(pod.metadata.uid)
                    else:
                        self._reconcile(pod)
            except Exception as exc:  # noqa: BLE001 - the API may be unreachable (a partition)
                logger.warning("lab agent %s: watch interrupted: %s", self.node.name, exc)
                time.sleep(2)

    def _readdress(self, state: PodState, pod_ip: str) -> None:
        try:
            network.readdress_pod_netns(state.uid, state.pod_ip, pod_ip)
        except Exception:
            logger.exception(
                "lab agent %s: could not move %s to %s", self.node.name, state.name, pod_ip
            )
            return
        state.pod_ip = pod_ip
        self.services.write_hosts(state.pod_dir / "hosts", state.namespace, state.name, pod_ip)

    def _hosts_files(self) -> list[tuple[Path, str, str, str]]:
        with self.lock:
            return [
                (st.pod_dir / "hosts", st.namespace, st.name, st.pod_ip)
                for st in self.pods.values()
                if st.netns
            ]

    def _write_primary_cni_config(self) -> None:
        """The node's own CNI conflist and plugins (what a cluster's primary CNI installs).

        The plugins are copied in when missing; the conflist is written once. The
        real install-cni (istio-cni-node) chains its plugin into it.
        """
        self.cni.bin_dir.mkdir(parents=True, exist_ok=True)
        for plugin in CNI_PLUGINS:
            if not (self.cni.bin_dir / plugin).exists():
                shutil.copy2(self.cni_bin_dir / plugin, self.cni.bin_dir / plugin)
        net_dir = self.cni.net_dir
        net_dir.mkdir(parents=True, exist_ok=True)
        conflist = net_dir / PRIMARY_CONFLIST
        if conflist.exists():
            return
        conf = {
            "cniVersion": "1.0.0",
            "name": "cmslab",
            "plugins": [
                {
                    "type": "ptp",
                    "ipam": {"type": "host-local", "subnet": self.node.pod_cidr},
                }
            ],
        }
        conflist.write_text(json.dumps(conf, indent=2) + "\n")

    def _reconcile(self, pod: Any) -> None:
        with self.lock:  # the watch and the sandbox retries both come here
            self._reconcile_locked(pod)

    def _reconcile_locked(self, pod: Any) -> None:
        uid = pod.metadata.uid
        if pod.metadata.deletion_timestamp is not None:
            self._teardown(uid)
            self.sandbox_failures.pop(uid, None)
            return
        state = self.pods.get(uid)
        if state is not None:
            if state.netns and pod.status.pod_ip and pod.status.pod_ip != state.pod_ip:
                self._readdress(state, pod.status.pod_ip)
            return
        if not pod.status.pod_ip:
            return
        if pod.status.phase in ("Succeeded", "Failed"):
            return
        if time.monotonic() < self.sandbox_failures.get(uid, (0.0, "", ""))[0]:
            return
        meta = pod.metadata
        pod_dir = self.pods_root / f"{meta.namespace}_{meta.name}_{meta.uid[:8]}"
        state = PodState(uid, meta.namespace, meta.name, pod_dir, "", pod.status.pod_ip)
        state.host_network = bool(pod.spec.host_network)
        # One worker per pod, as a kubelet's pod workers: a sandbox that takes long (a
        # CNI ADD for a pod deleted meanwhile waits 30 s) holds up only its own pod.
        state.worker = threading.Thread(
            target=self._pod_worker, args=(state, pod), name=f"pod-{meta.name}"
        )
        self.pods[uid] = state
        state.worker.start()

    # -- pod setup / teardown ---------------------------------------------------
    def _pod_worker(self, state: PodState, pod: Any) -> None:
        try:
            if self._sandbox(state, pod) and not state.gone:
                self._setup(state, pod)
        except Exception:
            logger.exception("lab agent %s: could not start pod %s", self.node.name, state.name)
        finally:
            with self.lock:
                state.setting_up = False
                gone = state.gone
            if gone:  # deleted while this worker ran: _teardown left the stop to it
                self._stop_pod(state)

    def _sandbox(self, state: PodState, pod: Any) -> bool:
        """The pod's network namespace, through the node's CNI chain. False when the pod
        is gone from the API or the sandbox failed (it is tried again later)."""
        if not pod.spec.host_network and self._gone_from_api(pod):
            self._forget(state)
            return False
        state.pod_dir.mkdir(parents=True, exist_ok=True)
        state.pod_dir.chmod(0o700)  # its tokens and secrets are 0644 files, as a kubelet's
        if pod.spec.host_network:
            return True
        self._wait_released(state.pod_ip)
        # A failed sandbox is retried, as a kubelet does: e.g. an IP whose previous pod
        # is still being torn down on this node.
        netns = ""
        try:
            netns = network.create_pod_netns(self.node, state.uid, state.pod_ip)
            state.chain = self.cni.setup(state.ref, netns, state.pod_ip, state.cancelled)
        except (CniError, LabError) as exc:
            network.delete_pod_netns(state.uid)
            self._sandbox_failed(state, pod, str(exc))
            return False
        state.netns = netns
        logger.info(
            "lab agent %s: %s/%s network by %s (%s)",
            self.node.name,
            state.namespace,
            state.name,
            state.chain.conflist,
            " -> ".join(state.chain.types),
        )
        return True

    def _forget(self, state: PodState) -> None:
        with self.lock:
            if self.pods.get(state.uid) is state:
                del self.pods[state.uid]

    def _setup(self, state: PodState, pod: Any) -> None:
        meta = pod.metadata
        (state.pod_dir / "netns").write_text(state.netns)
        if state.netns:  # the pod's sandbox ("pause"): a process that holds the namespace
            state.sandbox = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{state.netns}", "--", "sleep", "infinity"],
                env={
                    **self.base_env,
                    "CMSLAB_POD_UID": meta.uid,
                    "CMSLAB_CONTAINER": inspect.SANDBOX,
                },
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            # the pod's names for Services (hostNetwork pods use the node's)
            self.services.write_hosts(
                state.pod_dir / "hosts", meta.namespace, meta.name, state.pod_ip
            )
        with self.lock:
            retried = self.sandbox_failures.pop(meta.uid, None) is not None
        # A probed pod starts not Ready (the lab's kwok stage); _probe_loop sets it Ready.
        vols = volumes.materialise(self.core, pod, state.pod_dir, self.node_root)
        # exec / logs / port-forward first: a container may cut this node off the API
        # server as soon as it runs (the partition fault pod does, by design)
        kwokres.ensure(self.custom, pod, state.pod_dir)
        if retried and not pod.spec.init_containers:  # it was Pending until now
            self._patch_status(pod, podstatus.running(pod, time.time(), {}))
        if pod.spec.init_containers:
            self._initialise(state, pod, vols)
        else:
            self._start_all(state, pod, vols)

    def _gone_from_api(self, pod: Any) -> bool:
        """Was ``pod`` deleted since the watch delivered it? A kubelet's pod worker
        creates no sandbox for a pod its informer saw deleted; the pod's worker here asks
        once before the CNI step, which would wait 30 s on a pod that no longer exists
        (the istio-cni plugin retries reading it). When the API cannot say, the set-up
        goes on."""
        meta = pod.metadata
        try:
            now: Any = self.core.read_namespaced_pod(meta.name, meta.namespace)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        except Exception:  # noqa: BLE001 - e.g. the node is cut off: the CNI step will say
            return False
        return bool(now.metadata.uid != meta.uid or now.metadata.deletion_timestamp)

    def _start_all(self, state: PodState, pod: Any, vols: dict[str, Path]) -> None:
        for container in pod.spec.containers:
            self._start(state, pod, container, vols)
        logger.info("lab agent %s: pod %s/%s set up", self.node.name, state.namespace, state.name)

    def _sandbox_failed(self, state: PodState, pod: Any, message: str) -> None:
        """Report FailedCreatePodSandBox (event and status) and try again later."""
        with self.lock:
            gone = self.pods.get(state.uid) is not state
            if not gone:
                del self.pods[state.uid]
                retry = time.monotonic() + SANDBOX_RETRY
                self.sandbox_failures[state.uid] = (retry, state.namespace, state.name)
        if gone:  # deleted meanwhile: nothing to report, nothing to retry
            logger.info(
                "lab agent %s: %s/%s gone: %s", self.node.name, state.namespace, state.name, message
            )
            return
        logger.warning(
            "lab agent %s: %s/%s sandbox failed: %s",
            self.node.name,
            state.namespace,
            state.name,
            message,
        )
        self._event(pod, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {message}")
        self._patch_status(pod, podstatus.sandbox_failed(pod, message))

    def _event(self, pod: Any, reason: str, message: str) -> None:
        meta = pod.metadata
        now = podstatus.stamp()
        body: Any = {
            "metadata": {"generateName": f"{meta.name}.", "namespace": meta.namespace},
            "involvedObject": {
                "kind": "Pod",
                "name": meta.name,
                "namespace": meta.namespace,
                "uid": meta.uid,
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning",
            "source": {"component": "kubelet", "host": self.node.name},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta.namespace, body)
        except Exception as exc:  # noqa: BLE001 - events are best effort, as a kubelet's
            logger.warning("lab agent %s: could not record event: %s", self.node.name, exc)

    def _patch_status(self, pod: Any, body: dict[str, Any]) -> None:
        try:
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
        except Exception as exc:  # noqa: BLE001 - e.g. partitioned; the pod keeps its last status
            logger.warning("lab agent %s: could not report status: %s", self.node.name, exc)

    def _initialise(self, state: PodState, pod: Any, vols: dict[str, Path]) -> None:
        """Run the init containers in order, each until it exits 0, then the containers."""
        restarts: dict[str, int] = {}
        last: dict[str, dict[str, Any]] = {}  # each one's failed run before its last
        began = time.time()
        for container in pod.spec.init_containers:
            while not state.gone:
                started = time.time()
                code = self._run_to_exit(state, pod, container, vols)
                if code == 0 or state.gone:
                    break
                restarts[container.name] = restarts.get(container.name, 0) + 1
                tail = _log_tail(state.pod_dir / "logs" / f"{container.name}.log")
                logger.info(
                    "lab agent %s: %s/%s init container %s exited %d",
                    self.node.name,
                    state.namespace,
                    state.name,
                    container.name,
                    code,
                )
                last[container.name] = podstatus.ended(code, started, tail)
                self._patch_status(
                    pod,
                    podstatus.init_failed(
                        pod, container.name, code, started, restarts[container.name], tail
                    ),
                )
                backoff = INIT_BACKOFF[min(restarts[container.name], len(INIT_BACKOFF)) - 1]
                deadline = time.monotonic() + backoff
                while not state.gone and time.monotonic() < deadline:
                    time.sleep(0.5)
        if state.gone:
            return
        self._patch_status(pod, podstatus.running(pod, began, restarts, last))
        self._start_all(state, pod, vols)

    def _run_to_exit(self, state: PodState, pod: Any, container: Any, vols: dict[str, Path]) -> int:
        done = threading.Event()
        codes: list[int] = []

        def on_exit(_cp: ContainerProcess, code: int) -> None:
            codes.append(code)
            done.set()

        cp = self._launch(state, pod, container, vols, on_exit)
        if cp is None:  # nothing the lab runs for it: it completes
            return 0
        state.processes[container.name] = cp
        while not done.wait(0.5):
            if state.gone:
                cp.stop()
                return -1
        state.processes.pop(container.name, None)
        return codes[0]

    def _launch(
        self,
        state: PodState,
        pod: Any,
        container: Any,
        vols: dict[str, Path],
        on_exit: Callable[[ContainerProcess, int], None],
    ) -> ContainerProcess | None:
        """Start one container (its directory first: the exec shim finds its pid there)."""
        (state.pod_dir / "containers" / container.name).mkdir(parents=True, exist_ok=True)
        return start_container(
            pod,
            container,
            netns=state.netns,
            volumes=vols,
            pod_dir=state.pod_dir,
            images=self.images,
            base_env={**self.base_env, **volumes.env_from(self.core, pod, container)},
            on_exit=on_exit,
        )

    def _start(self, state: PodState, pod: Any, container: Any, vols: dict[str, Path]) -> None:
        cdir = state.pod_dir / "containers" / container.name

        def on_exit(cp: ContainerProcess, code: int) -> None:
            self._exited(state, pod, container, vols, cp, code)

        cp = self._launch(state, pod, container, vols, on_exit)
        raw = state.pod_dir / "logs" / f"{container.name}.log"
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.touch()
        if cp is not None:  # its start script writes cdir/pid once its mounts are up
            state.processes[container.name] = cp
        else:
            (cdir / "simulated").touch()
        if all(p.name != container.name for p in state.pumps):  # once, across restarts
            pump = CriLogPump(container.name, raw, raw.with_suffix(".cri.log"))
            pump.start()
            state.pumps.append(pump)

    def _exited(
        self,
        state: PodState,
        pod: Any,
        container: Any,
        vols: dict[str, Path],
        cp: ContainerProcess,
        code: int,
    ) -> None:
        if cp.stopping or state.gone:
            return
        policy = pod.spec.restart_policy or "Always"
        logger.info(
            "lab agent %s: %s/%s container %s exited %d (restartPolicy %s)",
            self.node.name,
            state.namespace,
            state.name,
            container.name,
            code,
            policy,
        )
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            time.sleep(RESTART_BACKOFF)
            if not state.gone:
                self._start(state, pod, container, vols)
            return
        self._patch_status(pod, podstatus.terminated(pod, container.name, code, cp.started_at))

    def _teardown(self, uid: str) -> None:
        """Stop a pod and free its network in the background, as a kubelet's pod worker
        does: the pods set up meanwhile do not wait behind it (a round of the IP hunt
        deletes every hunter pod at once). A new pod given its IP waits for it."""
        with self.lock:
            state = self.pods.pop(uid, None)
            if state is None:
                return
            state.gone = True
            if state.setting_up and state.worker is not None:  # its worker stops it
                state.cancelled.set()  # a CNI ADD in flight ends now, as a kubelet's
                worker = state.worker
            else:
                worker = threading.Thread(
                    target=self._stop_pod, args=(state,), name=f"teardown-{state.name}"
                )
            with self.releasing_lock:
                if state.pod_ip and not state.host_network:
                    self.releasing.setdefault(state.pod_ip, []).append(worker)
            if worker is not state.worker:
                worker.start()

    def _wait_released(self, pod_ip: str) -> None:
        """Wait until no pod being torn down still holds ``pod_ip`` (its route, its veth)."""
        with self.releasing_lock:
            workers = list(self.releasing.get(pod_ip, []))
        deadline = time.monotonic() + RELEASE_WAIT
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))

    def _stop_pod(self, state: PodState) -> None:
        try:
            self._stop_pod_now(state)
        finally:
            with self.releasing_lock:
                left = [
                    w
                    for w in self.releasing.get(state.pod_ip, [])
                    if w is not threading.current_thread()
                ]
                if left:
                    self.releasing[state.pod_ip] = left
                else:
                    self.releasing.pop(state.pod_ip, None)

    def _stop_pod_now(self, state: PodState) -> None:
        if state.sandbox is not None:
            state.sandbox.kill()
            state.sandbox.wait(timeout=5)
        for cp in list(state.processes.values()):  # an init thread may change it
            cp.stop()
        for pump in state.pumps:
            pump.stop()
        if state.netns and state.chain is not None:
            for failure in self.cni.teardown(state.chain, state.ref, state.netns):
                logger.warning("lab agent %s: %s: %s", self.node.name, state.name, failure)
        if state.netns:
            network.delete_pod_netns(state.uid)
        shutil.rmtree(state.pod_dir, ignore_errors=True)
        logger.info(
            "lab agent %s: pod %s/%s torn down", self.node.name, state.namespace, state.name
        )

    # -- readiness --------------------------------------------------------------
    def _retry_sandboxes(self) -> None:
        """Pods whose sandbox failed are set up again once their wait is over."""
        now = time.monotonic()
        for uid, (when, namespace, name) in list(self.sandbox_failures.items()):
            if when > now:
                continue
            self.sandbox_failures[uid] = (0.0, namespace, name)
            try:
                pod: Any = self.core.read_namespaced_pod(name, namespace)
            except client.ApiException as exc:
                if exc.status == 404:
                    self.sandbox_failures.pop(uid, None)
                    continue
                raise
            if pod.metadata.uid != uid:
                self.sandbox_failures.pop(uid, None)
                continue
            self._reconcile(pod)

    def _probe_loop(self) -> None:
        # As a kubelet does (a probe worker per pod), the pods are probed side by side:
        # one that does not answer (starting, or being torn down) costs its own probe's
        # timeout, not every other pod's readiness on the node.
        with ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="probe") as pool:
            while True:
                time.sleep(PROBE_PERIOD)
                try:
                    self._retry_sandboxes()
                except Exception as exc:  # noqa: BLE001 - the API may be unreachable
                    logger.debug("lab agent: sandbox retry failed: %s", exc)
                with self.lock:
                    states = list(self.pods.values())
                list(pool.map(self._probe_quietly, states))

    def _probe_quietly(self, state: PodState) -> None:
        try:
            self._probe(state)
        except Exception as exc:  # noqa: BLE001 - the next period tries again
            logger.debug("lab agent: probe of %s failed: %s", state.name, exc)

    def _probe(self, state: PodState) -> None:
        pod: Any = self.core.read_namespaced_pod(state.name, state.namespace)
        probes = [
            c.readiness_probe
            for c in pod.spec.containers
            if c.readiness_probe is not None and c.readiness_probe.http_get is not None
        ]
        if not probes or pod.status.phase != "Running":
            return
        passed = all(
            _http_ok(
                pod.status.pod_ip,
                p.http_get.port,
                p.http_get.path or "/",
                p.timeout_seconds or PROBE_TIMEOUT,
            )
            for p in probes
        )
        # As a kubelet: Ready after one success, not Ready after failureThreshold
        # failures in a row (3 unless the probe says otherwise).
        state.probe_failures = 0 if passed else state.probe_failures + 1
        threshold = min(
            (c.readiness_probe.failure_threshold or 3)
            for c in pod.spec.containers
            if c.readiness_probe is not None and c.readiness_probe.http_get is not None
        )
        current = _condition_true(pod, "Ready")
        ready = passed or (current and state.probe_failures < threshold)
        # Compare with the pod as the API has it, not with what this agent last wrote:
        # the node lifecycle controller sets Ready=False on the pods of a NotReady node,
        # and a kubelet sets it back once it reports again.
        if ready != current:
            self._set_ready(pod, ready)

    def _set_ready(self, pod: Any, ready: bool) -> None:
        status = "True" if ready else "False"
        containers = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": c.image_id or "",
                "ready": ready,
                "restartCount": c.restart_count or 0,
                "started": True,
                "state": self.core.api_client.sanitize_for_serialization(c.state),
            }
            for c in pod.status.container_statuses or []
        ]
        body: dict[str, Any] = {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": status},
                    {"type": "ContainersReady", "status": status},
                ]
            }
        }
        if containers:
            body["status"]["containerStatuses"] = containers
        self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)


def _condition_true(pod: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in pod.status.conditions or [])


def _http_ok(ip: str, port: int | str, path: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=timeout) as resp:
            return bool(200 <= resp.status < 400)
    except Exception:  # noqa: BLE001
        return False


def _log_tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return text[-limit:].splitlines()[-1] if text else ""
