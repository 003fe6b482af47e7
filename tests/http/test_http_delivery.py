"""Poll replies and connections that end before the reply was delivered.

A poll removes its interactions only after the reply has left the server's
write buffer on a connection that is still open. The replies here are several
megabytes and the client's receive buffer is 4 KiB, so most of each reply is
still in the server's buffer when the client stops reading.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import ssl
import struct
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from http_helpers import DOMAIN, HOST, InProcessServer, poll_items, read_reply, wait_until
from interactsh.client import InteractshClient
from interactsh.listeners import http_api

ITEMS = 150
BODY_SIZE = 60_000
SMALL_RECEIVE_BUFFER = 4096


def queue_large_hits(server: InProcessServer, client: InteractshClient) -> set[str]:
    """Record ``ITEMS`` requests with large bodies for ``client``; return their paths."""
    host = client.payload(DOMAIN)
    body = b"x" * BODY_SIZE
    paths = {f"/large/{index}" for index in range(ITEMS)}
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for path in sorted(paths):
            assert http.post(path, headers={"Host": host}, content=body).status_code == 200
    return paths


def open_small_window(server: InProcessServer, client: InteractshClient, *, close: bool = False) -> socket.socket:
    """Send a poll on a socket whose receive buffer is 4 KiB, so the reply backs up in the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
    sock.settimeout(10)
    sock.connect((HOST, server.http_port))
    connection = "Connection: close\r\n" if close else ""
    target = f"/poll?id={client.correlation_id}&secret={client.secret}"
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n{connection}\r\n".encode())
    return sock


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0, so the kernel discards unread input and sends RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one response with a Content-Length; return its head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection inside the head: {data[:200]!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    assert len(lengths) == 1, head
    size = int(lengths[0].split(b":", 1)[1])
    while len(body) < size:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {len(body)} of {size} body bytes"
        body += chunk
    return head, body


def drain_polls(client: InteractshClient, limit: int = 10) -> list[str]:
    """Poll until a poll returns nothing; return the target of every item."""
    targets: list[str] = []
    for _ in range(limit):
        items = poll_items(client)
        if not items:
            return targets
        targets += [item["raw-request"].split(" ", 2)[1] for item in items]
    raise AssertionError(f"still getting items after {limit} polls")


@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
@pytest.mark.parametrize("whole", [False, True], ids=["paced", "one-write"])
def test_reset_mid_reply_keeps_items(http_server, monkeypatch, loop_kind: str, whole: bool) -> None:
    if whole:
        # One body message puts the whole reply in the transport's buffer at once, so only
        # the wait for the buffer to empty keeps the reset poll from committing.
        monkeypatch.setattr(http_api, "POLL_WRITE_PIECE", 1 << 40)
    server = http_server(loop_kind=loop_kind)
    client = server.client()
    paths = queue_large_hits(server, client)
    sock = open_small_window(server, client)
    time.sleep(0.5)
    start = sock.recv(200)
    assert start.startswith(b"HTTP/1.1 200 "), start
    reset(sock)
    assert wait_until(lambda: server.open_tasks() == 0), "the poll task did not end after the reset"
    targets = drain_polls(client)
    assert len(targets) == ITEMS, "the reset poll removed interactions it never delivered"
    assert set(targets) == paths


@pytest.mark.parametrize("loop_kind", ["uvloop", "asyncio"])
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_slow_full_read_removes_items(http_server, loop_kind: str, close: bool) -> None:
    server = http_server(loop_kind=loop_kind)
    client = server.client()
    queue_large_hits(server, client)
    with open_small_window(server, client, close=close) as sock:
        time.sleep(0.5)
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200 ")
    delivered = len(json.loads(body)["data"])
    assert wait_until(lambda: server.open_tasks() == 0)
    # The first page stops at the poll byte cap, so the rest of the items come now.
    remaining = drain_polls(client)
    assert len(remaining) == ITEMS - delivered, "the fully read reply did not remove its items"


def test_stalled_reader_is_cut_off(http_server) -> None:
    server = http_server(http_write_timeout=0.5)
    client = server.client()
    queue_large_hits(server, client)
    with open_small_window(server, client) as sock:
        assert sock.recv(200).startswith(b"HTTP/1.1 200 ")
        assert wait_until(lambda: server.open_tasks() == 0, timeout=10), "the reply waited for the reader forever"
        # The connection is still open on this side and unread: nothing was delivered.
        assert len(drain_polls(client)) == ITEMS
        assert read_reply(sock, timeout=10).closed, "the server kept the stalled connection"


def test_reset_mid_tls_reply_keeps_items(start_server, tmp_path: Path) -> None:
    # The TLS transport reports only its own buffer, which it empties into the TCP transport at once.
    cert_path, key_path, _ = load_certfiles().write_self_signed(tmp_path, [f"*.{DOMAIN}", DOMAIN])
    server = start_server("-cert", str(cert_path), "-privkey", str(key_path))
    client = server.client()
    host = client.payload(DOMAIN)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        for index in range(ITEMS):
            assert http.post(f"/large/{index}", headers={"Host": host}, content=b"x" * BODY_SIZE).status_code == 200
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
    raw.settimeout(10)
    raw.connect((HOST, server.ports["https"]))
    tls = ssl.create_default_context(cafile=str(cert_path)).wrap_socket(raw, server_hostname=DOMAIN)
    target = f"/poll?id={client.correlation_id}&secret={client.secret}"
    tls.sendall(f"GET {target} HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n".encode())
    time.sleep(0.5)
    assert tls.recv(200).startswith(b"HTTP/1.1 200 ")
    reset(tls)
    assert len(drain_polls(client)) == ITEMS, "the reset TLS poll removed interactions it never delivered"


def load_certfiles() -> ModuleType:
    """Load the HTTPS tests' certificate helper, whose folder is not on this module's path."""
    path = Path(__file__).resolve().parent.parent / "https" / "certfiles.py"
    spec = importlib.util.spec_from_file_location("https_certfiles", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
