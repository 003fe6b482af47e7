"""An in-process LDAP listener for tests, and raw LDAP message helpers.

The listener runs on its own event loop (asyncio's or uvloop's) in a
background thread, so tests talk to it over real sockets with blocking
clients: ldap3, the OpenLDAP command-line tools and raw sockets. Store calls
go through :meth:`LdapHarness.call`, which runs them on the loop thread,
because the store engines are not thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import socket
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from interactsh.client import InteractshClient, decrypt_item
from interactsh.config import ServerConfig
from interactsh.listeners.ber import read_element, read_header
from interactsh.listeners.ldap import LdapListener, start_ldap
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore
from interactsh.tls import TlsProvider

with warnings.catch_warnings():
    # ldap3 2.9.1 imports names that pyasn1 0.6 deprecated (tagMap, typeMap), which warns at import time.
    # The conftest imports this module first, so test modules may then import ldap3 themselves.
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3

HOST = "127.0.0.1"
CORRELATION_ID = "a" * 20
ID = CORRELATION_ID + "b" * 13
TOKEN = "t" * 64
STARTUP_TIMEOUT = 10.0
REPLY_TIMEOUT = 5.0

T = TypeVar("T")


@dataclass
class Session:
    """A session registered straight into the store, polled and decrypted as a client does."""

    client: InteractshClient

    @property
    def correlation_id(self) -> str:
        return self.client.correlation_id


class LdapHarness:
    """An LDAP listener on a free loopback port, on an event loop in a background thread."""

    def __init__(self, config: ServerConfig, loop_kind: str = "asyncio", tls: TlsProvider | None = None) -> None:
        self.config = config
        self.counters = Counters()
        self.store = PythonStore(config.store_options())
        self.recorder = Recorder(config, self.store, self.counters)
        self.tls = tls or TlsProvider()
        self.loop = _new_loop(loop_kind)
        self._thread = threading.Thread(target=self.loop.run_forever, name="ldap-harness", daemon=True)
        self.listener: LdapListener | None = None
        self._clients: list[ldap3.Connection] = []

    def __enter__(self) -> Self:
        self._thread.start()
        self.listener = self.run(start_ldap(self.config, self.recorder, self.tls))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for client in self._clients:
            if not client.closed:
                client.unbind()
        try:
            if self.listener is not None:
                self.run(self.listener.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STARTUP_TIMEOUT)
            self.loop.close()

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(STARTUP_TIMEOUT)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the loop thread and return its result."""
        future: Future[T] = Future()

        def invoke() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as error:  # noqa: BLE001 - handed back to the test thread
                future.set_exception(error)

        self.loop.call_soon_threadsafe(invoke)
        return future.result(STARTUP_TIMEOUT)

    def register(self, correlation_id: str | None = None) -> Session:
        client = InteractshClient(f"http://{HOST}:1", key_bits=1024)
        if correlation_id is not None:
            client.correlation_id = correlation_id
        self.call(self.store.register, client.correlation_id, client.secret, client.public_key_b64())
        return Session(client)

    def poll(self, session: Session) -> list[dict[str, Any]]:
        """Return the interactions queued for ``session`` and remove them, decrypted."""
        client = session.client
        reply = self.call(lambda: self.store.poll(client.correlation_id, client.secret))
        self.call(self.store.commit, reply)
        body = json.loads(reply.body)
        items = body.get("data") or []
        if not items:
            return []
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        aes_key = client.private_key.decrypt(base64.b64decode(body["aes_key"]), oaep)
        return [json.loads(decrypt_item(aes_key, item, client.aes_mode)) for item in items]

    def poll_extra(self) -> list[dict[str, Any]]:
        """Return every record of the token bucket, as a fresh consumer reads it."""
        client = self.register().client
        reply = self.call(lambda: self.store.poll(client.correlation_id, client.secret, extra=True))
        return [json.loads(item) for item in json.loads(reply.body).get("extra") or []]

    def connection_count(self) -> int:
        assert self.listener is not None
        listener = self.listener
        return self.call(lambda: listener.connection_count)

    def connect(self, **options: Any) -> ldap3.Connection:
        """Return an ldap3 connection to the listener, not yet bound."""
        server = ldap3.Server(HOST, port=self.port, get_info=ldap3.NONE, connect_timeout=REPLY_TIMEOUT)
        client = ldap3.Connection(server, receive_timeout=int(REPLY_TIMEOUT), **options)
        self._clients.append(client)
        return client

    def socket(self) -> socket.socket:
        return socket.create_connection((HOST, self.port), timeout=REPLY_TIMEOUT)


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def make_config(**overrides: Any) -> ServerConfig:
    """Return a config for a listener on a free loopback port."""
    values: dict[str, Any] = {"domains": ["oast.test"], "ips": [HOST], "listen_ip": HOST, "ldap_port": 0}
    values.update(overrides)
    return ServerConfig(**values)


