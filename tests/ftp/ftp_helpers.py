"""Helpers of the FTP tests: the listener in this process, a reader of ``extra``, certificates, clients."""

from __future__ import annotations

import base64
import datetime
import ftplib
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from interactsh.config import ServerConfig
from interactsh.listeners.ftp import FtpListener, start_ftp
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.base import Store
from interactsh.store.python_store import PythonStore
from interactsh.tls import TlsProvider

HOST = "127.0.0.1"
TIMEOUT = 10.0
CONSUMER_ID = "ftpreader00000000000"
CONSUMER_SECRET = "5b0c8f4e-9d2a-4e61-8f3b-2c7d9e1a6b40"
_keys: list[rsa.RSAPrivateKey] = []


def consumer_key() -> rsa.RSAPrivateKey:
    """Return one RSA key for every test of the session; generating one takes a while."""
    if not _keys:
        _keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _keys[0]


class ExtraReader:
    """A session registered in the store that reads the ``extra`` bucket, as a polling client does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        der = (
            consumer_key()
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
        store.register(CONSUMER_ID, CONSUMER_SECRET, base64.b64encode(pem).decode("ascii"))

    def read(self) -> list[dict[str, Any]]:
        """Return the ``extra`` records this consumer has not read yet, decoded."""
        reply = self.store.poll(CONSUMER_ID, CONSUMER_SECRET, extra=True)
        self.store.commit(reply)
        items = json.loads(reply.body)["extra"] or []
        return [json.loads(item) for item in items]


@dataclass
class FtpHarness:
    """A running FTP listener with its store, recorder and an ``extra`` reader."""

    listener: FtpListener
    store: Store
    recorder: Recorder
    reader: ExtraReader

    @property
    def port(self) -> int:
        return self.listener.ports["ftp"]

    def requests(self) -> list[str]:
        """Return the ``raw-request`` of every new ``extra`` record."""
        return [str(record.get("raw-request", "")) for record in self.reader.read()]


def ftp_config(root: Path | None, **overrides: Any) -> ServerConfig:
    """Return a configuration with FTP on free ports and a token, as ``-ftp`` gives."""
    options: dict[str, Any] = {"ftp": True, "token": "a" * 64, "ftp_port": 0, "ftps_port": 0}
    if root is not None:
        options["ftp_dir"] = str(root)
    options.update(overrides)
    return ServerConfig(**options)


@asynccontextmanager
async def running_ftp(config: ServerConfig, tls: TlsProvider | None = None) -> AsyncIterator[FtpHarness]:
    """Start the FTP listener on ``config`` with a Python store; close it on exit."""
    store = PythonStore(config.store_options())
    recorder = Recorder(config, store, Counters())
    listener = await start_ftp(config, recorder, tls or TlsProvider())
    try:
        yield FtpHarness(listener, store, recorder, ExtraReader(store))
    finally:
        await listener.close()


def login(port: int, user: str = "alice", password: str = "s3cret") -> ftplib.FTP:
    """Return a plain FTP client logged in on ``port``."""
    client = ftplib.FTP()
    client.connect(HOST, port, timeout=TIMEOUT)
    client.login(user, password)
    return client


def write_certificate(directory: Path, common_name: str) -> tuple[str, str]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{common_name}.crt"
    key_path = directory / f"{common_name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def client_context(cert_path: str) -> ssl.SSLContext:
    """Return a client context that trusts only the test certificate."""
    return ssl.create_default_context(cafile=cert_path)


class ImplicitFtpTls(ftplib.FTP_TLS):
    """ftplib's FTPS client for implicit TLS: the handshake starts as soon as TCP connects."""

    def connect(self, host: str = "", port: int = 0, timeout: float = TIMEOUT, source_address: Any = None) -> str:
        self.host, self.port, self.timeout = host, port, timeout
        raw = socket.create_connection((host, port), timeout)
        self.af = raw.family
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def certificate_common_name(der: bytes) -> str:
    """Return the common name of a DER certificate."""
    subject = x509.load_der_x509_certificate(der).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
