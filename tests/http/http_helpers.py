"""An in-process HTTP listener on a free port, and raw-socket helpers for HTTP tests.

The listener runs with a real PythonStore on its own event loop in a thread, so
tests can use blocking clients (sockets, httpx, the project's client) and pick
limits that the command line does not expose.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from interactsh.client import InteractshClient
from interactsh.config import ServerConfig
from interactsh.listeners.http import HttpListener, build_app, start_http
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore

HOST = "127.0.0.1"
DOMAIN = "oast.test"
CALL_TIMEOUT = 30.0
T = TypeVar("T")


def new_loop(kind: str = "uvloop") -> asyncio.AbstractEventLoop:
    """Return a new event loop: ``uvloop`` (the server's loop) when installed, or ``asyncio``."""
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class InProcessServer:
    """build_app() and start_http() on a PythonStore, served from a background thread."""

    def __init__(self, config: ServerConfig, loop_kind: str = "uvloop") -> None:
        self.config = config
        self.domain = config.domains[0]
        self.token = config.auth_token
        self.counters = Counters()
        self.store = PythonStore(config.store_options())
        self.recorder = Recorder(config, self.store, self.counters)
        self.loop = new_loop(loop_kind)
        self.thread = threading.Thread(target=self.loop.run_forever, name="http-test-loop", daemon=True)
        self.listener: HttpListener | None = None

    def start(self) -> InProcessServer:
        self.thread.start()
        app = build_app(self.config, self.recorder)
        self.listener = self.run(start_http(self.config, app))
        return self

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self.listener is not None:
            self.run(self.listener.close())
            self.listener = None
        pending = self.run(_cancel_leftover_tasks())
        assert pending == 0, f"{pending} tasks were still running after close()"
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=CALL_TIMEOUT)
        self.loop.close()

    @property
    def http_port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_TIMEOUT)

    def call(self, function: Callable[[], T]) -> T:
        """Call ``function`` on the server's loop thread (the store is not thread-safe)."""

        async def wrapper() -> T:
            return function()

        return self.run(wrapper())

    def client(self, *, register: bool = True, **options: Any) -> InteractshClient:
        """Return a client of this server, registered unless ``register`` is false."""
        options.setdefault("token", self.token)
        client = InteractshClient(self.base_url, **options)
        if register:
            client.register()
        return client

    def open_tasks(self) -> int:
        """Return how many request tasks uvicorn is running."""
        assert self.listener is not None
        return self.call(lambda: len(self.listener.server.server_state.tasks))  # type: ignore[union-attr]


async def _cancel_leftover_tasks() -> int:
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)
    return len(leftover)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@dataclass
class RawReply:
    """What a raw-socket exchange read back."""

    data: bytes
    closed: bool

    @property
    def status(self) -> int:
        """Return the status code of the first response, or 0 when nothing came back."""
        if not self.data.startswith(b"HTTP/"):
            return 0
        return int(self.data.split(b" ", 2)[1])

    @property
    def head(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self) -> bytes:
        return self.data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.data else b""

    def header(self, name: str) -> str | None:
        """Return a header of the first response (case-insensitive), or ``None``."""
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0, linger: float | None = None) -> RawReply:
    """Send ``data`` on a new connection and read until the server closes it or ``timeout`` passes.

    With ``linger`` the socket stops reading that many seconds after the last
    byte arrived (for servers that keep the connection open).
    """
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_reply(sock, timeout=timeout, linger=linger)


def read_reply(sock: socket.socket, *, timeout: float = 5.0, linger: float | None = None) -> RawReply:
    """Read from ``sock`` until it closes, ``timeout`` passes, or ``linger`` passes without data."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    closed = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(min(remaining, linger) if linger is not None and chunks else remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        chunks.append(chunk)
    return RawReply(b"".join(chunks), closed)


def request_bytes(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """Return an HTTP/1.1 request with ``Connection: close`` added."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{key}: {value}" for key, value in headers), "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def poll_items(client: InteractshClient) -> list[dict[str, Any]]:
    """Poll and decrypt with ``client``'s key, for both AES modes, and return the interactions."""
    reply = client._request(f"/poll?id={client.correlation_id}&secret={client.secret}", None)
    items = reply.get("data") or []
    if not items:
        return []
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    aes_key = client.private_key.decrypt(base64.b64decode(reply["aes_key"]), oaep)
    return [json.loads(decrypt(aes_key, item, client.aes_mode)) for item in items]


def decrypt(aes_key: bytes, item: str, aes_mode: str) -> bytes:
    """Decrypt one ``data`` item, ``base64(iv || ciphertext)``, with AES-256-CTR or CFB128."""
    blob = base64.b64decode(item)
    iv, ciphertext = blob[:16], blob[16:]
    mode = modes.CTR(iv) if aes_mode == "ctr" else CFB(iv)
    decryptor = Cipher(algorithms.AES(aes_key), mode).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def awaitable_result(awaitable: Awaitable[T]) -> T:
    """Run an awaitable to completion on a fresh loop (for ASGI-level tests)."""

    async def main() -> T:
        return await awaitable

    return asyncio.run(main())
