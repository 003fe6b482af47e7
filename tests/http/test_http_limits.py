"""Limits over real sockets: head and body caps, timeouts, connection cap, malformed framing, rate limits."""

from __future__ import annotations

import json
import socket
import time

import httpx
from http_helpers import DOMAIN, HOST, poll_items, raw_exchange, read_reply, request_bytes, wait_until

HEAD_CAP = 4096


def test_head_over_cap_gets_431_and_is_recorded(http_server) -> None:
    server = http_server(max_request_size=HEAD_CAP)
    client = server.client()
    host = client.payload(DOMAIN)
    head = f"GET /big HTTP/1.1\r\nHost: {host}\r\nX-Big: ".encode() + b"a" * 200_000 + b"\r\n\r\n"
    reply = raw_exchange(server.http_port, head)
    assert reply.status == 431
    assert reply.closed
    (item,) = poll_items(client)
    assert item["truncated"] is True
    assert item["incomplete"] is True
    assert item["rejected"] == f"request head is over {HEAD_CAP} bytes"
    assert item["raw-request"].startswith(f"GET /big HTTP/1.1\r\nHost: {host}\r\nX-Big: aaaa")
    assert len(item["raw-request"]) == HEAD_CAP
    assert item["raw-response"].startswith("HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_head_in_many_small_packets(http_server) -> None:
    server = http_server(max_request_size=HEAD_CAP)
    client = server.client()
    host = client.payload(DOMAIN)
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.sendall(f"GET /slow HTTP/1.1\r\nHost: {host}\r\n".encode())
        for _ in range(60):
            sock.sendall(b"X-Pad: " + b"p" * 90 + b"\r\n")
        reply = read_reply(sock)
    assert reply.status == 431
    assert len(poll_items(client)) == 1


def test_head_just_under_cap_is_served(http_server) -> None:
    server = http_server(max_request_size=HEAD_CAP)
    client = server.client()
    start = f"GET /fits HTTP/1.1\r\nHost: {client.payload(DOMAIN)}\r\nConnection: close\r\nX-Pad: ".encode()
    head = start + b"p" * (HEAD_CAP - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == HEAD_CAP
    assert raw_exchange(server.http_port, head).status == 200
    assert "rejected" not in poll_items(client)[0]


def test_body_over_cap_is_truncated(http_server) -> None:
    server = http_server(max_request_size=HEAD_CAP)
    client = server.client()
    body = b"0123456789" * 100_000
    response = httpx.post(server.base_url + "/upload", headers={"Host": client.payload(DOMAIN)}, content=body)
    assert response.status_code == 200
    (item,) = poll_items(client)
    assert item["truncated"] is True
    assert "incomplete" not in item
    assert item["raw-request"].split("\r\n\r\n", 1)[1] == body[:HEAD_CAP].decode()


def test_endless_chunked_stream_is_cut(http_server) -> None:
    server = http_server(max_request_size=HEAD_CAP)
    client = server.client()
    host = client.payload(DOMAIN)
    chunks = b"1\r\na\r\n" * 50_000 + b"0\r\n\r\n"
    reply = raw_exchange(
        server.http_port, request_bytes("POST", "/stream", [("Host", host), ("Transfer-Encoding", "chunked")], chunks)
    )
    assert reply.status == 200
    (item,) = poll_items(client)
    assert item["truncated"] is True
    assert item["raw-request"].endswith(f"\r\n\r\n{HEAD_CAP:x}\r\n" + "a" * HEAD_CAP + "\r\n0\r\n\r\n")


def test_idle_connection_is_closed(http_server) -> None:
    server = http_server(http_header_timeout=0.5)
    with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
        started = time.monotonic()
        reply = read_reply(sock, timeout=10)
        waited = time.monotonic() - started
    assert reply.closed
    assert reply.data == b""
    assert waited < 8, "the server kept an idle connection open past its head timeout"


def test_slow_head_gets_408_and_is_recorded(http_server) -> None:
    server = http_server(http_header_timeout=1.0)
    client = server.client()
    host = client.payload(DOMAIN)
    with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
        sock.sendall(f"GET /slowloris HTTP/1.1\r\nHost: {host}\r\n".encode())
        # Keep trickling header lines: the timeout covers the whole head, not the gaps.
        for _ in range(4):
            time.sleep(0.3)
            try:
                sock.sendall(b"X-a: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        reply = read_reply(sock, timeout=10)
    assert reply.status == 408
    (item,) = poll_items(client)
    assert item["rejected"] == "request head not received within 1 second"
    assert item["raw-request"].startswith(f"GET /slowloris HTTP/1.1\r\nHost: {host}\r\n")


def test_connection_cap_per_address(http_server) -> None:
    server = http_server(http_max_connections_per_ip=5, http_header_timeout=30)
    idle = [socket.create_connection((HOST, server.http_port), timeout=5) for _ in range(5)]
    try:
        for sock in idle:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        refused = raw_exchange(server.http_port, request_bytes("GET", "/", [("Host", "x")]))
        assert refused.status == 503
        assert b"too many open connections" in refused.body
    finally:
        for sock in idle:
            sock.close()
    assert wait_until(lambda: raw_exchange(server.http_port, request_bytes("GET", "/", [("Host", "x")])).status == 200)


def test_half_sent_body_is_recorded_incomplete(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.sendall(f"POST /half HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n".encode() + b"0123456789")
        time.sleep(0.2)
    assert wait_until(lambda: server.counters.recorded == 1)
    (item,) = poll_items(client)
    assert item["incomplete"] is True
    assert item["raw-request"].endswith("Content-Length: 1000\r\n\r\n0123456789")
    assert "raw-response" not in item, "nothing was sent to a client that had gone"


def test_stalled_body_gets_408(http_server) -> None:
    server = http_server(http_body_timeout=0.5)
    client = server.client()
    host = client.payload(DOMAIN)
    with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
        sock.sendall(f"POST /stall HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\nabc".encode())
        reply = read_reply(sock, timeout=10)
    assert reply.status == 408
    assert reply.closed
    (item,) = poll_items(client)
    assert item["incomplete"] is True
    assert item["rejected"] == "request body not received within 0.5 seconds"
    assert item["raw-request"].endswith("\r\n\r\nabc")


def test_content_length_with_transfer_encoding(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    smuggled = f"GET /smuggled/{client.payload(DOMAIN)} HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{smuggled}"
    ).encode()
    reply = raw_exchange(server.http_port, data)
    assert reply.status == 400
    assert reply.closed
    assert reply.data.count(b"HTTP/1.1") == 1, "the smuggled request got its own response"
    items = poll_items(client)
    assert len(items) == 1
    assert "Content-Length can't be present with Transfer-Encoding" in items[0]["rejected"]
    assert items[0]["raw-request"].startswith(f"POST / HTTP/1.1\r\nHost: {host}\r\n")


def test_chunk_size_overflow(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    data = f"POST /ovf HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + b"F" * 17 + b"\r\n"
    reply = raw_exchange(server.http_port, data)
    assert reply.status == 400
    assert reply.closed
    assert b"Chunk size overflow" in reply.body
    (item,) = poll_items(client)
    assert item["rejected"] == "invalid HTTP request: Chunk size overflow"
    assert item["incomplete"] is True


def test_duplicate_content_length(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    data = f"POST /dup HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".encode()
    assert raw_exchange(server.http_port, data).status == 400
    (item,) = poll_items(client)
    assert "Duplicate Content-Length" in item["rejected"]


def test_garbage_is_answered_400(http_server) -> None:
    server = http_server()
    for data in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        b"GET\r\n\r\n",
        b"\xff" * 100 + b"\r\n\r\n",
    ):
        reply = raw_exchange(server.http_port, data)
        assert reply.status == 400
        assert reply.closed
    assert httpx.get(server.base_url + "/").status_code == 200


def test_register_rate_limit(http_server) -> None:
    server = http_server(http_register_rate=3)
    live = server.client()
    for _ in range(2):
        assert httpx.post(server.base_url + "/register", content=b"{}").status_code == 400
    flood = httpx.post(server.base_url + "/register", content=b"{}")
    assert flood.status_code == 429
    assert int(flood.headers["retry-after"]) >= 1
    assert flood.json()["error"].startswith(f"too many requests from {HOST}: retry after ")
    assert poll_items(live) == [], "the live session must survive the flood"


def test_failed_lookup_rate_limit(http_server) -> None:
    server = http_server(http_failure_rate=3)
    live = server.client()
    for _ in range(3):
        assert httpx.get(server.base_url + "/poll?id=zzzzzzzzzzzzzzzzzzzz&secret=x").status_code == 400
    assert httpx.get(server.base_url + "/poll?id=zzzzzzzzzzzzzzzzzzzz&secret=x").status_code == 429
    wrong = json.dumps({"correlation-id": live.correlation_id, "secret-key": "x"}).encode()
    assert httpx.post(server.base_url + "/deregister", content=wrong).status_code == 429


def test_delay_is_capped(http_server) -> None:
    server = http_server(dynamic_resp=True, max_dynamic_delay=0.5)
    client = server.client()
    started = time.monotonic()
    response = httpx.get(server.base_url + "/?delay=999999&body=late", headers={"Host": client.payload(DOMAIN)})
    waited = time.monotonic() - started
    assert response.text == "late"
    assert waited >= 0.5
    assert waited < 8, "the delay was not capped"


def test_disconnect_during_delay_frees_task(http_server) -> None:
    server = http_server(dynamic_resp=True, max_dynamic_delay=60)
    client = server.client()
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/?delay=60", [("Host", client.payload(DOMAIN))]))
        assert wait_until(lambda: server.open_tasks() == 1)
    assert wait_until(lambda: server.open_tasks() == 0), "the delayed response kept its task after the client left"
    (item,) = poll_items(client)
    assert item["raw-request"].startswith("GET /?delay=60 HTTP/1.1\r\n")


def test_close_ends_slow_requests(http_server) -> None:
    server = http_server(http_shutdown_timeout=1, http_body_timeout=60, http_header_timeout=60)
    slow_body = socket.create_connection((HOST, server.http_port), timeout=5)
    slow_head = socket.create_connection((HOST, server.http_port), timeout=5)
    try:
        slow_body.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab")
        slow_head.sendall(b"GET /y HTTP/1.1\r\nHost: h\r\n")
        assert wait_until(lambda: server.open_tasks() == 1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 20
        assert read_reply(slow_head, timeout=5).closed
        assert read_reply(slow_body, timeout=5).closed
    finally:
        slow_body.close()
        slow_head.close()
