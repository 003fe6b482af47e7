"""Operator bodies over the real process: -default-http-response, -http-directory and -http-index.

Requests go over raw sockets wherever the path matters, so no client
normalises a traversal attempt away before the server receives it.
"""

from __future__ import annotations

import email.utils
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import interactsh
import pytest
from http_helpers import HOST, RawReply, raw_exchange, read_reply, request_bytes, wait_until
from serverproc import DOMAIN, PACKAGE_ROOT, SERVICES, RunningServer

VERSION = interactsh.__version__
CORS_DUMP = (
    "Access-Control-Allow-Credentials: true\r\n"
    "Access-Control-Allow-Headers: Content-Type, Authorization\r\n"
    "Access-Control-Allow-Origin: *\r\n"
)
SECRET = b"top secret outside the static directory"
PNG_START = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
INDEX_TEXT = "<!DOCTYPE html><html><body><p>Welcome to {DOMAIN}, also {DOMAIN}</p></body></html>\n"
DEFAULT_TEXT = "default response for {DOMAIN}"


@dataclass
class Site:
    """Files of one test: a static directory, a secret beside it and two templates."""

    root: Path
    static: Path
    secret: Path
    index: Path
    default: Path


@pytest.fixture
def site(tmp_path: Path) -> Site:
    root = tmp_path / "site"
    static = root / "static"
    (static / "sub").mkdir(parents=True)
    (static / "a.txt").write_bytes(b"plain text file\n")
    (static / "page.html").write_bytes(b"<html><body>static page</body></html>")
    (static / "sub" / "nested.json").write_bytes(b'{"nested":true}')
    (static / "noext").write_bytes(PNG_START)
    (static / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    secret = root / "secret.txt"
    secret.write_bytes(SECRET)
    (static / "escape").symlink_to(secret)
    (static / "escape_dir").symlink_to(root)
    (static / "alias.txt").symlink_to("a.txt")
    os.mkfifo(static / "fifo")
    index = root / "index.html"
    index.write_text(INDEX_TEXT)
    default = root / "default.txt"
    default.write_text(DEFAULT_TEXT)
    return Site(root, static, secret, index, default)


def get(server: RunningServer, target: str, host: str = f"www.{DOMAIN}", method: str = "GET", **extra: str) -> RawReply:
    headers = [("Host", host), *((name.replace("_", "-"), value) for name, value in extra.items())]
    return raw_exchange(server.http_port, request_bytes(method, target, headers))


def static_dump(status: str, headers: list[str], body: str) -> str:
    lines = "".join(f"{line}\r\n" for line in headers)
    return f"HTTP/1.1 {status}\r\nConnection: close\r\n{lines}\r\n{body}"


# -http-directory


def test_static_file_is_served_and_recorded(start_server, site: Site) -> None:
    server = start_server("-hd", str(site.static))
    client = server.client()
    host = client.payload(DOMAIN)
    reply = get(server, "/s/a.txt", host)
    assert reply.status == 200
    assert reply.body == b"plain text file\n"
    assert reply.header("content-type") == "text/plain; charset=utf-8"
    assert reply.header("content-length") == "16"
    assert reply.header("accept-ranges") == "bytes"
    modified = email.utils.formatdate(int((site.static / "a.txt").stat().st_mtime), usegmt=True)
    assert reply.header("last-modified") == modified
    (item,) = client.poll().interactions
    assert item["raw-response"] == (
        f"HTTP/1.1 200 OK\r\nConnection: close\r\nAccept-Ranges: bytes\r\n{CORS_DUMP}Content-Length: 16\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nLast-Modified: {modified}\r\nServer: {DOMAIN}\r\n"
        f"X-Interactsh-Version: {VERSION}\r\n\r\nplain text file\n"
    )
    assert "response-truncated" not in item


@pytest.mark.parametrize(
    ("target", "content_type", "body"),
    [
        ("/s/page.html", "text/html; charset=utf-8", b"<html><body>static page</body></html>"),
        ("/s/sub/nested.json", "application/json", b'{"nested":true}'),
        ("/s/noext", "image/png", PNG_START),
        ("/s/caf%E9.txt", "text/plain; charset=utf-8", b"latin-1 name"),
        ("/s/alias.txt", "text/plain; charset=utf-8", b"plain text file\n"),
    ],
)
def test_static_content_types(start_server, site: Site, target: str, content_type: str, body: bytes) -> None:
    server = start_server("-hd", str(site.static))
    reply = get(server, target)
    assert reply.status == 200
    assert reply.header("content-type") == content_type
    assert reply.body == body


@pytest.mark.parametrize(
    "target",
    [
        "/S/a.txt",
        "/s/A.TXT",
        "/s/",
        "/s/sub/",
        "/s/sub",
        "/s/missing.txt",
        "/s/fifo",
        "/s/a.txt/",
    ],
)
def test_static_not_found(start_server, site: Site, target: str) -> None:
    server = start_server("-hd", str(site.static))
    reply = get(server, target)
    assert reply.status == 404
    assert reply.body == b"404 page not found\n"


def test_static_traversal_is_rejected(start_server, site: Site) -> None:
    server = start_server("-hd", str(site.static))
    absolute = str(site.secret)
    targets = [
        "/s/../secret.txt",
        "/s/%2e%2e/secret.txt",
        "/s/%2E%2E%2Fsecret.txt",
        "/s/sub/../../secret.txt",
        "/s/sub/%2e%2e/%2e%2e/secret.txt",
        "/s/./../secret.txt",
        "/s/..%5csecret.txt",
        "/s//" + absolute.lstrip("/"),
        "/s/" + absolute.replace("/", "%2F"),
        "/s//etc/passwd",
        "/s/escape",
        "/s/escape_dir/secret.txt",
        "/s/a.txt%00.png",
        f"http://www.{DOMAIN}/s/../secret.txt",
    ]
    for target in targets:
        reply = get(server, target)
        assert reply.status == 404, target
        assert SECRET not in reply.data, target
    assert get(server, "/s/a.txt").status == 200


def test_static_fifo_does_not_block(start_server, site: Site) -> None:
    server = start_server("-hd", str(site.static))
    assert get(server, "/s/fifo").status == 404
    # The listener still serves: opening the FIFO did not wait for a writer.
    assert get(server, "/s/a.txt").status == 200


def test_static_head_range_and_conditionals(start_server, site: Site) -> None:
    server = start_server("-hd", str(site.static))
    head = get(server, "/s/a.txt", method="HEAD")
    assert head.status == 200
    assert head.header("content-length") == "16"
    assert head.body == b""

    partial = get(server, "/s/a.txt", Range="bytes=6-9")
    assert partial.status == 206
    assert partial.body == b"text"
    assert partial.header("content-range") == "bytes 6-9/16"
    suffix = get(server, "/s/a.txt", Range="bytes=-5")
    assert suffix.status == 206
    assert suffix.body == b"file\n"
    open_ended = get(server, "/s/a.txt", Range="bytes=11-")
    assert open_ended.body == b"file\n"

    beyond = get(server, "/s/a.txt", Range="bytes=100-")
    assert beyond.status == 416
    assert beyond.header("content-range") == "bytes */16"
    invalid = get(server, "/s/a.txt", Range="bytes=x-y")
    assert invalid.status == 416
    several = get(server, "/s/a.txt", Range="bytes=0-1,4-5")
    assert several.status == 200
    assert several.body == b"plain text file\n"

    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    unchanged = get(server, "/s/a.txt", If_Modified_Since=later)
    assert unchanged.status == 304
    assert unchanged.body == b""
    earlier = email.utils.formatdate(0, usegmt=True)
    assert get(server, "/s/a.txt", If_Modified_Since=earlier).status == 200


def test_static_dynamic_parameters(start_server, site: Site) -> None:
    server = start_server("-hd", str(site.static), "-dr")
    client = server.client()
    host = client.payload(DOMAIN)
    reply = get(server, "/s/a.txt?status=201&header=X-Test:yes&body=ignored&b64_body=aWdub3JlZA", host)
    assert reply.status == 201
    assert reply.header("x-test") == "yes"
    assert reply.body == b"plain text file\n"
    typed = get(server, "/s/a.txt?header=Content-Type:text/csv")
    assert typed.header("content-type") == "text/csv"
    assert typed.body == b"plain text file\n"
    delayed = get(server, "/s/a.txt?delay=0.1")
    assert delayed.status == 200
    assert delayed.body == b"plain text file\n"

    bad = get(server, "/s/a.txt?status=abc", host)
    assert bad.status == 400
    assert b"status 'abc' is not a number" in bad.body
    first, second = client.poll().interactions
    assert first["raw-response"].startswith("HTTP/1.1 201 Created\r\n")
    assert "X-Test: yes\r\n" in first["raw-response"]
    assert first["raw-response"].endswith("\r\n\r\nplain text file\n")
    assert second["raw-response"].startswith("HTTP/1.1 400 Bad Request\r\n")


def test_static_query_without_dynamic_mode(start_server, site: Site) -> None:
    server = start_server("-hd", str(site.static))
    reply = get(server, "/s/a.txt?status=500&header=X-Test:yes")
    assert reply.status == 200
    assert reply.header("x-test") is None
    assert reply.body == b"plain text file\n"


def test_static_large_file_record_is_capped(start_server, site: Site) -> None:
    content = bytes(ord("a") + index % 26 for index in range(3 * 1024 * 1024 + 17))
    (site.static / "large.txt").write_bytes(content)
    server = start_server("-hd", str(site.static))
    client = server.client()
    reply = get(server, "/s/large.txt", client.payload(DOMAIN))
    assert reply.status == 200
    assert reply.header("content-length") == str(len(content))
    assert reply.body == content
    (item,) = client.poll().interactions
    assert item["response-truncated"] is True
    head, body = item["raw-response"].split("\r\n\r\n", 1)
    assert f"Content-Length: {len(content)}" in head
    assert body == content[: 64 * 1024].decode()


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("VmHWM is missing from /proc/<pid>/status")


def download_length(port: int, target: str) -> tuple[int, int]:
    """Request ``target`` and count the body bytes without keeping them; return (Content-Length, received)."""
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(request_bytes("GET", target, [("Host", f"www.{DOMAIN}")]))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before the response head"
            data += chunk
        head, received_start = data.split(b"\r\n\r\n", 1)
        length = int(RawReply(head + b"\r\n\r\n", False).header("content-length") or -1)
        received = len(received_start)
        while chunk := sock.recv(1024 * 1024):
            received += len(chunk)
    return length, received


def test_static_huge_file_is_streamed(start_server, site: Site) -> None:
    size = 256 * 1024 * 1024
    with (site.static / "huge.bin").open("wb") as file:
        file.truncate(size)
    server = start_server("-hd", str(site.static))
    pid = server.process.pid
    before = peak_rss_kib(pid)
    length, received = download_length(server.http_port, "/s/huge.bin")
    assert length == size
    assert received == size
    growth_mib = (peak_rss_kib(pid) - before) / 1024
    assert growth_mib < 64, f"serving a {size >> 20} MiB file raised the peak RSS by {growth_mib:.0f} MiB"


def test_static_client_leaves_mid_stream(start_server, site: Site) -> None:
    with (site.static / "big.bin").open("wb") as file:
        file.truncate(64 * 1024 * 1024)
    server = start_server("-hd", str(site.static))
    for _ in range(3):
        with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
            sock.sendall(request_bytes("GET", "/s/big.bin", [("Host", f"www.{DOMAIN}")]))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert get(server, "/s/a.txt").status == 200


def test_static_file_shrinks_mid_stream(start_server, site: Site) -> None:
    path = site.static / "shrinking.bin"
    size = 64 * 1024 * 1024
    with path.open("wb") as file:
        file.truncate(size)
    server = start_server("-hd", str(site.static))
    with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(request_bytes("GET", "/s/shrinking.bin", [("Host", f"www.{DOMAIN}")]))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        os.truncate(path, 1024 * 1024)
        rest = read_reply(sock, timeout=20)
    assert rest.closed
    assert len(first) + len(rest.data) < size
    assert wait_until(lambda: "shrank while it was sent" in server.logs())
    assert get(server, "/s/a.txt").status == 200


# -http-index


def test_index_replaces_domain(start_server, site: Site) -> None:
    server = start_server("-hi", str(site.index))
    reply = get(server, "/")
    assert reply.status == 200
    assert reply.body == INDEX_TEXT.replace("{DOMAIN}", DOMAIN).encode()
    assert reply.header("content-type") == "text/html; charset=utf-8"


def test_index_is_recorded(start_server, site: Site) -> None:
    server = start_server("-hi", str(site.index))
    client = server.client()
    reply = get(server, "/?u=" + client.payload(DOMAIN))
    expected = INDEX_TEXT.replace("{DOMAIN}", DOMAIN)
    assert reply.body == expected.encode()
    (item,) = client.poll().interactions
    assert item["raw-response"].endswith("\r\n\r\n" + expected)
    assert "Content-Type: text/html; charset=utf-8\r\n" in item["raw-response"]


def test_index_only_without_reflection(start_server, site: Site) -> None:
    server = start_server("-hi", str(site.index))
    client = server.client()
    host = client.payload(DOMAIN)
    reply = get(server, "/", host)
    assert reply.body == f"<html><head></head><body>{host.split('.')[0][::-1]}</body></html>".encode()
    assert get(server, "/other").body == b"<html><head></head><body></body></html>"


def test_index_uses_server_header(start_server, site: Site) -> None:
    server = start_server("-hi", str(site.index), "-csh", "custom.example")
    reply = get(server, "/")
    assert reply.body == INDEX_TEXT.replace("{DOMAIN}", "custom.example").encode()


def test_empty_index_keeps_banner(start_server, site: Site) -> None:
    site.index.write_bytes(b"")
    server = start_server("-hi", str(site.index))
    reply = get(server, "/")
    assert b"<h1>Out-of-band interaction server</h1>" in reply.body
    assert "is empty, so the built-in responses are used instead" in server.logs()


# -default-http-response


def test_default_response_for_every_request(start_server, site: Site) -> None:
    server = start_server("-dhr", str(site.default), "-hd", str(site.static), "-hi", str(site.index), "-dr")
    expected = DEFAULT_TEXT.replace("{DOMAIN}", DOMAIN).encode()
    requests = [
        ("GET", "/"),
        ("GET", "/s/a.txt"),
        ("POST", "/x.json"),
        ("GET", "/robots.txt"),
        ("PUT", "/any.xml?status=500&body=dynamic"),
        ("DELETE", "/b64_body:aGk=/"),
    ]
    for method, target in requests:
        reply = get(server, target, method=method)
        assert reply.status == 200, target
        assert reply.body == expected, target
        assert reply.header("content-type") == "text/plain; charset=utf-8", target
    options = get(server, "/", method="OPTIONS")
    assert options.status == 204


def test_default_response_is_recorded(start_server, site: Site) -> None:
    server = start_server("-dhr", str(site.default), "-d", f"{DOMAIN},other.test")
    client = server.client()
    host = client.payload(DOMAIN)
    reply = get(server, "/page", host)
    expected = DEFAULT_TEXT.replace("{DOMAIN}", DOMAIN)
    assert reply.body == expected.encode()
    (item,) = client.poll().interactions
    assert item["raw-response"] == static_dump(
        "200 OK",
        [*CORS_DUMP.splitlines(), "Content-Type: text/plain; charset=utf-8", f"Server: {DOMAIN}"]
        + [f"X-Interactsh-Version: {VERSION}"],
        expected,
    )
    other = get(server, "/page", "www.other.test")
    assert other.body == DEFAULT_TEXT.replace("{DOMAIN}", "other.test").encode()


def test_default_response_large_record_is_capped(start_server, site: Site) -> None:
    text = "<html>" + "x" * (200 * 1024) + "</html>"
    site.default.write_text(text)
    server = start_server("-dhr", str(site.default), "-max-request-size", "4096")
    client = server.client()
    reply = get(server, "/", client.payload(DOMAIN))
    assert reply.body == text.encode()
    (item,) = client.poll().interactions
    assert item["response-truncated"] is True
    assert item["raw-response"].split("\r\n\r\n", 1)[1] == text[:4096]


# Startup errors.


def run_until_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the server with every port free (0) and return once it exits."""
    command = [sys.executable, "-m", "interactsh.cli", "-listen-ip", HOST, "-ip", HOST, "-domain", DOMAIN]
    for service in SERVICES:
        command += [f"-{service}-port", "0"]
    environment = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, "HOME": str(tmp_path)}
    return subprocess.run(
        command + list(args), capture_output=True, text=True, timeout=60, env=environment, check=False
    )


@pytest.mark.parametrize(
    ("flag", "target", "message"),
    [
        ("-dhr", "missing.txt", "could not be read: No such file or directory"),
        ("-hi", "missing.html", "could not be read: No such file or directory"),
        ("-dhr", "large.txt", "is larger than the limit of 1000 bytes"),
        ("-hi", "large.txt", "is larger than the limit of 1000 bytes"),
        ("-dhr", "static", "is not a regular file"),
        ("-hi", "static/fifo", "is not a regular file"),
        ("-hd", "missing", "is not a directory"),
        ("-hd", "secret.txt", "is not a directory"),
    ],
)
def test_startup_errors(tmp_path: Path, site: Site, flag: str, target: str, message: str) -> None:
    (site.root / "large.txt").write_bytes(b"x" * 1001)
    path = str(site.root / target)
    result = run_until_exit(tmp_path, flag, path, "-max-static-file-size", "1000")
    assert result.returncode == 2, result.stderr
    assert path in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
