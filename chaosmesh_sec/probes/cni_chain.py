"""Probe: is each node's CNI chain whole: istio-cni chained, versions supported, no leftovers?

istio-cni in chained mode appends its plugin to the node's primary CNI config; pods
set up while it is missing get no traffic redirection, and a config whose
``cniVersion`` the primary plugin does not support stops every new pod on the node
(seed 003). The facts are on the node, so this probe reads them there, through a
short-lived inspection pod per node (:mod:`chaosmesh_sec.probes._node_pod`): the
config files, the plugin binaries, and each plugin's own answer to
``CNI_COMMAND=VERSION``. Whether the plugin's agent runs on the node comes from the
API. No ``from __future__ import annotations``: chaoslib reads the signature.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._run import FAULT_NAMESPACE
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, core_v1
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import _cni_files as files
from chaosmesh_sec.probes._node_pod import CNI_BIN_DIR, CNI_NET_DIR, DEFAULT_IMAGE, node_pod

__all__ = ["cni_chain_intact"]

logger = logging.getLogger("chaostoolkit")

PARALLEL_NODES = 4


def _nodes(value: Any) -> list[str]:
    if not isinstance(value, str):
        raise InvalidInput("nodes", f"must be a comma-separated string, got {type(value).__name__}")
    return value.split(",")


def _chain_inputs(
    nodes: Any,
    plugin: Any,
    expect_plugin: Any,
    agent_namespace: Any,
    agent_selector: Any,
    probe_namespace: Any,
    image: Any,
    tolerate_control_plane: Any,
) -> tuple[list[str], str, bool, str, str, str, str, bool]:
    """:func:`cni_chain_intact`'s input check (pure); `nodes` comes back as a list."""
    plugin = _validate.dns_subdomain("plugin", plugin)
    expect_plugin = _validate.boolean("expect_plugin", expect_plugin)
    agent_namespace = _validate.dns_label("agent_namespace", agent_namespace)
    agent_selector = _validate.label_selector("agent_selector", agent_selector)
    probe_namespace = _validate.dns_label("probe_namespace", probe_namespace)
    image = _validate.image("image", image, "sh")
    tolerate = _validate.boolean("tolerate_control_plane", tolerate_control_plane)
    wanted = [_validate.dns_subdomain("nodes", n.strip()) for n in _nodes(nodes) if n.strip()]
    return (
        wanted,
        plugin,
        expect_plugin,
        agent_namespace,
        agent_selector,
        probe_namespace,
        image,
        tolerate,
    )


@_validate.checks(_chain_inputs)
def cni_chain_intact(
    nodes: str = "",
    plugin: str = "istio-cni",
    expect_plugin: bool = True,
    agent_namespace: str = "istio-system",
    agent_selector: str = "k8s-app=istio-cni-node",
    probe_namespace: str = FAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    tolerate_control_plane: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Is the CNI chain on each node whole: `plugin` chained, its version supported, no leftovers?

    `nodes` is a comma-separated list (empty: every node). On each, an inspection pod
    in `probe_namespace` (image `image`: needs sh; hostNetwork, no token, tolerating
    the control-plane taints only when `tolerate_control_plane`) reads
    `/etc/cni/net.d` and `/opt/cni/bin`, mounted read-only.
    The active config is the first by name, as the runtime picks it.
    Findings per node: `no_config`, `unreadable_config`, `plugin_missing` (when
    `expect_plugin`), `plugin_binary_missing`, `unsupported_cni_version` (a plugin's
    own `CNI_COMMAND=VERSION` answer lacks the config's `cniVersion`),
    `plugin_version_unknown`, `stale_plugin` (chained, but no Ready pod matching
    `agent_selector` in `agent_namespace` on the node), `leftover_config` (another
    file defines the same network). Returns `{"holds", "findings": [{"node",
    "kind", "detail"}], "nodes": [{"node", "active_config", "config_files",
    "cni_version", "plugins", "has_plugin", "supported_versions", "agent_ready",
    "findings"}], "checked_at"}`. Tolerance: `$.holds`.
    """
    (
        wanted,
        plugin,
        expect_plugin,
        agent_namespace,
        agent_selector,
        probe_namespace,
        image,
        tolerate_control_plane,
    ) = _chain_inputs(
        nodes,
        plugin,
        expect_plugin,
        agent_namespace,
        agent_selector,
        probe_namespace,
        image,
        tolerate_control_plane,
    )
    core = core_v1(configuration, secrets)
    with api_errors("list nodes"):
        listed: Any = core.list_node()
    known = [str(n.metadata.name) for n in listed.items]
    for name in wanted:
        if name not in known:
            raise InvalidInput("nodes", f"no node {name!r}; the nodes are: {', '.join(known)}")
    _kube.require_namespace(core, probe_namespace, "probe_namespace")
    with api_errors(f"list pods {agent_selector} in {agent_namespace}"):
        agents: list[Any] = core.list_namespaced_pod(
            agent_namespace, label_selector=agent_selector
        ).items
    ready_on = {
        str(p.spec.node_name) for p in agents if _kube.pod_ready(p) and not _kube.pod_terminating(p)
    }
    targets = wanted or known
    config = core.api_client.configuration

    def one(node: str) -> dict[str, Any]:
        inspector = node_pod(
            core, config, node, probe_namespace, image, "cni-chain", tolerate_control_plane
        )
        with inspector as pod:
            found = files.parse_listing(pod.run(files.listing_script(CNI_NET_DIR, CNI_BIN_DIR)))
            _name, conf, _error = found.active()
            versions: dict[str, list[str] | str] = {}
            if conf is not None:
                types = [t for t in files.plugin_types(conf) if t in found.binaries]
                version = str(conf.get("cniVersion", ""))
                if types:
                    script = files.version_script(CNI_BIN_DIR, version, types)
                    versions = files.parse_versions(pod.run(script))
        facts, findings = files.assess(found, versions, plugin, expect_plugin, node in ready_on)
        return {
            "node": node,
            **facts,
            "agent_ready": node in ready_on,
            "findings": [f.as_dict() for f in findings],
        }

    with ThreadPoolExecutor(max_workers=PARALLEL_NODES) as pool:
        per_node = list(pool.map(one, targets))
    findings = [{"node": n["node"], **f} for n in per_node for f in n["findings"]]
    for f in findings:
        logger.info("cni chain: %s: %s: %s", f["node"], f["kind"], f["detail"])
    return {
        "holds": not findings,
        "findings": findings,
        "nodes": per_node,
        "checked_at": datetime.now(UTC).isoformat(),
    }
