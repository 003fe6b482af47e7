"""The real server process with -ftp: events reach every polling client through ``extra``."""

from __future__ import annotations

import ftplib
import io
import json
import urllib.request
from pathlib import Path

from ftp_helpers import HOST, TIMEOUT, ImplicitFtpTls, client_context, write_certificate
from serverproc import RunningServer


def metrics(server: RunningServer) -> dict[str, object]:
    request = urllib.request.Request(f"{server.base_url}/metrics", headers={"Authorization": server.token or ""})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return dict(json.loads(response.read()))


def test_ftp_events_reach_every_client(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from the server\n")
    server = start_server("-ftp", "-ftp-dir", str(root), "-metrics")
    assert server.token, "-ftp must turn auth on and print a generated token"
    first = server.client()

    client = ftplib.FTP()
    client.connect(HOST, server.ports["ftp"], timeout=TIMEOUT)
    client.login("scanner", "pa55")
    content = io.BytesIO()
    client.retrbinary("RETR hello.txt", content.write)
    client.quit()
    assert content.getvalue() == b"hello from the server\n"

    expected = [
        "USER scanner\nscanner logging in",
        "PASS pa55\nuser scanner logged in with password pa55",
        "RETR hello.txt\ndownloading file /hello.txt",
        "RETR hello.txt\ndownloaded file /hello.txt",
    ]
    for reader in (first, server.client()):
        result = reader.poll()
        assert result.interactions == []
        assert [item["raw-request"] for item in result.extra] == expected
        assert all(item["protocol"] == "ftp" for item in result.extra)
        assert reader.poll().extra == []
    assert metrics(server)["ftp"] == 4


def test_ftps_port_with_certificate(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert_path, key_path = write_certificate(tmp_path, "process")
    server = start_server("-ftp", "-cert", cert_path, "-privkey", key_path)
    reader = server.client()

    client = ImplicitFtpTls(context=client_context(cert_path))
    client.connect(HOST, server.ports["ftps"], timeout=TIMEOUT)
    client.login("tls-user", "tls-pass")
    client.prot_p()
    names = client.nlst()
    client.quit()
    assert names == []

    requests = [item["raw-request"] for item in reader.poll().extra]
    assert requests == [
        "USER tls-user\ntls-user logging in",
        "PASS tls-pass\nuser tls-user logged in with password tls-pass",
    ]
