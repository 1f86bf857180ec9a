"""Certificates for TLS tests: a test CA and the server and client certificates it signs."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


Signer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def server_certificates() -> tuple[Signer, dict[str, bytes]]:
    """A test CA (to sign more with) and PEM files by name: ``ca.crt``, ``server.crt`` and
    ``server.key`` (a certificate it signs for "localhost" only, so verify-full to 127.0.0.1
    must fail on the name), and ``rogue.crt``, an unrelated CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("warden test CA", ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate("localhost", server_key, (ca, ca_key), [x509.DNSName("localhost")])
    rogue = certificate("rogue CA", ec.generate_private_key(ec.SECP256R1()))
    pems = {"ca.crt": pem(ca), "server.crt": pem(server), "rogue.crt": pem(rogue)}
    pems["server.key"] = pem_key(server_key)
    return (ca, ca_key), pems
