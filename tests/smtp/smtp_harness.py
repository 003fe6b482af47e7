"""Targets for the SMTP tests: the listener in this process, or the real server process.

Both expose the same small surface (``ports``, ``new_client()``, ``counters``)
so each bug case runs against both. The in-process listener runs on its own
event loop (asyncio's or uvloop's) in a background thread. Store calls go to
that thread because the store engines are not thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from interactsh.client import InteractshClient, decrypt_item
from interactsh.config import ServerConfig
from interactsh.listeners.smtp import SmtpListener, start_smtp
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore
from interactsh.tls import TlsProvider

HOST = "127.0.0.1"
DOMAIN = "oast.test"
STARTUP_TIMEOUT = 10.0
REPLY_TIMEOUT = 5.0
# How long a test waits for records that are filed after the connection closes.
RECORD_WAIT = 5.0

T = TypeVar("T")
Record = dict[str, Any]


class Client(Protocol):
    """A registered session: makes payload names and returns what was recorded for it."""

    correlation_id: str

    def payload(self) -> str: ...

    def poll(self) -> list[Record]: ...

    def poll_tlddata(self) -> list[Record]: ...


class Target(Protocol):
    """A running SMTP listener."""

    ports: dict[str, int]

    def new_client(self) -> Client: ...


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a fresh self-signed certificate for ``oast.test`` and its key; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def client_tls_context() -> ssl.SSLContext:
    """Return a client context that accepts the test's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class InProcessClient:
    """A session registered straight into the harness's store, polled and decrypted as a client does."""

    def __init__(self, harness: SmtpHarness) -> None:
        self.harness = harness
        self.client = InteractshClient(f"http://{HOST}")
        self.correlation_id = self.client.correlation_id
        harness.call(
            lambda: harness.store.register(self.correlation_id, self.client.secret, self.client.public_key_b64())
        )

    def payload(self) -> str:
        return self.client.payload(DOMAIN)

    def poll(self) -> list[Record]:
        return self._poll()[0]

    def poll_tlddata(self) -> list[Record]:
        return self._poll()[1]

    def _poll(self) -> tuple[list[Record], list[Record]]:
        store = self.harness.store

        def poll_and_commit() -> bytes:
            reply = store.poll(self.correlation_id, self.client.secret, tlddata=True)
            store.commit(reply)
            return reply.body

        body = json.loads(self.harness.call(poll_and_commit))
        records: list[Record] = []
        if body["data"]:
            oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
            aes_key = self.client.private_key.decrypt(base64.b64decode(body["aes_key"]), oaep)
            records = [json.loads(decrypt_item(aes_key, item, "ctr")) for item in body["data"]]
        shared = [json.loads(item) for item in body.get("tlddata") or []]
        return records, shared


class SmtpHarness:
    """The SMTP listener with a Python store, on an event loop in a background thread."""

    def __init__(self, config: ServerConfig, loop_kind: str = "asyncio", tls: TlsProvider | None = None) -> None:
        self.config = config
        self.counters = Counters()
        self.store = PythonStore(config.store_options())
        self.recorder = Recorder(config, self.store, self.counters)
        self.tls = tls or TlsProvider()
        self.loop = _new_loop(loop_kind)
        self._thread = threading.Thread(target=self.loop.run_forever, name="smtp-harness", daemon=True)
        self.listener: SmtpListener | None = None
        self.ports: dict[str, int] = {}

    def __enter__(self) -> Self:
        self._thread.start()
        self.listener = self.run(start_smtp(self.config, self.recorder, self.tls))
        self.ports = dict(self.listener.ports)
        return self

    def __exit__(self, *_: object) -> None:
        if self.listener is not None:
            self.run(self.listener.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STARTUP_TIMEOUT)
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the harness loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(STARTUP_TIMEOUT)

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the harness loop and return its result."""
        future: Future[T] = Future()

        def invoke() -> None:
            try:
                future.set_result(function())
            except BaseException as error:  # noqa: BLE001 - handed to the waiting test thread
                future.set_exception(error)

        self.loop.call_soon_threadsafe(invoke)
        return future.result(STARTUP_TIMEOUT)

    def new_client(self) -> InProcessClient:
        return InProcessClient(self)

    def open_connections(self) -> int:
        """Return how many connections the listener still tracks."""
        assert self.listener is not None
        listener = self.listener
        return self.call(lambda: len(listener.shared.connections))


def make_config(**overrides: Any) -> ServerConfig:
    """Return a configuration for ``oast.test`` on free ports, with ``overrides`` applied."""
    config = ServerConfig(listen_ip=HOST, smtp_port=0, smtps_port=0, smtp_autotls_port=0)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# Client helpers shared by the test modules.


def wait_for_records(client: Client, count: int, timeout: float = RECORD_WAIT) -> list[Record]:
    """Poll until ``count`` records arrived or ``timeout`` passed; return every record polled."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while True:
        records += client.poll()
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


class Conversation:
    """A raw SMTP connection that sends exact bytes and reads whole replies."""

    def __init__(self, port: int, *, tls: bool = False) -> None:
        raw = socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT)
        self.sock: socket.socket = client_tls_context().wrap_socket(raw) if tls else raw
        self.buffer = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """Read one reply (all lines of a multi-line reply) and return it as text."""
        lines: list[bytes] = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return b"\n".join(lines).decode("utf-8", "replace")

    def command(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def start_tls(self) -> None:
        self.sock = client_tls_context().wrap_socket(self.sock)

    def closed(self, timeout: float = REPLY_TIMEOUT) -> bool:
        """Wait up to ``timeout`` seconds and tell whether the server closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"the server closed the connection; unread: {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line
