"""The ACME decisions, options and files, without a CA."""

from __future__ import annotations

import asyncio
import datetime
import stat
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from interactsh.acme import CertificateManager, acme_settings, certificate_names, skip_reason
from interactsh.acme_order import MAX_POLL_DELAY, _retry_delay
from interactsh.acme_storage import AcmeStorage, StoredCertificate, server_folder_name
from interactsh.config import LETSENCRYPT_DIRECTORY, ServerConfig
from interactsh.errors import AcmeError
from interactsh.tls import TlsProvider

PEBBLE_URL = "https://127.0.0.1:14000/dir"


def make_certificate(names: list[str], days: float) -> tuple[bytes, bytes]:
    """Return a self-signed chain and key PEM for ``names``, valid for ``days`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(item) for item in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def test_certificate_names_per_domain() -> None:
    names = certificate_names(["OAST.test", "oast.test.", "second.example"])

    assert names == ["*.oast.test", "oast.test", "*.second.example", "second.example"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"cert": "c.pem", "privkey": "k.pem", "listen_ip": "0.0.0.0"}, "-cert and -privkey are given"),
        ({"skip_acme": True, "listen_ip": "0.0.0.0"}, "-skip-acme is set"),
        ({"listen_ip": "127.0.0.1"}, "-listen-ip 127.0.0.1 is a loopback address"),
        ({"listen_ip": "::1"}, "-listen-ip ::1 is a loopback address"),
        ({"listen_ip": "127.0.0.1", "acme_directory": PEBBLE_URL}, None),
        ({"listen_ip": "127.0.0.1", "acme_directory": "https://localhost:14000/dir"}, None),
        ({"listen_ip": "0.0.0.0"}, None),
        ({"listen_ip": "203.0.113.7"}, None),
    ],
    ids=["cert-files", "skip-flag", "loopback", "loopback-v6", "local-ca", "localhost-ca", "any", "public"],
)
def test_skip_reason(fields: dict[str, object], expected: str | None) -> None:
    reason = skip_reason(ServerConfig(**fields))  # type: ignore[arg-type]

    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(expected)


def test_embedded_defaults_skip_acme() -> None:
    config = ServerConfig()

    assert config.acme_directory == LETSENCRYPT_DIRECTORY
    assert skip_reason(config) is not None


def test_default_contact_email() -> None:
    assert acme_settings(ServerConfig(domains=["Oast.Example"])).email == "admin@oast.example"
    assert acme_settings(ServerConfig(acme_email="ops@example.com")).email == "ops@example.com"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cert": "c.pem"}, "-cert and -privkey must be given together"),
        ({"privkey": "k.pem"}, "-cert and -privkey must be given together"),
        ({"acme_directory": "http://127.0.0.1:14000/dir"}, "-acme-directory 'http://127.0.0.1:14000/dir' is invalid"),
        ({"acme_email": "not an address"}, "-acme-email 'not an address' is not an e-mail address"),
        ({"acme_email": "a@b@c"}, "-acme-email 'a@b@c' is not an e-mail address"),
        ({"acme_renew_before": -1.0}, "-acme-renew-before -1.0 is invalid"),
        ({"acme_check_interval": 0.0}, "-acme-check-interval 0.0 is invalid"),
        ({"acme_order_timeout": 0.0}, "-acme-order-timeout 0.0 is invalid"),
        ({"acme_request_timeout": -5.0}, "-acme-request-timeout -5.0 is invalid"),
        ({"http_tls_handshake_timeout": 0.0}, "-http-tls-handshake-timeout 0.0 is invalid"),
    ],
)
def test_invalid_acme_options(fields: dict[str, object], message: str) -> None:
    problems = ServerConfig(**fields).problems()  # type: ignore[arg-type]

    assert any(problem.startswith(message) for problem in problems), problems


def test_server_folder_names() -> None:
    assert server_folder_name(LETSENCRYPT_DIRECTORY) == "acme-v02.api.letsencrypt.org-directory"
    assert server_folder_name(PEBBLE_URL) == "127.0.0.1_14000-dir"
    assert server_folder_name("https://[::1]:14000/a/../b") == "_1_14000-a_.._b"


def test_account_key_created_once(tmp_path: Path) -> None:
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "oast.test")

    first = storage.account_key()
    second = storage.account_key()

    assert first.thumbprint() == second.thumbprint()
    assert stat.S_IMODE(storage.account_key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(storage.folder.stat().st_mode) == 0o700


def test_corrupt_account_key_rejected(tmp_path: Path) -> None:
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "oast.test")
    storage.account_key_path.parent.mkdir(parents=True)
    storage.account_key_path.write_text("not a key", encoding="utf-8")

    with pytest.raises(AcmeError, match="is not a PEM private key.*remove the file"):
        storage.account_key()


def test_unwritable_acme_dir_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    storage = AcmeStorage(blocker, PEBBLE_URL, "oast.test")

    with pytest.raises(AcmeError, match="could not read the ACME account key .*Not a directory.*-acme-dir"):
        storage.account_key()
    with pytest.raises(AcmeError, match="could not create .*-acme-dir"):
        storage.write_certificate(*make_certificate(["oast.test"], days=90))


def test_certificate_round_trip(tmp_path: Path) -> None:
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "OAST.test")
    chain, key = make_certificate(["*.oast.test", "oast.test"], days=90)

    written = storage.write_certificate(chain, key)
    read = storage.read_certificate()

    assert read == written
    assert read.covers(["*.OAST.test", "oast.test"])
    assert not read.covers(["*.other.test"])
    assert datetime.timedelta(days=89) < read.remaining() <= datetime.timedelta(days=90)
    assert read.certificate_path.parent.name == "oast.test"
    assert stat.S_IMODE(read.private_key_path.stat().st_mode) == 0o600


def test_mismatched_key_not_used(tmp_path: Path) -> None:
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "oast.test")
    chain, _ = make_certificate(["oast.test"], days=90)
    _, other_key = make_certificate(["oast.test"], days=90)
    storage.write_certificate(chain, other_key)

    assert storage.read_certificate() is None


def test_missing_or_invalid_certificate_not_used(tmp_path: Path) -> None:
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "oast.test")
    assert storage.read_certificate() is None

    storage.certificate_path.parent.mkdir(parents=True)
    storage.certificate_path.write_text("garbage", encoding="utf-8")
    storage.private_key_path.write_text("garbage", encoding="utf-8")
    assert storage.read_certificate() is None


def test_invalid_chain_from_ca_rejected(tmp_path: Path) -> None:
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "oast.test")
    _, key = make_certificate(["oast.test"], days=90)

    with pytest.raises(AcmeError, match="not valid PEM"):
        storage.write_certificate(b"<html>proxy error</html>", key)
    assert not storage.private_key_path.exists()


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 1.0), ("3", 3.0), ("0", 1.0), ("-5", 1.0), ("3600", MAX_POLL_DELAY), ("nan", 1.0), ("inf", 1.0)],
)
def test_retry_delay_bounded(header: str | None, expected: float) -> None:
    response = requests.Response()
    if header is not None:
        response.headers["Retry-After"] = header

    assert _retry_delay(response) == expected


def test_http_date_retry_after_uses_default() -> None:
    response = requests.Response()
    response.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"

    assert _retry_delay(response) == 1.0


def stored(days: float) -> StoredCertificate:
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return StoredCertificate(Path("c.pem"), Path("k.pem"), frozenset({"oast.test"}), not_after, 1)


def test_renewal_due_threshold() -> None:
    manager = CertificateManager(ServerConfig(acme_renew_before=30.0), TlsProvider(), {})

    assert manager.renewal_due()
    manager.current = stored(days=31)
    assert not manager.renewal_due()
    manager.current = stored(days=29)
    assert manager.renewal_due()


def test_start_with_stored_certificate_orders_nothing(tmp_path: Path) -> None:
    config = ServerConfig(acme_dir=str(tmp_path), acme_directory=PEBBLE_URL)
    storage = AcmeStorage(tmp_path, PEBBLE_URL, "oast.test")
    chain, key = make_certificate(["*.oast.test", "oast.test"], days=90)
    written = storage.write_certificate(chain, key)
    tls = TlsProvider()
    manager = CertificateManager(config, tls, {})

    async def scenario() -> bool:
        started = await manager.start()
        await manager.close()
        return started

    assert asyncio.run(scenario())
    assert tls.enabled
    assert tls.http_context is not None
    assert manager.current == written
    # The account key is created only when an order is placed.
    assert not storage.account_key_path.exists()
