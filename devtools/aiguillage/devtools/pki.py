"""The throw-away PKI of the local control plane: a CA, two certificates and a signing key.

`aiguillage.devtools.controlplane.ControlPlane` calls `write_credentials` once per start, into
its temporary directory. The files written there are what kube-apiserver's flags point at
(``--client-ca-file``, ``--tls-cert-file``, ``--service-account-key-file``...) and what the
admin kubeconfig of `aiguillage.devtools.kubeclient` embeds:

* ``ca.crt`` / ``ca.key``: a self-signed EC P-256 CA, ``CN=aiguillage-dev-ca``;
* ``apiserver.crt`` / ``apiserver.key``: kube-apiserver's serving certificate, for
  ``localhost``, the in-cluster ``kubernetes.default.svc...`` names and the given IPs;
* ``admin.crt`` / ``admin.key``: a client certificate whose CN and O Kubernetes reads as the
  user name and group;
* ``sa.key`` / ``sa.pub``: an RSA key pair for signing and verifying service-account tokens.

`issue_client_certificate` adds more client certificates signed by the same CA: the local node
(`aiguillage.devtools.node`) issues one per component (kubelet as ``system:node:<name>``,
controller-manager, scheduler, kube-proxy, and kube-apiserver's own client for kubelets).

Everything is valid from an hour ago (tolerating clock skew) for a year. Private keys are
unencrypted PKCS#8 PEM written with mode 0600; nothing here is meant to outlive the control
plane's temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_CERT",
    "ADMIN_KEY",
    "CA_CERT",
    "CA_KEY",
    "SA_KEY",
    "SA_PUB",
    "SERVING_CERT",
    "SERVING_KEY",
    "issue_client_certificate",
    "write_credentials",
    "write_file",
]

# File names inside the work directory.
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVING_CERT = "apiserver.crt"
SERVING_KEY = "apiserver.key"
ADMIN_CERT = "admin.crt"
ADMIN_KEY = "admin.key"
SA_KEY = "sa.key"
SA_PUB = "sa.pub"

_CA_NAME = "aiguillage-dev-ca"
_SERVING_NAME = "kube-apiserver"
_SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def write_credentials(
    workdir: Path,
    *,
    admin_user: str,
    admin_group: str,
    serving_ips: Sequence[_IPAddress],
) -> None:
    """Generate the CA, the serving and admin certificates and the SA keys into ``workdir``.

    ``serving_ips`` are the IP subject alternative names of kube-apiserver's certificate (after
    its DNS names); ``admin_user`` and ``admin_group`` become the admin certificate's CN and O.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    not_before, not_after = _validity()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_file(workdir / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM))
    write_file(workdir / CA_KEY, _private_pem(ca_key), private=True)

    _issue(
        workdir,
        SERVING_CERT,
        SERVING_KEY,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _SERVING_NAME)]),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[
            *(x509.DNSName(name) for name in _SERVING_DNS_NAMES),
            *(x509.IPAddress(ip) for ip in serving_ips),
        ],
    )
    issue_client_certificate(
        workdir, ADMIN_CERT, ADMIN_KEY, common_name=admin_user, organization=admin_group
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_file(workdir / SA_KEY, _private_pem(sa_key), private=True)
    write_file(
        workdir / SA_PUB,
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def issue_client_certificate(
    workdir: Path,
    cert_name: str,
    key_name: str,
    *,
    common_name: str,
    organization: str | None = None,
) -> None:
    """Write a client certificate signed by the CA in ``workdir`` (after `write_credentials`).

    Kubernetes reads the CN as the user name and each O as a group, e.g.
    ``common_name="system:node:n1", organization="system:nodes"`` for a kubelet.
    """
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    _issue(
        workdir,
        cert_name,
        key_name,
        subject=x509.Name(attributes),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[],
    )


def _issue(
    workdir: Path,
    cert_name: str,
    key_name: str,
    *,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
) -> None:
    """Write a leaf certificate and its key, signed by ``workdir``'s CA, into ``workdir``."""
    ca_cert = x509.load_pem_x509_certificate((workdir / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((workdir / CA_KEY).read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_file(workdir / cert_name, cert.public_bytes(serialization.Encoding.PEM))
    write_file(workdir / key_name, _private_pem(key), private=True)


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    """From an hour ago (tolerating clock skew) for a year."""
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=365)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path``, created with mode 0600 when ``private``, else 0644."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _private_pem(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
