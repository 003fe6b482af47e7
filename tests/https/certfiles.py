"""Self-signed certificates for the HTTPS tests."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_self_signed(folder: Path, names: list[str], stem: str = "server") -> tuple[Path, Path, x509.Certificate]:
    """Write a self-signed certificate for ``names`` and its key; return both paths and the certificate.

    The certificate is its own CA, so a client can trust exactly it with ``cafile``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    # Distinct subjects per stem, because OpenSSL finds a trusted issuer by its subject name.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"interactsh test {stem} certificate")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{stem}-cert.pem", folder / f"{stem}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, certificate
