"""Control-plane probes validate every input before any API call.

No cluster is involved: the ``no_cluster`` fixture makes building a client or
sending a request fail the test, so each case proves the probe stopped first.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaosmesh_sec.errors import ChaosMeshSecError, InvalidInput
from chaosmesh_sec.probes import control_plane


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"min_ready": -1}, "min_ready"),
        ({"min_ready": "2"}, "min_ready"),
        ({"min_ready": True}, "min_ready"),
        ({"namespace": "Istio_System"}, "namespace"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "x" * 64}, "namespace"),
        ({"label_selector": ""}, "label_selector"),
        ({"label_selector": "app=istiod,,"}, "label_selector"),
        ({"label_selector": "app in (istiod"}, "label_selector"),
    ],
)
def test_istiod_replicas_ready_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        control_plane.istiod_replicas_ready(**kwargs)
    assert info.value.name == bad_input
    assert bad_input in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"namespace": "Default"}, "namespace"),
        ({"namespace": 7}, "namespace"),
        ({"configmap": "Istio-CA"}, "configmap"),
        ({"configmap": ""}, "configmap"),
        ({"configmap": "a" * 254}, "configmap"),
    ],
)
def test_root_cert_published_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        control_plane.root_cert_published(**kwargs)
    assert info.value.name == bad_input


def test_invalid_input_is_an_activity_failure() -> None:
    """The runtime records our errors as failed activities, not crashes."""
    from chaoslib.exceptions import ActivityFailed

    assert issubclass(InvalidInput, ChaosMeshSecError)
    assert issubclass(ChaosMeshSecError, ActivityFailed)


@pytest.mark.parametrize(
    "selector", ["app=istiod", "app=istiod,rev!=canary", "app in (istiod, pilot)", "!legacy"]
)
def test_valid_selectors_pass_validation(no_cluster: None, selector: str) -> None:
    """Valid inputs get past validation and reach the (refused) client factory."""
    with pytest.raises(pytest.fail.Exception, match="Kubernetes API was reached"):
        control_plane.istiod_replicas_ready(label_selector=selector)


def test_cert_facts_are_public_and_match_the_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")])
    now = datetime.now(UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    facts = control_plane._cert_facts(cert)
    assert facts["fingerprint_sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert facts["subject"] == "O=cluster.local"
    assert facts["not_after"] == (now + timedelta(days=1)).isoformat()
    assert "PRIVATE" not in repr(facts) and "BEGIN" not in repr(facts)
