"""The only place that builds Kubernetes API clients.

Where the cluster is, first match wins:

1. ``kubeconfig_path`` in the activity's ``secrets``, then in ``configuration``;
2. the ``KUBECONFIG`` environment variable (a ``:``-separated list is merged, as kubectl does);
3. ``~/.kube/config`` when it exists;
4. the in-cluster ServiceAccount (when running in a pod).

``kubernetes_context`` (secrets, then configuration) picks a kubeconfig context;
without it the kubeconfig's current context is used. An empty string counts as
not given, so an experiment can default ``{"type": "env", "key": "KUBECONFIG"}``
to ``""``.

TLS verification of the API server is always on. A kubeconfig whose cluster sets
``insecure-skip-tls-verify: true`` is refused (:class:`InvalidInput`): give the
cluster's ``certificate-authority`` / ``certificate-authority-data`` instead. So is a
server that is not ``https://`` (a token would cross the network in the clear), before
any request is sent.
Nothing here logs a token or a client key.
"""

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3.exceptions
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from chaosmesh_sec.errors import ApiError, ChaosMeshSecError, ClusterUnreachable, InvalidInput

__all__ = [
    "api_client",
    "api_errors",
    "apps_v1",
    "core_v1",
    "custom_objects",
    "discovery_v1",
    "exception_brief",
]

logger = logging.getLogger("chaostoolkit")

_DEFAULT_KUBECONFIG = Path("~/.kube/config")


def _setting(
    key: str, configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """Return ``(where, value)`` for ``key`` from secrets then configuration; "" is unset."""
    for where, source in (("secrets", secrets), ("configuration", configuration)):
        if source is None or key not in source:
            continue
        value = source[key]
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{where}.{key}", f"must be a string, got {type(value).__name__}")
        return f"{where}.{key}", value
    return None


def _kubeconfig(
    configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """Return ``(where, path)`` of the kubeconfig to use, or None for in-cluster config."""
    explicit = _setting("kubeconfig_path", configuration, secrets)
    if explicit is not None:
        where, value = explicit
        path = Path(value).expanduser()
        if not path.is_file():
            raise InvalidInput(where, f"kubeconfig file {str(path)!r} does not exist")
        return where, str(path)
    env = os.environ.get("KUBECONFIG", "")
    if env:
        paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        if not any(p.is_file() for p in paths):
            raise InvalidInput("KUBECONFIG", f"no kubeconfig file found at {env!r}")
        return "KUBECONFIG", env
    default = _DEFAULT_KUBECONFIG.expanduser()
    if default.is_file():
        return "~/.kube/config", str(default)
    return None


def api_client(
    configuration: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> k8s.ApiClient:
    """Build an API client from the activity's configuration and secrets (see module doc)."""
    context_setting = _setting("kubernetes_context", configuration, secrets)
    context = context_setting[1] if context_setting else None
    found = _kubeconfig(configuration, secrets)
    cfg = k8s.Configuration()
    if found is None:
        if context is not None:
            raise InvalidInput(
                context_setting[0] if context_setting else "kubernetes_context",
                "a context was given but no kubeconfig was found "
                "(set kubeconfig_path or KUBECONFIG)",
            )
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise ClusterUnreachable(
                "no Kubernetes config: set kubeconfig_path (configuration or secrets) "
                f"or KUBECONFIG, or run in a pod ({exc})"
            ) from exc
        if urlsplit(str(cfg.host)).scheme != "https":
            raise ClusterUnreachable(f"in-cluster API server {cfg.host!r} is not https://")
        logger.debug("Kubernetes API %s (in-cluster ServiceAccount)", cfg.host)
        return k8s.ApiClient(configuration=cfg)

    where, path = found
    try:
        k8s_config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except ConfigException as exc:
        if context is not None and "context" in str(exc).lower():
            name = context_setting[0] if context_setting else "kubernetes_context"
            raise InvalidInput(name, f"context {context!r} not usable in {path!r}: {exc}") from exc
        raise InvalidInput(where, f"kubeconfig {path!r} is not usable: {exc}") from exc
    except (OSError, ValueError, yaml.YAMLError, TypeError, AttributeError, KeyError) as exc:
        # unreadable file, not YAML, or YAML that is not shaped like a kubeconfig
        raise InvalidInput(where, f"kubeconfig {path!r} could not be read: {exc}") from exc
    if urlsplit(str(cfg.host)).scheme != "https":
        raise InvalidInput(
            where,
            f"kubeconfig {path!r}: the API server {str(cfg.host)!r} is not https://; this pack "
            "only speaks TLS to the API server (a token would cross the network in the clear)",
        )
    if not cfg.verify_ssl:
        raise InvalidInput(
            where,
            f"kubeconfig {path!r} sets insecure-skip-tls-verify; this pack always verifies the "
            "API server's certificate: give certificate-authority(-data) instead",
        )
    logger.debug("Kubernetes API %s (kubeconfig %s, context %s)", cfg.host, path, context)
    return k8s.ApiClient(configuration=cfg)


def core_v1(
    configuration: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> k8s.CoreV1Api:
    """``CoreV1Api`` (pods, configmaps, services, ServiceAccount tokens)."""
    return k8s.CoreV1Api(api_client(configuration, secrets))


def apps_v1(
    configuration: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> k8s.AppsV1Api:
    """``AppsV1Api`` (deployments, daemonsets, replicasets)."""
    return k8s.AppsV1Api(api_client(configuration, secrets))


def discovery_v1(
    configuration: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> k8s.DiscoveryV1Api:
    """``DiscoveryV1Api`` (EndpointSlices)."""
    return k8s.DiscoveryV1Api(api_client(configuration, secrets))


def custom_objects(
    configuration: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> k8s.CustomObjectsApi:
    """``CustomObjectsApi`` (Istio resources such as AuthorizationPolicy)."""
    return k8s.CustomObjectsApi(api_client(configuration, secrets))


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Turn Kubernetes client failures inside the block into the pack's exceptions.

    ``what`` says what was being done ("list istiod pods in istio-system"). Connection
    failures and rejected credentials become :class:`ClusterUnreachable`; any other
    API error an :class:`ApiError` with the status and reason as attributes. Neither is
    chained to the client's exception (``from None``): its text holds the response's
    headers and body, which may echo request data, and chaoslib writes the whole chain
    into the journal. 404s the caller expects must be handled inside.
    """
    try:
        yield
    except ApiException as exc:
        status, reason = exc.status, str(exc.reason or "")
        if status == 401:
            raise ClusterUnreachable(f"{what}: the API server rejected the credentials") from None
        raise ApiError(f"{what}: API error {status} {reason}", status, reason) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterUnreachable(
            f"{what}: cannot reach the API server{_server_of(exc)} ({_cause_of(exc)})"
        ) from None


def _server_of(exc: BaseException) -> str:
    """ " at https://host:port" when the failure names the server it tried."""
    pool = getattr(exc, "pool", None)
    host, port = getattr(pool, "host", None), getattr(pool, "port", None)
    if not host:
        return ""
    return f" at {getattr(pool, 'scheme', 'https')}://{host}{f':{port}' if port else ''}"


def _cause_of(exc: BaseException) -> str:
    """The innermost reason (urllib3 wraps the socket error in two layers of retries)."""
    reason = getattr(exc, "reason", None)
    return str(reason) if reason is not None else str(exc)


def exception_brief(exc: BaseException) -> str:
    """An exception as one line, without an API response's body or headers."""
    if isinstance(exc, ApiException):
        return f"API error {exc.status} {exc.reason}"
    if isinstance(exc, ChaosMeshSecError):
        return str(exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:300]}"