def auth_config(**overrides: Any) -> ServerConfig:
    """Return a config with auth on, as ``-auth`` or ``-ldap`` leave it after the CLI ran."""
    return make_config(auth=True, token=TOKEN, **overrides)


def self_signed_tls(directory: Path) -> TlsProvider:
    """Write a self-signed certificate for 127.0.0.1 and return a provider that loaded it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ldap test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    provider = TlsProvider()
    provider.load(str(cert_path), str(key_path))
    return provider


# Raw LDAP messages, built by hand so that tests control every octet.
def tlv(tag: int, content: bytes) -> bytes:
    """Encode one element with a minimal length."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def message(message_id: int, operation: bytes) -> bytes:
    return tlv(0x30, tlv(0x02, message_id.to_bytes(message_id.bit_length() // 8 + 1, "big")) + operation)


def simple_bind(message_id: int, dn: str, password: str = "") -> bytes:
    body = tlv(0x02, b"\x03") + tlv(0x04, dn.encode()) + tlv(0x80, password.encode())
    return message(message_id, tlv(0x60, body))


def present_search(message_id: int, base: str, attributes: tuple[str, ...] = ()) -> bytes:
    """Encode a search of ``base`` with the filter ``(objectClass=*)``."""
    body = (
        tlv(0x04, base.encode())
        + tlv(0x0A, b"\x02")
        + tlv(0x0A, b"\x00")
        + tlv(0x02, b"\x00")
        + tlv(0x02, b"\x00")
        + tlv(0x01, b"\x00")
        + tlv(0x87, b"objectClass")
        + tlv(0x30, b"".join(tlv(0x04, name.encode()) for name in attributes))
    )
    return message(message_id, tlv(0x63, body))


@dataclass(frozen=True)
class Reply:
    """One LDAPMessage read back from the server, with its operation tag and result code."""

    message_id: int
    tag: int
    result_code: int | None
    diagnostic: bytes
    raw: bytes


class ReplyStream:
    """Reads LDAPMessages from a socket, whatever segments they arrive in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._data = b""

    def next(self) -> Reply | None:
        """Return the next message; ``None`` when the server closed the connection first."""
        while True:
            header = read_header(self._data)
            if header is not None and len(self._data) >= header.header_size + header.length:
                size = header.header_size + header.length
                reply, self._data = parse_reply(self._data[:size]), self._data[size:]
                return reply
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._data += chunk

    def take(self, count: int) -> list[Reply]:
        """Return exactly ``count`` messages, failing the test when the connection closes first."""
        replies: list[Reply] = []
        while len(replies) < count:
            reply = self.next()
            if reply is None:
                raise AssertionError(f"the server closed the connection after {len(replies)} of {count} replies")
            replies.append(reply)
        return replies


def parse_reply(data: bytes) -> Reply:
    envelope, _ = read_element(memoryview(data))
    children = list(envelope.children())
    message_id = children[0].as_integer()
    operation = children[1]
    code: int | None = None
    diagnostic = b""
    if operation.constructed:
        parts = list(operation.children())
        if parts and parts[0].number == 0x0A:
            code = parts[0].as_integer()
            diagnostic = parts[2].as_bytes()
    return Reply(message_id, 0x40 | (0x20 if operation.constructed else 0) | operation.number, code, diagnostic, data)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds, discarding data, and tell whether the server closed the connection."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def ldap3_message(message_id: int, operation_name: str, operation: Any) -> bytes:
    """Encode a request that ldap3 built, with ldap3's own BER encoder, as an independent reference."""
    from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
    from ldap3.utils.asn1 import encode

    envelope = LDAPMessage()
    envelope["messageID"] = MessageID(message_id)
    protocol_op = ProtocolOp()
    protocol_op.setComponentByName(operation_name, operation)
    envelope["protocolOp"] = protocol_op
    return bytes(encode(envelope))


def ldap3_search(base: str, search_filter: str, attributes: list[str] | None = None, time_limit: int = 0) -> bytes:
    """Encode a subtree search the way ldap3 sends it."""
    from ldap3.operation.search import search_operation

    request = search_operation(
        base,
        search_filter,
        ldap3.SUBTREE,
        ldap3.DEREF_NEVER,
        attributes or [],
        0,
        time_limit,
        False,
        auto_escape=False,
        auto_encode=True,
        schema=None,
        validator=None,
        check_names=False,
    )
    return ldap3_message(1, "searchRequest", request)
