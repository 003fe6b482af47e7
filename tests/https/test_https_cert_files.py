"""HTTPS with -cert/-privkey against the real server process."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from certfiles import write_self_signed
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from serverproc import HOST, PACKAGE_ROOT, RunningServer

# Long enough to wait for the server's handshake timeout of 1 s, short enough to fail fast when it never comes.
CLOSE_WAIT = 10.0


@dataclass
class TlsServer:
    """A server with a self-signed certificate and a client context that trusts exactly that certificate."""

    server: RunningServer
    certificate: x509.Certificate
    cert_path: Path

    @property
    def port(self) -> int:
        return self.server.ports["https"]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))


@pytest.fixture
def tls_server(start_server: Callable[..., RunningServer], tmp_path: Path) -> TlsServer:
    cert_path, key_path, certificate = write_self_signed(tmp_path, ["*.oast.test", "oast.test"])
    server = start_server("-cert", str(cert_path), "-privkey", str(key_path), "-http-tls-handshake-timeout", "1")
    return TlsServer(server, certificate, cert_path)


def handshake(port: int, context: ssl.SSLContext, server_name: str | None) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise


def peer_certificate(tls: ssl.SSLSocket) -> x509.Certificate:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def read_until_closed(sock: socket.socket) -> bytes:
    """Read until the server closes the connection; raise ``TimeoutError`` when it keeps it open."""
    sock.settimeout(CLOSE_WAIT)
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {"PYTHONPATH": PACKAGE_ROOT, "HOME": str(home), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "interactsh.cli", "-http-port", "0", "-dns-port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment, check=False)


def test_cert_files_served(tls_server: TlsServer) -> None:
    with handshake(tls_server.port, tls_server.context(), "abc.oast.test") as tls:
        served = peer_certificate(tls)

    assert served == tls_server.certificate
    logs = tls_server.server.logs()
    assert "ACME is off: -cert and -privkey are given" in logs
    assert f"HTTPS listening on {HOST} port {tls_server.port}" in logs


def test_handshake_without_sni(tls_server: TlsServer) -> None:
    context = tls_server.context()
    context.check_hostname = False

    with handshake(tls_server.port, context, None) as tls:
        served = peer_certificate(tls)

    assert served == tls_server.certificate


def test_alpn_offers_http1_only(tls_server: TlsServer) -> None:
    both = tls_server.context()
    both.set_alpn_protocols(["h2", "http/1.1"])
    h2_only = tls_server.context()
    h2_only.set_alpn_protocols(["h2"])

    with handshake(tls_server.port, both, "oast.test") as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
    # A client that offers only h2 still completes the handshake, without a protocol selected.
    with handshake(tls_server.port, h2_only, "oast.test") as tls:
        assert tls.selected_alpn_protocol() is None


def test_https_capture_recorded_as_https(tls_server: TlsServer) -> None:
    server = tls_server.server
    client = server.client()
    payload = client.payload(server.domain)

    with httpx.Client(verify=tls_server.context(), timeout=10) as http:
        response = http.post(
            f"https://{HOST}:{tls_server.port}/upload",
            content=b"secret=1",
            headers={"Host": payload},
            extensions={"sni_hostname": payload},
        )

    assert response.status_code == 200
    items = client.poll().interactions
    assert [item["protocol"] for item in items] == ["https"]
    item = items[0]
    assert item["unique-id"] == payload.split(".")[0]
    assert item["remote-address"] == HOST
    raw_request = str(item["raw-request"])
    assert raw_request.startswith("POST /upload HTTP/1.1\r\n")
    assert f"Host: {payload}\r\n" in raw_request
    assert raw_request.endswith("\r\n\r\nsecret=1")


def test_http_port_still_records_http(tls_server: TlsServer) -> None:
    server = tls_server.server
    client = server.client()
    payload = client.payload(server.domain)

    response = httpx.get(f"{server.base_url}/", headers={"Host": payload}, timeout=10)

    assert response.status_code == 200
    assert [item["protocol"] for item in client.poll().interactions] == ["http"]


def test_api_served_over_https(tls_server: TlsServer) -> None:
    server = tls_server.server
    client = server.client()
    payload = client.payload(server.domain)
    httpx.get(f"{server.base_url}/", headers={"Host": payload}, timeout=10)

    with httpx.Client(verify=tls_server.context(), timeout=10) as http:
        response = http.get(
            f"https://{HOST}:{tls_server.port}/poll",
            params={"id": client.correlation_id, "secret": client.secret},
            headers={"Host": server.domain},
            extensions={"sni_hostname": server.domain},
        )

    assert response.status_code == 200
    document = response.json()
    assert len(document["data"]) == 1
    assert document["aes_key"]


def test_plain_http_on_https_port(tls_server: TlsServer) -> None:
    with socket.create_connection((HOST, tls_server.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: oast.test\r\n\r\n")
        reply = read_until_closed(raw)

    assert b"HTTP/1.1" not in reply
    # The listener keeps serving TLS after the failed handshake.
    with handshake(tls_server.port, tls_server.context(), "oast.test") as tls:
        assert peer_certificate(tls) == tls_server.certificate


@pytest.mark.parametrize(
    "opening",
    [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
    ids=["silent", "truncated-client-hello"],
)
def test_stalled_handshake_closed(tls_server: TlsServer, opening: bytes) -> None:
    with socket.create_connection((HOST, tls_server.port), timeout=5) as raw:
        raw.sendall(opening)
        reply = read_until_closed(raw)

    assert reply == b""


def test_no_https_without_certificate(start_server: Callable[..., RunningServer]) -> None:
    server = start_server("-skip-acme")

    assert "HTTPS is off" in server.logs()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, server.ports["https"]), timeout=2).close()


def test_cert_without_privkey_rejected(tmp_path: Path) -> None:
    cert_path, _, _ = write_self_signed(tmp_path, ["oast.test"])

    result = run_cli(tmp_path, "-cert", str(cert_path))

    assert result.returncode == 2
    assert "-cert and -privkey must be given together" in result.stderr
    assert "Traceback" not in result.stderr


def test_mismatched_key_rejected(tmp_path: Path) -> None:
    cert_path, _, _ = write_self_signed(tmp_path, ["oast.test"], "first")
    _, other_key, _ = write_self_signed(tmp_path, ["oast.test"], "second")

    result = run_cli(tmp_path, "-cert", str(cert_path), "-privkey", str(other_key))

    assert result.returncode == 2
    assert "could not load the certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_key_file_is_not_a_key(tmp_path: Path) -> None:
    cert_path, _, certificate = write_self_signed(tmp_path, ["oast.test"])
    bogus = tmp_path / "bogus.pem"
    bogus.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    result = run_cli(tmp_path, "-cert", str(cert_path), "-privkey", str(bogus))

    assert result.returncode == 2
    assert "could not load the certificate" in result.stderr
