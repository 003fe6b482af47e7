"""An in-process DNS listener for tests, and raw DNS message builders.

The listener runs on its own event loop (asyncio's or uvloop's) in a
background thread, so tests talk to it over real sockets with blocking
clients. Store calls go through :meth:`DnsHarness.call`, which runs them on
the loop thread, because the store engines are not thread-safe.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from interactsh.client import InteractshClient, decrypt_item
from interactsh.config import ServerConfig
from interactsh.listeners.dns import DnsListener, start_dns
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore

HOST = "127.0.0.1"
DOMAIN = "oast.test"
CORRELATION_ID = "a" * 20
ID = CORRELATION_ID + "b" * 13
STARTUP_TIMEOUT = 10.0
REPLY_TIMEOUT = 3.0

T = TypeVar("T")


# Raw message builders, as in the bug-case catalogue.
def name(text: str) -> bytes:
    out = b""
    for label in text.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def hdr(qid: int = 0x1234, flags: int = 0x0000, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def q(text: str, t: int = 1, c: int = 1) -> bytes:
    return name(text) + struct.pack(">HH", t, c)


def opt(size: int = 1232, ver: int = 0, do: bool = False, opts: bytes = b"", rcode: int = 0) -> bytes:
    return b"\x00" + struct.pack(">HHBBHH", 41, size, rcode, ver, 0x8000 if do else 0, len(opts)) + opts


def option(code: int, data: bytes) -> bytes:
    return struct.pack(">HH", code, len(data)) + data


def rcode(resp: bytes | None) -> int | None:
    return None if resp is None else resp[3] & 0x0F


def question_bytes(message: bytes) -> bytes:
    """Return the first question of a message (name, type, class) as raw bytes."""
    end = 12
    while message[end] != 0:
        end += 1 + message[end]
    return message[12 : end + 5]


def udp(msg: bytes, port: int, timeout: float = REPLY_TIMEOUT) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(msg, (HOST, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def frame(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


def read_frame(sock: socket.socket) -> bytes | None:
    """Read one length-prefixed message; ``None`` when the server closed the connection."""
    prefix = read_exactly(sock, 2)
    if prefix is None:
        return None
    return read_exactly(sock, struct.unpack(">H", prefix)[0])


def read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def tcp(msg: bytes, port: int, timeout: float = REPLY_TIMEOUT) -> bytes | None:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(frame(msg))
        return read_frame(sock)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds and tell whether the server closed the connection."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@dataclass
class Session:
    """A session registered straight into the store, polled and decrypted like a client does."""

    client: InteractshClient
    polled: list[dict[str, Any]] = field(default_factory=list)

    @property
    def correlation_id(self) -> str:
        return self.client.correlation_id


class DnsHarness:
    """A DNS listener on a free loopback port, on an event loop in a background thread."""

    def __init__(self, config: ServerConfig, loop_kind: str = "asyncio") -> None:
        self.config = config
        self.counters = Counters()
        self.store = PythonStore(config.store_options())
        self.recorder = Recorder(config, self.store, self.counters)
        self.loop = _new_loop(loop_kind)
        self._thread = threading.Thread(target=self.loop.run_forever, name="dns-harness", daemon=True)
        self.listener: DnsListener | None = None

    def __enter__(self) -> DnsHarness:
        self._thread.start()
        self.listener = self.run(start_dns(self.config, self.recorder))
        return self

    def __exit__(self, *exc_info: object) -> None:
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
        return self.listener.udp_port

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

    def poll_shared(self) -> list[dict[str, Any]]:
        """Return the plaintext ``tlddata`` records seen by a fresh consumer."""
        session = self.register()
        client = session.client
        reply = self.call(lambda: self.store.poll(client.correlation_id, client.secret, tlddata=True))
        return [json.loads(item) for item in json.loads(reply.body).get("tlddata") or []]


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def make_config(**overrides: Any) -> ServerConfig:
    """Return a config for a listener on a free loopback port."""
    values: dict[str, Any] = {"domains": [DOMAIN], "ips": [HOST], "listen_ip": HOST, "dns_port": 0}
    values.update(overrides)
    return ServerConfig(**values)
