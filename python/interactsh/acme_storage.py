"""Files of the ACME client: the account key and the issued certificate.

Layout under ``-acme-dir``, one folder per ACME server because an account
belongs to one server::

    <acme-dir>/<server>/account-key.pem                  account key (EC P-256, mode 0600)
    <acme-dir>/<server>/<first domain>/certificate.pem   leaf and intermediates
    <acme-dir>/<server>/<first domain>/private-key.pem   certificate key (mode 0600)

Every file is written to a temporary name and renamed into place, so a reader
never sees a half-written file. The key is renamed before the certificate: a
crash between the two leaves a pair that does not match, which
:meth:`AcmeStorage.read_certificate` rejects, so the next start orders a new
certificate instead of serving a broken one.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWKEC

from interactsh.errors import AcmeError

ACCOUNT_KEY_NAME = "account-key.pem"
CERTIFICATE_NAME = "certificate.pem"
PRIVATE_KEY_NAME = "private-key.pem"
UNSAFE_PATH_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate file and its key file, with the facts the renewal decision needs."""

    certificate_path: Path
    private_key_path: Path
    names: frozenset[str]
    not_after: datetime.datetime
    serial: int

    def covers(self, names: list[str]) -> bool:
        """Tell whether every name is among the certificate's DNS names, compared without case."""
        return {name.lower() for name in names} <= self.names

    def remaining(self, now: datetime.datetime | None = None) -> datetime.timedelta:
        """Return the time left until the certificate expires (negative once expired)."""
        return self.not_after - (now or datetime.datetime.now(datetime.UTC))


def server_folder_name(directory_url: str) -> str:
    """Return a folder name for an ACME server: its host, port and path with unsafe characters replaced."""
    parts = urlsplit(directory_url)
    host = parts.hostname or "server"
    port = f"_{parts.port}" if parts.port else ""
    path = parts.path.strip("/")
    name = f"{host}{port}-{path}" if path else f"{host}{port}"
    return UNSAFE_PATH_CHARACTERS.sub("_", name)


class AcmeStorage:
    """The files of one ACME server and one set of domains."""

    def __init__(self, root: Path, directory_url: str, primary_domain: str) -> None:
        self.folder = root.expanduser() / server_folder_name(directory_url)
        self.account_key_path = self.folder / ACCOUNT_KEY_NAME
        certificate_folder = self.folder / UNSAFE_PATH_CHARACTERS.sub("_", primary_domain.lower().rstrip("."))
        self.certificate_path = certificate_folder / CERTIFICATE_NAME
        self.private_key_path = certificate_folder / PRIVATE_KEY_NAME

    def account_key(self) -> JWKEC:
        """Return the stored account key, creating and storing a new one when there is none.

        Raises :class:`AcmeError` when the file cannot be read, parsed or written.
        """
        path = self.account_key_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(path, _private_pem(key))
            return JWKEC(key=key)
        except OSError as error:
            raise AcmeError(
                f"could not read the ACME account key {str(path)!r}: {error.strerror}; "
                "check the folder given with -acme-dir"
            ) from None
        try:
            loaded = serialization.load_pem_private_key(data, password=None)
        except ValueError as error:
            raise AcmeError(
                f"the ACME account key {str(path)!r} is not a PEM private key ({error}); "
                "remove the file to create a new account"
            ) from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
            raise AcmeError(
                f"the ACME account key {str(path)!r} is not an EC P-256 key; remove the file to create a new account"
            )
        return JWKEC(key=loaded)

    def read_certificate(self) -> StoredCertificate | None:
        """Return the stored certificate, or ``None`` when it is missing, unreadable or does not match its key."""
        try:
            chain = self.certificate_path.read_bytes()
            key_data = self.private_key_path.read_bytes()
        except OSError:
            return None
        try:
            leaf = x509.load_pem_x509_certificates(chain)[0]
            key = serialization.load_pem_private_key(key_data, password=None)
        except ValueError:
            return None
        if key.public_key() != leaf.public_key():
            return None
        return StoredCertificate(
            self.certificate_path,
            self.private_key_path,
            certificate_names(leaf),
            leaf.not_valid_after_utc,
            leaf.serial_number,
        )

    def write_certificate(self, fullchain_pem: bytes, private_key_pem: bytes) -> StoredCertificate:
        """Store a newly issued certificate and its key; raise :class:`AcmeError` when that fails."""
        try:
            leaf = x509.load_pem_x509_certificates(fullchain_pem)[0]
        except ValueError as error:
            raise AcmeError(f"the ACME server returned a certificate chain that is not valid PEM: {error}") from None
        _write_private(self.private_key_path, private_key_pem)
        _write_file(self.certificate_path, fullchain_pem, 0o644)
        return StoredCertificate(
            self.certificate_path,
            self.private_key_path,
            certificate_names(leaf),
            leaf.not_valid_after_utc,
            leaf.serial_number,
        )


def certificate_names(certificate: x509.Certificate) -> frozenset[str]:
    """Return the lower-case DNS names of a certificate's subjectAltName extension."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(name.lower() for name in extension.value.get_values_for_type(x509.DNSName))


def new_private_key_pem() -> bytes:
    """Return a new EC P-256 certificate key as unencrypted PKCS#8 PEM."""
    return _private_pem(ec.generate_private_key(ec.SECP256R1()))


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    _write_file(path, data, 0o600)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise AcmeError(
            f"could not create {str(path)!r}: {error.strerror}; choose a writable folder with -acme-dir"
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise AcmeError(
            f"could not write {str(path)!r}: {error.strerror}; choose a writable folder with -acme-dir"
        ) from None
