"""Request framing that llhttp accepts but this server rejects or records as received.

Covers requests with several Host headers (RFC 9112, section 3.2), chunk
sizes that no body could reach, the record of a chunked body that did not end
properly, and the Host header of an absolute-form request.
"""

from __future__ import annotations

import socket
import time

from http_helpers import DOMAIN, HOST, poll_items, raw_exchange, read_reply, request_bytes, wait_until

TWO_HOSTS = "invalid HTTP request: the request has 2 Host headers: send exactly one"
HUGE_SIZE = "FFFFFFFFFFFFFFFF"
HUGE_SIZE_REASON = (
    f"invalid HTTP request: chunk size {HUGE_SIZE} is over the maximum of FFFFFFFFFFFFFFF (15 hex digits)"
)


def chunked_head(host: str, path: str = "/c") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()


def send_in_pieces(port: int, pieces: list[bytes], *, timeout: float = 5.0) -> bytes:
    """Send ``pieces`` as separate TCP segments, 0.1 s apart, and read until the server closes."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.1)
        return read_reply(sock, timeout=timeout).data


# Host headers.


def test_two_host_headers_get_400(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    data = f"GET /two HTTP/1.1\r\nHost: other.example\r\nHost: {host}\r\n\r\n".encode()
    reply = raw_exchange(server.http_port, data)
    assert reply.status == 400
    assert reply.closed
    assert reply.body == (TWO_HOSTS + "\n").encode()
    (item,) = poll_items(client)
    assert item["rejected"] == TWO_HOSTS
    assert item["incomplete"] is True
    assert item["raw-request"] == data.decode()
    assert item["full-id"] == host.split(".")[0]
    assert item["raw-response"].startswith("HTTP/1.1 400 Bad Request\r\n")


def test_same_id_in_both_hosts_recorded_once(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    data = f"GET /twice HTTP/1.1\r\nHost: {host}\r\nHost: x.{host}\r\n\r\n".encode()
    assert raw_exchange(server.http_port, data).status == 400
    (item,) = poll_items(client)
    assert item["rejected"] == TWO_HOSTS


def test_two_hosts_rejected_on_api_paths(http_server) -> None:
    server = http_server()
    client = server.client()
    target = f"/poll?id={client.correlation_id}&secret={client.secret}"
    data = f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nHost: {HOST}\r\n\r\n".encode()
    reply = raw_exchange(server.http_port, data)
    assert reply.status == 400
    assert reply.body == (TWO_HOSTS + "\n").encode()


def test_absolute_form_keeps_host_line(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    target = f"http://{host}/abs"
    reply = raw_exchange(server.http_port, request_bytes("GET", target, [("Host", "evil.example")]))
    assert reply.status == 200
    (item,) = poll_items(client)
    assert item["raw-request"] == f"GET {target} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    assert item["full-id"] == host.split(".")[0], "the absolute-form authority names the host"


# Chunk sizes.


def test_sixteen_digit_chunk_size_gets_400(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    started = time.monotonic()
    reply = raw_exchange(server.http_port, chunked_head(host) + HUGE_SIZE.encode() + b"\r\nabc", timeout=10)
    assert reply.status == 400
    assert reply.closed
    assert time.monotonic() - started < 10, "the server waited for the body timeout"
    (item,) = poll_items(client)
    assert item["rejected"] == HUGE_SIZE_REASON
    assert item["incomplete"] is True
    assert item["raw-request"].endswith(f"\r\n\r\n{HUGE_SIZE}\r\nabc")


def test_huge_chunk_size_split_across_segments(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    pieces = [chunked_head(host) + b"3\r\nabc\r\nFFFFFFFF", b"FFFFFFFF;ext=1", b"\r\n", b"data"]
    reply = send_in_pieces(server.http_port, pieces)
    assert reply.startswith(b"HTTP/1.1 400 ")
    (item,) = poll_items(client)
    assert item["rejected"] == HUGE_SIZE_REASON
    # The size line is rejected as soon as it ends, so the data after it is never read.
    assert item["raw-request"].endswith(f"\r\n\r\n3\r\nabc\r\n{HUGE_SIZE};ext=1\r\n")


def test_fifteen_digit_chunk_size_waits_for_data(http_server) -> None:
    server = http_server(http_body_timeout=0.5)
    client = server.client()
    host = client.payload(DOMAIN)
    reply = raw_exchange(server.http_port, chunked_head(host) + b"FFFFFFFFFFFFFFF\r\nabc", timeout=10)
    assert reply.status == 408
    (item,) = poll_items(client)
    assert item["rejected"] == "request body not received within 0.5 seconds"
    assert item["raw-request"].endswith("\r\n\r\nFFFFFFFFFFFFFFF\r\nabc")


def test_hex_named_trailer_is_no_chunk_size(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    trailer = "ABCDEF0123456789ABCDEF: v"
    pieces = [chunked_head(host) + b"3\r\nabc\r\n0\r\n" + trailer.encode() + b"\r\n", b"\r\n"]
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.1)
        reply = read_reply(sock, timeout=5, linger=0.5)
    assert reply.status == 200
    (item,) = poll_items(client)
    assert "rejected" not in item
    assert item["raw-request"].endswith("\r\n\r\n3\r\nabc\r\n0\r\n\r\n")


def test_many_small_chunks_are_accepted(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    chunks = b"".join(b"%x\r\n" % len(part) + part + b"\r\n" for part in (b"a" * 9000, b"b" * 17, b"c"))
    pieces = [chunked_head(host) + chunks[:9010], chunks[9010:], b"0\r\n\r\n"]
    reply = send_in_pieces(server.http_port, [*pieces[:-1], pieces[-1] + request_bytes("GET", "/", [])])
    assert reply.startswith(b"HTTP/1.1 200 ")
    (item,) = poll_items(client)
    assert "rejected" not in item
    assert item["raw-request"].endswith(f"\r\n\r\n{9018:x}\r\n" + "a" * 9000 + "b" * 17 + "c\r\n0\r\n\r\n")


# The record of a chunked body that did not end properly.


def test_bad_chunk_size_records_bytes_received(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    reply = raw_exchange(server.http_port, chunked_head(host) + b"5\r\nhello\r\nzz\r\n")
    assert reply.status == 400
    (item,) = poll_items(client)
    assert item["rejected"] == "invalid HTTP request: Invalid character in chunk size"
    assert item["raw-request"].endswith("Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")


def test_stalled_chunked_body_records_bytes_received(http_server) -> None:
    server = http_server(http_body_timeout=0.5)
    client = server.client()
    host = client.payload(DOMAIN)
    reply = raw_exchange(server.http_port, chunked_head(host) + b"5\r\nhel", timeout=10)
    assert reply.status == 408
    (item,) = poll_items(client)
    assert item["incomplete"] is True
    assert item["raw-request"].endswith("Transfer-Encoding: chunked\r\n\r\n5\r\nhel")


def test_abandoned_chunked_body_is_capped(http_server) -> None:
    cap = 4096
    server = http_server(max_request_size=cap)
    client = server.client()
    host = client.payload(DOMAIN)
    body = b"2000\r\n" + b"z" * 6000
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.sendall(chunked_head(host) + body)
        time.sleep(0.2)
    assert wait_until(lambda: server.counters.recorded == 1)
    (item,) = poll_items(client)
    assert item["incomplete"] is True
    assert item["truncated"] is True
    assert item["raw-request"].endswith("\r\n\r\n" + body[:cap].decode())


def test_pipelined_chunked_body_without_raw_bytes(http_server) -> None:
    server = http_server(http_body_timeout=0.5)
    client = server.client()
    host = client.payload(DOMAIN)
    first = request_bytes("GET", "/first", [("Host", "x.example")])
    first = first.replace(b"Connection: close\r\n", b"")
    with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
        sock.sendall(first + chunked_head(host, "/second") + b"5\r\nhel")
        reply = read_reply(sock, timeout=10)
    assert reply.data.count(b"HTTP/1.1 ") == 2
    (item,) = poll_items(client)
    assert item["incomplete"] is True
    # The request began in the same read as its predecessor, so the body is chunked again from
    # what was decoded, without the terminating 0 line the client never sent.
    assert item["raw-request"].endswith("Transfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n")
