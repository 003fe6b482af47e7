"""DNS over TCP: framing, pipelining, idle timeouts, connection caps and back-pressure."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import pytest

import interactsh.listeners.dns as dns_listener

from dnsharness import (
    CORRELATION_ID,
    DOMAIN,
    HOST,
    ID,
    DnsHarness,
    closed_by_server,
    frame,
    hdr,
    make_config,
    name,
    q,
    read_frame,
)

IDLE_TIMEOUT = 0.5
# Generous bounds for "closed after the idle timeout": the checks are about
# behaviour, not speed.
CLOSE_WAIT = 5.0


@pytest.fixture
def tcp_server(loop_kind: str) -> Iterator[DnsHarness]:
    """A listener with the default idle timeout and a cap of four connections per address."""
    with DnsHarness(make_config(dns_tcp_max_connections_per_ip=4), loop_kind) as server:
        yield server


@pytest.fixture
def impatient_server(loop_kind: str) -> Iterator[DnsHarness]:
    """A listener that closes connections idle for half a second."""
    with DnsHarness(make_config(dns_tcp_idle_timeout=IDLE_TIMEOUT), loop_kind) as server:
        yield server


def connect(server: DnsHarness) -> socket.socket:
    return socket.create_connection((HOST, server.port), timeout=CLOSE_WAIT)


def reply_id(wire: bytes | None) -> int:
    assert wire is not None, "the server closed the connection instead of replying"
    return int(struct.unpack(">H", wire[:2])[0])


def test_split_and_pipelined_queries(loop_kind: str) -> None:
    with DnsHarness(make_config(), loop_kind) as server:
        session = server.register(CORRELATION_ID)
        first = hdr() + q(f"{ID}.{DOMAIN}")
        second = hdr(qid=0x5678) + q(f"x.{ID}.{DOMAIN}")
        third = hdr(qid=0x9ABC) + q(f"y.{ID}.{DOMAIN}", t=28)
        with connect(server) as sock:
            prefix = struct.pack(">H", len(first))
            sock.sendall(prefix[:1])
            time.sleep(0.3)
            sock.sendall(prefix[1:] + first[:10])
            time.sleep(0.3)
            sock.sendall(first[10:])
            assert reply_id(read_frame(sock)) == 0x1234
            sock.sendall(frame(second) + frame(third))
            assert reply_id(read_frame(sock)) == 0x5678
            assert reply_id(read_frame(sock)) == 0x9ABC
        records = server.poll(session)
        assert [(record["full-id"], record["q-type"]) for record in records] == [
            (ID, "A"),
            (f"x.{ID}", "A"),
            (f"y.{ID}", "AAAA"),
        ]
        assert {record["transport"] for record in records} == {"tcp"}


def test_idle_and_half_sent_connections_are_closed(impatient_server: DnsHarness) -> None:
    with connect(impatient_server) as idle, connect(impatient_server) as half_sent:
        half_sent.sendall(b"\x00")
        assert closed_by_server(idle, CLOSE_WAIT)
        assert closed_by_server(half_sent, CLOSE_WAIT)


def test_trickled_message_does_not_keep_connection_open(impatient_server: DnsHarness) -> None:
    message = hdr() + q(f"x.{DOMAIN}")
    data = frame(message) + b"\x00" * 200  # the extra bytes start a message that never ends
    with connect(impatient_server) as sock:
        closed = False
        deadline = time.monotonic() + CLOSE_WAIT
        for byte in data[len(message) + 2 :]:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(IDLE_TIMEOUT / 5)
        assert closed or closed_by_server(sock, CLOSE_WAIT)


def test_active_connection_stays_open(loop_kind: str) -> None:
    idle_timeout = 1.0
    server = DnsHarness(make_config(dns_tcp_idle_timeout=idle_timeout), loop_kind)
    with server, connect(server) as sock:
        for index in range(8):
            sock.sendall(frame(hdr(qid=index) + q(f"x.{DOMAIN}")))
            assert reply_id(read_frame(sock)) == index
            time.sleep(idle_timeout / 4)


def test_connections_per_address_are_capped(tcp_server: DnsHarness) -> None:
    with contextlib.ExitStack() as stack:
        allowed = [stack.enter_context(connect(tcp_server)) for _ in range(4)]
        for sock in allowed:
            sock.sendall(frame(hdr() + q(f"x.{DOMAIN}")))
            assert reply_id(read_frame(sock)) == 0x1234
        with connect(tcp_server) as rejected:
            assert closed_by_server(rejected, CLOSE_WAIT)
        allowed.pop().close()
        deadline = time.monotonic() + CLOSE_WAIT
        while tcp_server.call(lambda: tcp_server.listener.tcp_connections) > 3:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the closed connection was never released"
            time.sleep(0.01)
        with connect(tcp_server) as admitted:
            admitted.sendall(frame(hdr(qid=7) + q(f"x.{DOMAIN}")))
            assert reply_id(read_frame(admitted)) == 7


def test_total_connections_are_capped(loop_kind: str) -> None:
    server = DnsHarness(make_config(dns_tcp_max_connections=2), loop_kind)
    with server, connect(server) as first, connect(server) as second:
        for sock in (first, second):
            sock.sendall(frame(hdr() + q(f"x.{DOMAIN}")))
            assert reply_id(read_frame(sock)) == 0x1234
        with connect(server) as third:
            assert closed_by_server(third, CLOSE_WAIT)


def test_many_idle_sockets_stay_bounded(loop_kind: str) -> None:
    config = make_config(dns_tcp_idle_timeout=IDLE_TIMEOUT)
    cap = config.dns_tcp_max_connections_per_ip
    with DnsHarness(config, loop_kind) as server, contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(server)) for _ in range(300)]
        for sock in sockets:
            sock.sendall(b"\x00")
        open_count = server.call(lambda: server.listener.tcp_connections)  # type: ignore[union-attr]
        assert open_count <= cap
        assert all(closed_by_server(sock, CLOSE_WAIT) for sock in sockets)
        assert server.call(lambda: server.listener.tcp_connections) == 0  # type: ignore[union-attr]
        with connect(server) as sock:
            sock.sendall(frame(hdr() + q(f"x.{DOMAIN}")))
            assert reply_id(read_frame(sock)) == 0x1234


def test_zero_length_message_closes_connection(tcp_server: DnsHarness) -> None:
    with connect(tcp_server) as sock:
        sock.sendall(b"\x00\x00")
        assert closed_by_server(sock, CLOSE_WAIT)
    assert tcp_server.counters.dns_malformed == 1


def buffer_sizes(server: DnsHarness) -> list[int]:
    """Return the receive buffer size of every open TCP connection."""
    listener = server.listener
    assert listener is not None
    return server.call(lambda: [len(connection._buffer) for connection in listener._connections])


def test_largest_message_is_read(tcp_server: DnsHarness) -> None:
    query = hdr(ar=1) + q(f"x.{DOMAIN}")
    rdata_size = 65535 - len(query) - len(name("big.example")) - 10
    message = query + name("big.example") + struct.pack(">HHIH", 65280, 1, 0, rdata_size) + b"r" * rdata_size
    assert len(message) == 65535
    with connect(tcp_server) as sock:
        sock.sendall(frame(message)[:40_000])
        time.sleep(0.2)
        assert buffer_sizes(tcp_server) == [dns_listener.MAX_TCP_FRAME], "the buffer grows to fit the message"
        sock.sendall(frame(message)[40_000:])
        reply = read_frame(sock)
        assert reply is not None
        assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR
        sock.sendall(frame(hdr(qid=9) + q(f"x.{DOMAIN}")))
        assert reply_id(read_frame(sock)) == 9
        assert buffer_sizes(tcp_server) == [dns_listener.INITIAL_TCP_BUFFER], "the buffer shrinks when idle"


def test_unread_replies_pause_reading(loop_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[int] = []
    original = dns_listener._TcpConnection.pause_writing

    def counting_pause(connection: dns_listener._TcpConnection) -> None:
        pauses.append(1)
        original(connection)

    monkeypatch.setattr(dns_listener._TcpConnection, "pause_writing", counting_pause)
    records = tmp_path / "records.yaml"
    records.write_text('big:\n  - type: TXT\n    value: "' + "t" * 60_000 + '"\n', encoding="utf-8")
    count = 150  # about 9 MB of replies, more than the kernel buffers of both ends hold
    queries = b"".join(frame(hdr(qid=index) + q(f"big.{DOMAIN}", t=16)) for index in range(count))
    server = DnsHarness(make_config(custom_records=str(records)), loop_kind)
    with server, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(CLOSE_WAIT)
        sock.connect((HOST, server.port))
        sender = threading.Thread(target=sock.sendall, args=(queries,), daemon=True)
        sender.start()
        time.sleep(1.0)  # let the server fill its buffers while the client does not read
        assert max(buffer_sizes(server)) <= dns_listener.MAX_TCP_FRAME
        received = [reply_id(read_frame(sock)) for _ in range(count)]
        sender.join(CLOSE_WAIT)
    assert received == list(range(count))
    assert pauses, "the server never had to pause writing, so the test did not exercise back-pressure"


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (package dnsutils)")
def test_dig_over_tcp(dns_server: DnsHarness) -> None:
    session = dns_server.register(CORRELATION_ID)
    command = ["dig", "+tcp", "+tries=1", "+time=3", "-p", str(dns_server.port), f"@{HOST}", "TXT", f"{ID}.{DOMAIN}"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    assert "status: NOERROR" in output
    assert "flags: qr aa" in output
    assert re.search(rf'^{ID}\.oast\.test\.\s+0\s+IN\s+TXT\s+""$', output, re.MULTILINE), output
    assert "(TCP)" in output
    assert [record["transport"] for record in dns_server.poll(session)] == ["tcp"]
