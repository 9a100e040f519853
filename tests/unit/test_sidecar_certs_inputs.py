"""Proxy-certificate probes refuse bad input before any API call (``no_cluster``)."""

from __future__ import annotations

from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import sidecar_certs


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"namespace": "Default"}, "namespace"),
        ({"label_selector": "app in (x"}, "label_selector"),
        ({"container": "Istio_Proxy"}, "container"),
        ({"trust_domain": "a b"}, "trust_domain"),
        ({"min_valid_seconds": -1}, "min_valid_seconds"),
        ({"record_as": "Before"}, "record_as"),
    ],
)
def test_proxy_certificates_rejects(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        sidecar_certs.proxy_certificates(**kwargs)
    assert info.value.name == bad_input


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [({}, "compare_to"), ({"compare_to": "never-recorded"}, "compare_to")],
)
def test_certificate_rotation_needs_a_recorded_baseline(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        sidecar_certs.certificate_rotation(**kwargs)
    assert info.value.name == bad_input


def test_the_leaf_is_the_first_certificate_of_the_first_chain() -> None:
    certs = {
        "certificates": [
            {"cert_chain": [], "ca_cert": [{"serial_number": "ca"}]},
            {"cert_chain": [{"serial_number": "ab12"}, {"serial_number": "int"}]},
        ]
    }
    assert sidecar_certs._leaf(certs) == {"serial_number": "ab12"}
    assert sidecar_certs._leaf({"certificates": []}) is None
