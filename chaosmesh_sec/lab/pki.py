"""The lab's own PKI: a CA, serving and client certificates, the ServiceAccount key.

Everything is generated at ``lab up`` under the state directory (keys 0600) and
removed by ``lab down``; nothing here is ever committed or logged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chaosmesh_sec.lab.topology import Topology

__all__ = ["CertPair", "LabPKI", "generate"]

_VALIDITY = dt.timedelta(days=7)


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class LabPKI:
    root: Path

    def pair(self, name: str) -> CertPair:
        return CertPair(self.root / f"{name}.crt", self.root / f"{name}.key")

    @property
    def ca(self) -> CertPair:
        return self.pair("ca")

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


@dataclass
class _Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        out: CertPair,
        cn: str,
        *,
        orgs: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, orgs))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(out.key, _key_pem(key))


def _new_ca(pki: LabPKI) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("chaosmesh-sec lab CA", ("chaosmesh-sec",))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pki.ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pki.ca.key, _key_pem(key))
    return _Issuer(cert, key)


def generate(root: Path, topo: Topology) -> LabPKI:
    """Write a fresh PKI for ``topo`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    pki = LabPKI(root)
    ca = _new_ca(pki)
    ca.issue(
        pki.pair("apiserver"),
        "kube-apiserver",
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", topo.apiserver_ip, topo.kubernetes_service_ip),
        server=True,
    )
    ca.issue(
        pki.pair("apiserver-kubelet-client"),
        "kube-apiserver-kubelet-client",
        orgs=("system:masters",),
        client=True,
    )
    ca.issue(pki.pair("admin"), "lab-admin", orgs=("system:masters",), client=True)
    ca.issue(pki.pair("kube-controller-manager"), "system:kube-controller-manager", client=True)
    ca.issue(pki.pair("kube-scheduler"), "system:kube-scheduler", client=True)
    for node in topo.nodes:
        ca.issue(
            pki.pair(node.name),
            f"system:node:{node.name}",
            orgs=("system:nodes",),
            client=True,
        )
        ca.issue(
            pki.pair(f"{node.name}-kubelet"),
            node.name,
            dns=(node.name,),
            ips=(node.ip,),
            server=True,
        )
    sa = ec.generate_private_key(ec.SECP256R1())
    _write_private(pki.sa_key, _key_pem(sa))
    pki.sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki
