"""Interaction capture over real sockets: id matching, record texts, default bodies and headers."""

from __future__ import annotations

import socket

import httpx
import interactsh
import pytest
from http_helpers import DOMAIN, HOST, poll_items, raw_exchange, read_reply, request_bytes

CORS_DUMP = (
    "Access-Control-Allow-Credentials: true\r\n"
    "Access-Control-Allow-Headers: Content-Type, Authorization\r\n"
    "Access-Control-Allow-Origin: *\r\n"
)


def test_raw_request_is_go_dump(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    headers = [("Host", host), ("x-custom", "v"), ("Content-Length", "5"), ("User-Agent", "t"), ("Accept", "*/*")]
    reply = raw_exchange(server.http_port, request_bytes("POST", "/p?q=1", headers, b"hello"))
    assert reply.status == 200
    (item,) = poll_items(client)
    assert item["raw-request"] == (
        f"POST /p?q=1 HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\nConnection: close\r\n"
        "Content-Length: 5\r\nUser-Agent: t\r\nX-Custom: v\r\n\r\nhello"
    )
    assert item["protocol"] == "http"
    assert item["remote-address"] == HOST
    assert item["unique-id"] == host.split(".")[0]
    assert item["full-id"] == host.split(".")[0]
    assert "truncated" not in item
    assert "incomplete" not in item


def test_chunked_body_is_dumped_chunked(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    body = b"4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"
    reply = raw_exchange(
        server.http_port, request_bytes("POST", "/c", [("Host", host), ("Transfer-Encoding", "chunked")], body)
    )
    assert reply.status == 200
    (item,) = poll_items(client)
    assert item["raw-request"] == (
        f"POST /c HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        "9\r\nwikipedia\r\n0\r\n\r\n"
    )


def test_absolute_form_host_wins(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    target = f"http://{host}:80/abs?x=1"
    reply = raw_exchange(server.http_port, request_bytes("GET", target, [("Host", "other.example")]))
    assert reply.status == 200
    (item,) = poll_items(client)
    assert item["raw-request"] == f"GET {target} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"
    assert item["full-id"] == host.split(".")[0]


def test_subdomain_full_id_keeps_case(http_server) -> None:
    server = http_server()
    client = server.client()
    label = client.payload(DOMAIN).split(".")[0]
    host = f"Foo.{label.upper()}.{DOMAIN}"
    httpx.get(server.base_url + "/", headers={"Host": host})
    (item,) = poll_items(client)
    assert item["unique-id"] == label
    assert item["full-id"] == f"Foo.{label.upper()}"


def test_one_record_per_correlation_id(http_server) -> None:
    server = http_server()
    first = server.client()
    second = server.client()
    host = first.payload(DOMAIN)
    path = f"/{first.payload(DOMAIN)}/{second.payload(DOMAIN)}?again={first.payload(DOMAIN)}"
    httpx.get(server.base_url + path, headers={"Host": host})
    first_items = poll_items(first)
    second_items = poll_items(second)
    assert len(first_items) == 1
    assert first_items[0]["full-id"] == host.split(".")[0], "the Host hit should win over the path"
    assert len(second_items) == 1
    assert second_items[0]["full-id"] == path.split("/")[2].split(".")[0]


def test_unregistered_ids_are_counted_not_stored(http_server) -> None:
    server = http_server()
    httpx.get(server.base_url + "/", headers={"Host": "a" * 33 + "." + DOMAIN})
    httpx.get(server.base_url + "/x")
    assert server.counters.http == 2
    assert server.counters.recorded == 0


def test_default_body_reflects_label(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    label = host.split(".")[0]
    response = httpx.get(server.base_url + "/page", headers={"Host": host})
    expected = f"<html><head></head><body>{label[::-1]}</body></html>"
    assert response.text == expected
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["server"] == DOMAIN
    assert response.headers["x-interactsh-version"] == interactsh.__version__
    (item,) = poll_items(client)
    assert item["raw-response"] == (
        f"HTTP/1.1 200 OK\r\nConnection: close\r\n{CORS_DUMP}Content-Type: text/html; charset=utf-8\r\n"
        f"Server: {DOMAIN}\r\nX-Interactsh-Version: {interactsh.__version__}\r\n\r\n{expected}"
    )


@pytest.mark.parametrize(
    ("path", "content_type", "template"),
    [
        ("/robots.txt", "text/plain; charset=utf-8", "User-agent: *\nDisallow: / # {r}"),
        ("/ROBOTS.TXT", "text/plain; charset=utf-8", "User-agent: *\nDisallow: / # {r}"),
        ("/a/b.json", "application/json", '{{"data":"{r}"}}'),
        ("/a/b.XML", "application/xml", "<data>{r}</data>"),
        ("/", "text/html; charset=utf-8", "<html><head></head><body>{r}</body></html>"),
    ],
)
def test_default_bodies(http_server, path: str, content_type: str, template: str) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    response = httpx.get(server.base_url + path, headers={"Host": host})
    assert response.headers["content-type"] == content_type
    assert response.text == template.format(r=host.split(".")[0][::-1])


def test_banner_without_reflection(http_server) -> None:
    server = http_server()
    response = httpx.get(server.base_url + "/?status=500", headers={"Host": "www." + DOMAIN})
    assert response.status_code == 200
    assert "<h1>Out-of-band interaction server</h1>" in response.text
    assert f"*.{DOMAIN}" in response.text
    assert "projectdiscovery" not in response.text.lower()


def test_server_header_options(http_server) -> None:
    server = http_server(server_header="custom-server", disable_version=True, domains=["one.test", "two.test"])
    response = httpx.get(server.base_url + "/x", headers={"Host": "a.two.test"})
    assert response.headers["server"] == "custom-server"
    assert "x-interactsh-version" not in response.headers
    plain = http_server(domains=["one.test", "two.test"])
    assert httpx.get(plain.base_url + "/x", headers={"Host": "a.TWO.test:99"}).headers["server"] == "two.test"
    assert httpx.get(plain.base_url + "/x", headers={"Host": "elsewhere"}).headers["server"] == "one.test"


def test_origin_ip_header(http_server) -> None:
    server = http_server(origin_ip_header="X-Real-IP")
    client = server.client()
    host = client.payload(DOMAIN)
    httpx.get(server.base_url + "/", headers={"Host": host, "X-Real-IP": "203.0.113.9"})
    httpx.get(server.base_url + "/", headers={"Host": host})
    httpx.get(server.base_url + "/", headers={"Host": host, "X-Forwarded-For": "198.51.100.1"})
    items = poll_items(client)
    assert [item["remote-address"] for item in items] == ["203.0.113.9", HOST, HOST]


@pytest.mark.parametrize("scan_everywhere", [False, True])
def test_scan_everywhere(http_server, scan_everywhere: bool) -> None:
    server = http_server(scan_everywhere=scan_everywhere)
    header_client = server.client()
    body_client = server.client()
    header_id = header_client.payload(DOMAIN).split(".")[0].upper()
    body_id = body_client.payload(DOMAIN).split(".")[0]
    httpx.post(
        server.base_url + "/form",
        headers={"Referer": f"https://{header_id}.{DOMAIN}/"},
        content=f'{{"url":"{body_id}"}}'.encode(),
    )
    header_items = poll_items(header_client)
    body_items = poll_items(body_client)
    if not scan_everywhere:
        assert header_items == []
        assert body_items == []
        return
    assert [item["full-id"] for item in header_items] == [header_id]
    assert [item["unique-id"] for item in header_items] == [header_id.lower()]
    assert [item["full-id"] for item in body_items] == [body_id]


def test_keep_alive_and_pipelining(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    first = f"GET /one HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    second = f"POST /two HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\nabc".encode()
    third = f"GET /three HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((HOST, server.http_port), timeout=5) as sock:
        sock.sendall(first + second + third)
        reply = read_reply(sock)
    assert reply.closed
    assert reply.data.count(b"HTTP/1.1 200 OK") == 3
    items = poll_items(client)
    assert [item["raw-request"].split("\r\n")[0] for item in items] == [
        "GET /one HTTP/1.1",
        "POST /two HTTP/1.1",
        "GET /three HTTP/1.1",
    ]
    assert items[1]["raw-request"].endswith("\r\n\r\nabc")


def test_upgrade_request_is_served_then_closed(http_server) -> None:
    server = http_server()
    client = server.client()
    host = client.payload(DOMAIN)
    head = [("Host", host), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
    data = ("\r\n".join(["GET /ws HTTP/1.1", *(f"{k}: {v}" for k, v in head)]) + "\r\n\r\n").encode()
    reply = raw_exchange(server.http_port, data + b"\x81\x05hello")
    assert reply.status == 200
    assert reply.closed
    (item,) = poll_items(client)
    assert item["raw-request"].startswith("GET /ws HTTP/1.1\r\n")


def test_head_request(http_server) -> None:
    server = http_server()
    client = server.client()
    response = httpx.head(server.base_url + "/h", headers={"Host": client.payload(DOMAIN)})
    assert response.status_code == 200
    assert response.content == b""
    (item,) = poll_items(client)
    assert item["raw-request"].startswith("HEAD /h HTTP/1.1\r\n")


def test_binary_body_round_trip(http_server) -> None:
    server = http_server()
    client = server.client()
    body = bytes(range(256)) + "é€".encode()
    host = client.payload(DOMAIN)
    raw_exchange(
        server.http_port, request_bytes("PUT", "/bin", [("Host", host), ("Content-Length", str(len(body)))], body)
    )
    (item,) = poll_items(client)
    dumped = item["raw-request"].split("\r\n\r\n", 1)[1]
    assert dumped[:128] == bytes(range(128)).decode("ascii")
    assert dumped.endswith("é€")
    # Bytes 0x80-0xFF are not UTF-8 on their own: each is recorded as the text \\xNN.
    assert dumped[128 : 128 + 4 * 128] == "".join(f"\\x{byte:02x}" for byte in range(128, 256))


def test_wildcard_captures_go_to_tlddata(http_server) -> None:
    server = http_server(wildcard=True, token="t0ken", origin_ip_header="X-Real-IP")
    client = server.client()
    for host in ("anything.oast.test", "elsewhere.example", "x.OAST.test:8080", "xoast.test"):
        httpx.get(server.base_url + "/w", headers={"Host": host, "X-Real-IP": "203.0.113.9"})
    result = client.poll()
    assert result.interactions == []
    assert [item["unique-id"] for item in result.tlddata] == ["anything.oast.test", "x.OAST.test:8080"]
    assert [item["full-id"] for item in result.tlddata] == ["anything.oast.test", "x.OAST.test:8080"]
    assert {item["remote-address"] for item in result.tlddata} == {HOST}
    assert result.tlddata[0]["raw-request"].startswith("GET /w HTTP/1.1\r\nHost: anything.oast.test\r\n")
    assert client.poll().tlddata == [], "a consumer saw the same wildcard captures twice"
