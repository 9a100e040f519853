"""The lab's images: the real programs it runs for an image, placed where the image has them.

There is no container runtime, so no image is pulled. For each image whose programs
the lab has for real (built from their Go modules, or Envoy from its wheel), the lab
knows the files that image holds and its entrypoint, as the image's Dockerfile gives
them. The node agent binds those files at their paths in the container's private
mount namespace (:mod:`chaosmesh_sec.lab.agent.programs`), so a container runs what
it would run in a cluster: ``proxyv2`` with ``args: [proxy, sidecar]`` is
``/usr/local/bin/pilot-agent proxy sidecar``, which starts ``/usr/local/bin/envoy``
with the bootstrap template at ``/var/lib/istio/envoy/envoy_bootstrap_tmpl.json``,
and ``kubectl exec -c istio-proxy -- pilot-agent request GET certs`` finds it too.

``lab up`` writes the table to ``<state>/images.json`` (:func:`write`) for the node
agents (:func:`read`). Images not in it are run by a stand-in or only simulated
(see :mod:`chaosmesh_sec.lab.agent.programs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_sec.lab.build import Binaries

__all__ = ["BOOTSTRAP_TEMPLATE", "PILOT_AGENT", "Image", "lab_images", "read", "write"]

PILOT_AGENT = "/usr/local/bin/pilot-agent"  # the proxyv2 image's entrypoint
INSTALL_CNI = "/usr/local/bin/install-cni"  # the install-cni image's entrypoint
CNI_PLUGIN_SOURCE = "/opt/cni/bin/istio-cni"  # where that image keeps the plugin it installs

# Where the proxyv2 image keeps the Envoy bootstrap template pilot-agent fills in
# (pilot/docker/Dockerfile.proxyv2; pilot-agent looks for ./var/lib/... from WORKDIR /).
BOOTSTRAP_TEMPLATE = "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
BOOTSTRAP_SOURCE = "tools/packaging/common/envoy_bootstrap.json"  # in istio.io/istio


@dataclass(frozen=True)
class Image:
    """What one image holds that the lab has: its entrypoint and its files."""

    entrypoint: tuple[str, ...]
    files: dict[str, Path]  # path in the container -> the file on this machine

    def to_json(self) -> dict[str, object]:
        return {
            "entrypoint": list(self.entrypoint),
            "files": {target: str(source) for target, source in self.files.items()},
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> Image:
        entry = raw.get("entrypoint")
        files = raw.get("files")
        if not isinstance(entry, list) or not isinstance(files, dict):
            raise ValueError("an image needs an entrypoint list and a files map")
        return cls(tuple(map(str, entry)), {str(t): Path(str(s)) for t, s in files.items()})


def lab_images(bins: Binaries, istio_source: Path) -> dict[str, Image]:
    """The images the lab runs for real, by repository basename (pure but for paths).

    ``istio_source`` is the pinned ``istio.io/istio`` module's directory: the bootstrap
    template is read from there, never copied into the project.
    """
    return {
        # istio/proxyv2: pilot-agent starts Envoy (the wheel's upstream build).
        "proxyv2": Image(
            (PILOT_AGENT,),
            {
                PILOT_AGENT: bins["pilot-agent"],
                "/usr/local/bin/envoy": bins["envoy"],
                BOOTSTRAP_TEMPLATE: istio_source / BOOTSTRAP_SOURCE,
            },
        ),
        # istio/pilot: istiod.
        "pilot": Image(
            ("/usr/local/bin/pilot-discovery",),
            {"/usr/local/bin/pilot-discovery": bins["pilot-discovery"]},
        ),
        # istio/install-cni: the node agent (installer, repair controller) and the
        # plugin it copies from /opt/cni/bin to the node
        # (cni/deployments/kubernetes/Dockerfile.install-cni).
        "install-cni": Image(
            (INSTALL_CNI,),
            {INSTALL_CNI: bins["install-cni"], CNI_PLUGIN_SOURCE: bins["istio-cni"]},
        ),
        # mccutchen/go-httpbin: the image's CMD is /bin/go-httpbin.
        "go-httpbin": Image(("/bin/go-httpbin",), {"/bin/go-httpbin": bins["go-httpbin"]}),
    }


def write(images: dict[str, Image], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {name: image.to_json() for name, image in sorted(images.items())}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def read(path: Path) -> dict[str, Image]:
    """The table :func:`write` left; ValueError naming the file when it is malformed."""
    try:
        raw = json.loads(path.read_text())
        return {str(name): Image.from_json(image) for name, image in raw.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not the lab's image table: {exc}") from None
