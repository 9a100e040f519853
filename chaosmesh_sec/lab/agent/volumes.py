"""Materialise a pod's volumes into files under the pod's directory, and its
containers' ``envFrom`` into variables.

Supported: projected (serviceAccountToken, configMap, secret, downwardAPI metadata),
configMap, secret, downwardAPI (metadata fields, labels and annotations), emptyDir,
hostPath. Tokens come from the TokenRequest API, bound
to the pod, with the audience the pod asked for.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

__all__ = ["Mount", "env_from", "materialise"]

logger = logging.getLogger("chaostoolkit")


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def _write(path: Path, data: bytes) -> None:
    """A volume's file, mode 0644 as a kubelet writes it when no defaultMode is given
    (a non-root container such as the sidecar, uid 1337, must read its token). Secrets
    stay out of other users' reach by the pod directory's own mode (0700)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _items(data: dict[str, bytes], items: list[Any] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item.path: data[item.key] for item in items if item.key in data}


class _Materialiser:
    def __init__(self, core: client.CoreV1Api, pod: Any) -> None:
        self.core = core
        self.pod = pod
        self.ns = pod.metadata.namespace

    def configmap(self, name: str, optional: bool) -> dict[str, bytes] | None:
        try:
            cm = self.core.read_namespaced_config_map(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404 and optional:
                return None
            raise
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return data

    def secret(self, name: str, optional: bool) -> dict[str, bytes] | None:
        try:
            sec = self.core.read_namespaced_secret(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404 and optional:
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (sec.data or {}).items()}

    def token(self, audience: str | None, seconds: int | None) -> bytes:
        spec = client.V1TokenRequestSpec(
            audiences=[audience] if audience else [],
            expiration_seconds=max(seconds or 3600, 600),
            bound_object_ref=client.V1BoundObjectReference(
                kind="Pod", api_version="v1", name=self.pod.metadata.name, uid=self.pod.metadata.uid
            ),
        )
        sa = self.pod.spec.service_account_name or "default"
        resp: Any = self.core.create_namespaced_service_account_token(
            sa, self.ns, client.AuthenticationV1TokenRequest(spec=spec)
        )
        return str(resp.status.token).encode()

    def projected(self, sources: list[Any]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for src in sources:
            if src.service_account_token is not None:
                sat = src.service_account_token
                files[sat.path] = self.token(sat.audience, sat.expiration_seconds)
            elif src.config_map is not None:
                data = self.configmap(src.config_map.name, bool(src.config_map.optional)) or {}
                for path, value in _items(data, src.config_map.items).items():
                    files[path] = value
            elif src.secret is not None:
                data = self.secret(src.secret.name, bool(src.secret.optional)) or {}
                for path, value in _items(data, src.secret.items).items():
                    files[path] = value
            elif src.downward_api is not None:
                files.update(self.downward(src.downward_api.items or []))
        return files

    def downward(self, items: list[Any]) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for item in items:
            if item.field_ref is not None:
                files[item.path] = _field(self.pod, item.field_ref.field_path).encode()
        return files


def _pairs(mapping: dict[str, str] | None) -> str:
    """Labels or annotations as a kubelet writes them in a downwardAPI file."""
    return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted((mapping or {}).items()))


def _field(pod: Any, path: str) -> str:
    if path in ("metadata.labels", "metadata.annotations"):
        return _pairs(pod.metadata.labels if path.endswith("labels") else pod.metadata.annotations)
    fields = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name or "default",
        "status.podIP": pod.status.pod_ip,
        "status.hostIP": pod.status.host_ip,
    }
    return str(fields.get(path) or "")


def field_value(pod: Any, path: str) -> str:
    """The value of a downward-API field path for ``pod`` ("" when unsupported)."""
    return _field(pod, path)


# The kernel's own filesystems: every lab node is this machine's kernel (a node is a
# network namespace), so a hostPath of these is the machine's, read-only as mounted.
KERNEL_PATHS = ("/proc", "/sys")


def host_path(path: str, node_root: Path) -> Path:
    """Where a hostPath volume's ``path`` is on the node (created when missing)."""
    if path.rstrip("/") in KERNEL_PATHS:
        return Path(path)
    host = node_root / path.lstrip("/")
    host.mkdir(parents=True, exist_ok=True)
    return host


def materialise(
    core: client.CoreV1Api, pod: Any, pod_dir: Path, node_root: Path
) -> dict[str, Path]:
    """Write every volume of ``pod`` under ``pod_dir/volumes``; return name -> directory.

    A hostPath is a directory under ``node_root``, the node's own filesystem (lab nodes
    share the machine's, and a pod must not write to it), but for the kernel's
    ``/proc`` and ``/sys`` (:func:`host_path`).
    """
    m = _Materialiser(core, pod)
    out: dict[str, Path] = {}
    for vol in pod.spec.volumes or []:
        target = pod_dir / "volumes" / vol.name
        target.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {}
        if vol.projected is not None:
            files = m.projected(vol.projected.sources or [])
        elif vol.config_map is not None:
            data = m.configmap(vol.config_map.name, bool(vol.config_map.optional)) or {}
            files = _items(data, vol.config_map.items)
        elif vol.secret is not None:
            data = m.secret(vol.secret.secret_name, bool(vol.secret.optional)) or {}
            files = _items(data, vol.secret.items)
        elif vol.downward_api is not None:
            files = m.downward(vol.downward_api.items or [])
        elif vol.host_path is not None:
            out[vol.name] = host_path(vol.host_path.path, node_root)
            continue
        elif vol.empty_dir is not None:
            target.chmod(0o777)  # as a kubelet makes it: any container's user writes there
        else:
            logger.warning("lab: volume %s of %s: unsupported type", vol.name, pod.metadata.name)
        for rel, value in files.items():
            _write(target / rel, value)
        out[vol.name] = target
    return out


def env_from(core: client.CoreV1Api, pod: Any, container: Any) -> dict[str, str]:
    """``container``'s ``envFrom``: every key of each ConfigMap and Secret, with its
    prefix, later sources over earlier ones (a kubelet puts ``env`` over these)."""
    m = _Materialiser(core, pod)
    out: dict[str, str] = {}
    for source in container.env_from or []:
        data: dict[str, bytes] | None = None
        if source.config_map_ref is not None:
            ref = source.config_map_ref
            data = m.configmap(ref.name, bool(ref.optional))
        elif source.secret_ref is not None:
            data = m.secret(source.secret_ref.name, bool(source.secret_ref.optional))
        for key, value in (data or {}).items():
            out[f"{source.prefix or ''}{key}"] = value.decode(errors="replace")
    return out
