"""What a node's CNI directories say, judged as a container runtime would read them (pure).

Private to :mod:`chaosmesh_sec.probes.cni_chain`. The runtime (through libcni) takes
the first file of ``/etc/cni/net.d`` by name among ``*.conf``, ``*.conflist`` and
``*.json``; a ``.conf`` is a single plugin, a ``.conflist`` a chain. Every plugin
of the chain must have its binary in ``/opt/cni/bin`` and support the config's
``cniVersion`` (as its ``CNI_COMMAND=VERSION`` answer says): otherwise no pod can
start on the node (seed 003: ``plugin galaxy-sdn does not support config version
"0.3.1"``).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONFIG_SUFFIXES",
    "Finding",
    "NodeCniFiles",
    "assess",
    "listing_script",
    "parse_listing",
    "parse_versions",
    "plugin_types",
    "version_script",
]

CONFIG_SUFFIXES = (".conf", ".conflist", ".json")
FILE_MARK, BIN_MARK, VERSION_MARK = "==cms:file:", "==cms:bin:", "==cms:version:"


@dataclass(frozen=True)
class Finding:
    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass
class NodeCniFiles:
    """The files and binaries found on one node."""

    files: dict[str, str] = field(default_factory=dict)
    binaries: set[str] = field(default_factory=set)

    @property
    def configs(self) -> list[str]:
        return sorted(n for n in self.files if n.endswith(CONFIG_SUFFIXES))

    def active(self) -> tuple[str, dict[str, Any] | None, str]:
        """``(name, parsed, error)`` of the config the runtime uses; name "" if none."""
        if not self.configs:
            return "", None, ""
        name = self.configs[0]
        try:
            parsed = json.loads(self.files[name])
        except ValueError as exc:
            return name, None, f"not JSON: {exc}"
        if not isinstance(parsed, dict):
            return name, None, "not a JSON object"
        return name, parsed, ""


def listing_script(net_dir: str, bin_dir: str) -> str:
    """A shell script printing the CNI configs of ``net_dir`` (``*.conf``, ``*.conflist``,
    ``*.json`` only: the directory also holds istio-cni's kubeconfig, with its token) and
    the names in ``bin_dir``."""
    globs = " ".join(f"{net_dir}/*{suffix}" for suffix in CONFIG_SUFFIXES)
    return (
        f'for f in {globs}; do [ -f "$f" ] || continue; '
        f'echo "{FILE_MARK}$(basename "$f")"; head -c 65536 "$f"; echo; done; '
        f'for b in {bin_dir}/*; do [ -f "$b" ] && echo "{BIN_MARK}$(basename "$b")"; done; true'
    )


def parse_listing(out: str) -> NodeCniFiles:
    found = NodeCniFiles()
    current: list[str] | None = None
    name = ""
    for line in out.splitlines():
        if line.startswith(FILE_MARK):
            if current is not None:
                found.files[name] = "\n".join(current)
            name, current = line[len(FILE_MARK) :], []
        elif line.startswith(BIN_MARK):
            found.binaries.add(line[len(BIN_MARK) :])
        elif current is not None:
            current.append(line)
    if current is not None:
        found.files[name] = "\n".join(current)
    return found


def plugin_types(conf: dict[str, Any]) -> list[str]:
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    if not isinstance(plugins, list):
        return []
    return [str(p.get("type", "")) for p in plugins if isinstance(p, dict)]


PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def safe_plugin(name: str) -> bool:
    """A plugin type that can name a file in the bin dir (the config is node data, not ours)."""
    return bool(PLUGIN_NAME.fullmatch(name))


def version_script(bin_dir: str, version: str, types: list[str]) -> str:
    """Ask each plugin binary which config versions it supports (CNI ``VERSION``).

    Types and the version come from the node's config file: they are quoted, and a
    type that could not be a file name is skipped.
    """
    request = shlex.quote(json.dumps({"cniVersion": version}))
    lines = [
        f"echo {shlex.quote(VERSION_MARK + t)}; printf '%s' {request} | "
        f"CNI_COMMAND=VERSION {shlex.quote(f'{bin_dir}/{t}')} 2>&1; echo"
        for t in types
        if safe_plugin(t)
    ]
    return "; ".join([*lines, "true"])


def parse_versions(out: str) -> dict[str, list[str] | str]:
    """Per plugin type, its supported versions, or what it said instead."""
    answers: dict[str, list[str] | str] = {}
    kind, body = "", list[str]()
    for line in [*out.splitlines(), VERSION_MARK]:
        if line.startswith(VERSION_MARK):
            if kind:
                text = "\n".join(body).strip()
                try:
                    answers[kind] = [str(v) for v in json.loads(text)["supportedVersions"]]
                except (ValueError, KeyError, TypeError):
                    answers[kind] = text[:300] or "no answer"
            kind, body = line[len(VERSION_MARK) :], []
        else:
            body.append(line)
    return answers


def _network_name(text: str) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        return ""
    return str(parsed.get("name", "")) if isinstance(parsed, dict) else ""


def assess(
    found: NodeCniFiles,
    versions: dict[str, list[str] | str],
    plugin: str,
    expect_plugin: bool,
    agent_ready: bool,
) -> tuple[dict[str, Any], list[Finding]]:
    """The node's CNI facts and what is wrong with them."""
    name, conf, error = found.active()
    facts: dict[str, Any] = {
        "active_config": name,
        "config_files": found.configs,
        "cni_version": "",
        "plugins": [],
        "has_plugin": False,
        "supported_versions": versions,
    }
    findings: list[Finding] = []
    if not name:
        return facts, [Finding("no_config", "no CNI config: no pod can get a network here")]
    if conf is None:
        return facts, [Finding("unreadable_config", f"{name}: {error}")]
    version = str(conf.get("cniVersion", ""))
    types = plugin_types(conf)
    facts.update(cni_version=version, plugins=types, has_plugin=plugin in types)
    for kind in types:
        answer = versions.get(kind)
        if not safe_plugin(kind):
            findings.append(Finding("unreadable_config", f"{name}: plugin type {kind!r}"))
        elif kind not in found.binaries:
            findings.append(
                Finding("plugin_binary_missing", f"{name}: plugin {kind!r} is not in the bin dir")
            )
        elif isinstance(answer, list) and version not in answer:
            findings.append(
                Finding(
                    "unsupported_cni_version",
                    f"{name}: cniVersion {version!r} is not supported by plugin {kind!r} "
                    f"(it supports {', '.join(answer)}): pods on this node cannot start",
                )
            )
        elif isinstance(answer, str):
            findings.append(Finding("plugin_version_unknown", f"{kind}: {answer}"))
    if expect_plugin and plugin not in types:
        findings.append(
            Finding(
                "plugin_missing",
                f"{name}: {plugin!r} is not in the chain: pods started now get no redirection",
            )
        )
    if plugin in types and not agent_ready:
        findings.append(
            Finding(
                "stale_plugin",
                f"{name}: {plugin!r} is chained but no Ready agent runs on the node "
                "(an uninstall that left it behind?)",
            )
        )
    network = str(conf.get("name", ""))
    for other in found.configs[1:]:
        if network and _network_name(found.files[other]) == network:
            findings.append(
                Finding(
                    "leftover_config",
                    f"{other} also defines network {network!r} (shadowed by {name}): "
                    "the half of a conversion an uninstall left behind",
                )
            )
    return facts, findings
