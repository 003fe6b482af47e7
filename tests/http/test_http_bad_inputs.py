"""Bad and unusual HTTP inputs against the real server process.

Each test registers a real session, sends the input over a raw socket (or
httpx where the input is well-formed), then polls, decrypts and checks exactly
the records that must exist. The fixture fails the test when the server died
or logged a traceback.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import httpx
import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_helpers import HOST, poll_items, raw_exchange, read_reply, request_bytes
from interactsh.client import InteractshClient

DATA = Path(__file__).resolve().parent.parent / "data"
NOT_FOUND_POLL = b'{"error":"could not get interactions: could not get correlation-id from cache"}\n'
NOT_FOUND_DEREGISTER = b'{"error":"could not remove id: could not get correlation-id from cache"}\n'
MAX_REQUEST_SIZE = 64 * 1024


def b64_pem(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


def label_of(client: InteractshClient) -> str:
    return client.correlation_id + "b" * client.nonce_length


# Host and target matching.


def test_host_case_port_and_trailing_dot(server) -> None:
    client = server.client()
    label = label_of(client)
    upper = request_bytes("GET", "/", [("Host", f"{label.upper()}.OAST.TEST")])
    dotted = request_bytes("GET", "/", [("Host", f"{label}.{server.domain}.:8080")])
    assert raw_exchange(server.http_port, upper).status == 200
    assert raw_exchange(server.http_port, dotted).status == 200
    items = poll_items(client)
    assert [item["unique-id"] for item in items] == [label, label]
    assert [item["full-id"] for item in items] == [label.upper(), label]
    assert items[1]["raw-request"].startswith(f"GET / HTTP/1.1\r\nHost: {label}.{server.domain}.:8080\r\n")


def test_id_only_in_target_of_ip_request(server) -> None:
    client = server.client()
    label = label_of(client)
    no_host = raw_exchange(server.http_port, f"GET /{label} HTTP/1.0\r\n\r\n".encode())
    in_query = raw_exchange(server.http_port, request_bytes("GET", f"/x?u={label}", [("Host", HOST)]))
    assert no_host.status == 200
    assert in_query.status == 200
    items = poll_items(client)
    assert [item["raw-request"] for item in items] == [
        f"GET /{label} HTTP/1.0\r\n\r\n",
        f"GET /x?u={label} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n",
    ]
    assert [item["full-id"] for item in items] == [label, label]


# Size limits.


def test_huge_header_gets_431(server) -> None:
    client = server.client()
    label = label_of(client)
    head = f"GET / HTTP/1.1\r\nHost: {label}.{server.domain}\r\nX-Big: ".encode() + b"a" * 2_000_000 + b"\r\n\r\n"
    reply = raw_exchange(server.http_port, head, timeout=10)
    assert reply.status == 431
    (item,) = poll_items(client)
    assert item["truncated"] is True
    assert len(item["raw-request"]) == MAX_REQUEST_SIZE
    assert item["raw-request"].startswith(f"GET / HTTP/1.1\r\nHost: {label}.{server.domain}\r\nX-Big: aaa")


def test_huge_body_keeps_memory_flat(server) -> None:
    client = server.client()
    process = psutil.Process(server.process.pid)
    before = process.memory_info().rss
    block = b"z" * 65536
    total = 100 * 1024 * 1024

    def body():
        for _ in range(total // len(block)):
            yield block

    response = httpx.post(
        server.base_url + "/upload", headers={"Host": f"{label_of(client)}.{server.domain}"}, content=body(), timeout=60
    )
    grown = process.memory_info().rss - before
    assert response.status_code == 200
    (item,) = poll_items(client)
    assert item["truncated"] is True
    assert item["raw-request"].endswith(f"\r\n\r\n{MAX_REQUEST_SIZE:x}\r\n" + "z" * MAX_REQUEST_SIZE + "\r\n0\r\n\r\n")
    assert grown < 32 * 1024 * 1024, f"RSS grew by {grown} bytes while a 100 MiB body streamed through"


# Framing.


def test_content_length_and_chunked_together(server) -> None:
    client = server.client()
    label = label_of(client)
    data = (
        f"POST / HTTP/1.1\r\nHost: {label}.{server.domain}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        f"0\r\n\r\nGET /smuggled/{label} HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode()
    reply = raw_exchange(server.http_port, data)
    assert reply.status == 400
    assert reply.closed
    (item,) = poll_items(client)
    assert "Content-Length can't be present with Transfer-Encoding" in item["rejected"]


def test_chunk_size_overflow_and_endless_stream(server) -> None:
    client = server.client()
    host = f"{label_of(client)}.{server.domain}"
    overflow = f"POST / HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    reply = raw_exchange(server.http_port, overflow + b"FFFFFFFFFFFFFFFFF\r\n")
    assert reply.status == 400
    stream = request_bytes("POST", "/s", [("Host", host), ("Transfer-Encoding", "chunked")], b"1\r\na\r\n" * 100_000)
    assert raw_exchange(server.http_port, stream + b"0\r\n\r\n", timeout=30).status == 200
    overflow_item, stream_item = poll_items(client)
    assert overflow_item["rejected"] == "invalid HTTP request: Chunk size overflow"
    assert stream_item["truncated"] is True
    assert "a" * MAX_REQUEST_SIZE + "\r\n0\r\n\r\n" in stream_item["raw-request"]


def test_half_sent_body(server) -> None:
    client = server.client()
    host = f"{label_of(client)}.{server.domain}"
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n0123456789".encode())
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    items = poll_items(client)
    while not items and time.monotonic() < deadline:
        time.sleep(0.1)
        items = poll_items(client)
    (item,) = items
    assert item["incomplete"] is True
    assert item["raw-request"].endswith("\r\n\r\n0123456789")


# Dynamic responses.


def test_bad_dynamic_parameters_are_recorded(start_server) -> None:
    server = start_server("-dynamic-resp")
    client = server.client()
    host = f"{label_of(client)}.{server.domain}"
    cases = [
        ("/?status=0", 400),
        ("/?status=abc", 400),
        ("/b64_body:", 400),
        ("/?header=X:%0d%0aSet-Cookie:%20a=b", 400),
        ("/b64_body:aGVsbG8=/", 200),
    ]
    for target, status in cases:
        reply = raw_exchange(server.http_port, request_bytes("GET", target, [("Host", host)]))
        assert reply.status == status, target
        assert reply.header("set-cookie") is None
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.base_url + "/?delay=999999", headers={"Host": host}, timeout=1)
    items = poll_items(client)
    targets = [item["raw-request"].split(" ")[1] for item in items]
    assert targets == [target for target, _ in cases] + ["/?delay=999999"]
    assert items[4]["raw-response"].endswith("\r\n\r\nhello")
    assert "status 'abc' is not a number" in items[1]["raw-response"]


# Encoding.


def test_non_ascii_host(server) -> None:
    client = server.client()
    label = label_of(client)
    first = raw_exchange(server.http_port, f"GET / HTTP/1.1\r\nHost: ééé.{label}.oast.test\r\n\r\n".encode())
    second = raw_exchange(
        server.http_port, b"GET / HTTP/1.1\r\nHost: \xff\xfe." + label.encode() + b".oast.test\r\n\r\n"
    )
    third = raw_exchange(server.http_port, b"GET / HTTP/1.1\r\nHost: \xff\xfe.oast.test\r\n\r\n", linger=0.5)
    fourth = raw_exchange(server.http_port, b"GET / HTTP/1.1\r\nHost: .oast.test\r\n\r\n", linger=0.5)
    assert first.status == 200
    assert second.status == 200
    assert third.status == 200
    assert fourth.status == 200
    items = poll_items(client)
    assert [item["full-id"] for item in items] == [f"ééé.{label}", f"\\xff\\xfe.{label}"]
    assert items[1]["raw-request"].startswith(f"GET / HTTP/1.1\r\nHost: \\xff\\xfe.{label}.oast.test\r\n")


def test_newline_and_nul_survive_byte_exact(server) -> None:
    client = server.client()
    host = f"{label_of(client)}.{server.domain}"
    rejected_head = f"GET /a%0ab%00 HTTP/1.1\r\nHost: {host}\r\nX: a\x00b\r\n\r\n".encode()
    body = b'line\nbreak\x00nul\r\n"quote\\'
    posted = request_bytes("POST", "/a%0ab", [("Host", host), ("Content-Length", str(len(body)))], body)
    assert raw_exchange(server.http_port, rejected_head).status == 400
    assert raw_exchange(server.http_port, posted).status == 200
    items = poll_items(client)
    assert len(items) == 2
    assert items[0]["raw-request"] == rejected_head.decode()
    assert items[1]["raw-request"].endswith("\r\n\r\n" + body.decode())
    assert all(item["raw-request"] for item in items)


def test_reregistered_id_sees_only_new_hits(start_server) -> None:
    server = start_server("-eviction", "0.00002")
    old = server.client()
    host = f"{label_of(old)}.{server.domain}"
    raw_exchange(server.http_port, request_bytes("GET", "/before", [("Host", host)]))
    time.sleep(2.5)
    new = InteractshClient(server.base_url)
    new.correlation_id = old.correlation_id
    new.register()
    raw_exchange(server.http_port, request_bytes("GET", "/after", [("Host", host)]))
    items = poll_items(new)
    assert [item["raw-request"].split(" ")[1] for item in items] == ["/after"]


# Sessions and the API.


def test_unknown_id_and_wrong_secret_look_alike(server) -> None:
    client = server.client()
    raw_exchange(server.http_port, request_bytes("GET", "/", [("Host", f"{label_of(client)}.{server.domain}")]))
    replies = [
        httpx.get(server.base_url + "/poll?id=zzzzzzzzzzzzzzzzzzzz&secret=x"),
        httpx.get(server.base_url + f"/poll?id={client.correlation_id}&secret=WRONG"),
        httpx.get(server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret.upper()}"),
    ]
    assert {reply.status_code for reply in replies} == {400}
    assert {reply.content for reply in replies} == {NOT_FOUND_POLL}
    assert len(poll_items(client)) == 1, "a failed poll drained the session"


@pytest.mark.parametrize(
    ("correlation_id", "reason"),
    [
        ("", "20"),
        ("a" * 10_000, "20"),
        ("aaaa", "20"),
        ("../../x", "20"),
        ("aaaaaaaaaaaaaaaaaaa\u00e9", "20"),
    ],
)
def test_malformed_correlation_ids(server, correlation_id: str, reason: str) -> None:
    client = InteractshClient(server.base_url)
    body = {"public-key": client.public_key_b64(), "secret-key": client.secret, "correlation-id": correlation_id}
    response = httpx.post(server.base_url + "/register", content=json.dumps(body).encode())
    if len(json.dumps(body)) > 16 * 1024:
        assert response.status_code == 413
        return
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("could not set id and public key: ")
    assert reason in message, "the error must name the expected id length"


def test_upper_case_id_is_lowered(server) -> None:
    client = InteractshClient(server.base_url)
    client.correlation_id = client.correlation_id.upper()
    client.register()
    client.correlation_id = client.correlation_id.lower()
    raw_exchange(server.http_port, request_bytes("GET", "/", [("Host", f"{label_of(client)}.{server.domain}")]))
    assert len(poll_items(client)) == 1


def _public_key_cases() -> list[tuple[str, str]]:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    ec_pem = ec_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return [
        ("garbage base64", base64.b64encode(b"not a pem at all").decode()),
        ("bad base64", "!!!"),
        ("512-bit RSA", b64_pem((DATA / "rsa-512-public.pem").read_bytes())),
        ("8192-bit RSA", b64_pem((DATA / "rsa-8192-public.pem").read_bytes())),
        ("EC key", b64_pem(ec_pem)),
    ]


def test_malformed_public_keys(server) -> None:
    client = InteractshClient(server.base_url)
    for name, public_key in _public_key_cases():
        body = {"public-key": public_key, "secret-key": client.secret, "correlation-id": client.correlation_id}
        response = httpx.post(server.base_url + "/register", content=json.dumps(body).encode())
        assert response.status_code == 400, name
        assert response.json()["error"].startswith("could not set id and public key: "), name
    poll = httpx.get(server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}")
    assert poll.content == NOT_FOUND_POLL, "a rejected key left a session behind"


def test_oversized_register_body(server) -> None:
    response = httpx.post(server.base_url + "/register", content=b'{"public-key":"' + b"A" * 20_000 + b'"}')
    assert response.status_code == 413


def test_inbound_hits_do_not_extend_ttl(start_server) -> None:
    server = start_server("-eviction", "0.00004")
    client = server.client()
    host = f"{label_of(client)}.{server.domain}"
    for _ in range(5):
        raw_exchange(server.http_port, request_bytes("GET", "/keepalive", [("Host", host)]))
        time.sleep(1)
    response = httpx.get(server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}")
    assert response.content == NOT_FOUND_POLL, "hits from outside kept the session alive"


def test_deregister_with_wrong_secret_changes_nothing(start_server) -> None:
    server = start_server("-metrics")
    client = server.client()
    before = httpx.get(server.base_url + "/metrics").json()["sessions"]
    wrong = json.dumps({"correlation-id": client.correlation_id, "secret-key": "WRONG"}).encode()
    for _ in range(50):
        response = httpx.post(server.base_url + "/deregister", content=wrong)
        assert response.content == NOT_FOUND_DEREGISTER
    assert httpx.get(server.base_url + "/metrics").json()["sessions"] == before
    raw_exchange(server.http_port, request_bytes("GET", "/", [("Host", f"{label_of(client)}.{server.domain}")]))
    assert len(poll_items(client)) == 1


def test_slow_clients_do_not_block_others(http_server) -> None:
    server = http_server(http_header_timeout=1.0, http_max_connections_per_ip=40)
    client = server.client()
    slow = [socket.create_connection((HOST, server.http_port), timeout=10) for _ in range(30)]
    try:
        for sock in slow:
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {label_of(client)}.oast.test\r\n".encode())
        served = httpx.get(server.base_url + "/", headers={"Host": f"{label_of(client)}.oast.test"}, timeout=5)
        assert served.status_code == 200
        assert all(read_reply(sock, timeout=10).status == 408 for sock in slow)
    finally:
        for sock in slow:
            sock.close()
    items = poll_items(client)
    assert len(items) == 31
    assert sum(1 for item in items if item.get("rejected")) == 30
