"""istiod's sidecar injection in the lab: its config, from the pinned chart, and its webhook.

A namespace labelled ``istio-injection=enabled`` gets real injected sidecars: the API
server calls istiod's injection webhook (``/inject`` on 15017, reached at the pod's
IP: the API server runs with ``--enable-aggregator-routing``, which resolves a
webhook's Service to its endpoints, and the host routes to every node's pod range).
istiod renders the injection template of the pinned istio-discovery chart with its
default values, as the chart's ``istio-sidecar-injector`` ConfigMap holds them, and
patches the webhook's CA bundle with its own root itself.

Two of the chart's defaults are set for the lab: ``pilot.cni.enabled`` (the lab
chains istio-cni, so pods get the ``istio-validation`` init container, not
``istio-init``), and the images' hub and tag (``docker.io/istio``, the pinned
release). istiod itself runs with ``ENABLE_NATIVE_SIDECARS=false`` (see
``manifests/istiod.yaml``): the lab's node agent runs init containers to completion,
one after the other, and has no native sidecars (an init container with
``restartPolicy: Always``).

Nothing of the chart is copied into the project: the template and values are read
from the module cache at ``lab up`` (:func:`injector_configmap`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_sec.lab.components import ISTIO_VERSION

__all__ = ["CHART", "injector_configmap"]

CHART = "manifests/charts/istio-control/istio-discovery"
HUB = "docker.io/istio"


def injector_configmap(istio_source: Path) -> dict[str, Any]:
    """The ``istio-system/istio-sidecar-injector`` ConfigMap, as the chart renders it
    with its defaults and the lab's two settings (pure but for reading the chart)."""
    chart = istio_source / CHART
    defaults = yaml.safe_load((chart / "values.yaml").read_text())["_internal_defaults_do_not_set"]
    global_values = {**defaults["global"], "hub": HUB, "tag": ISTIO_VERSION}
    webhook = defaults["sidecarInjectorWebhook"]
    gateways = defaults.get("gateways", {})
    gateway_security = ("securityContext", "seccompProfile")
    values = {
        "global": global_values,
        "sidecarInjectorWebhook": webhook,
        "revision": defaults.get("revision", ""),
        "pilot": {"cni": {**defaults["cni"], "enabled": True}, "env": defaults.get("env", {})},
        "gateways": {k: gateways[k] for k in gateway_security if k in gateways},
    }
    config = {
        "defaultTemplates": webhook.get("defaultTemplates") or ["sidecar"],
        "policy": global_values["proxy"]["autoInject"],
        "alwaysInjectSelector": webhook.get("alwaysInjectSelector") or [],
        "neverInjectSelector": webhook.get("neverInjectSelector") or [],
        "injectedAnnotations": webhook.get("injectedAnnotations") or {},
        "templates": {"sidecar": (chart / "files/injection-template.yaml").read_text()},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "istio-sidecar-injector",
            "namespace": "istio-system",
            "labels": {"istio.io/rev": "default", "app.kubernetes.io/name": "istiod"},
        },
        "data": {"values": json.dumps(values, indent=2), "config": yaml.safe_dump(config)},
    }
