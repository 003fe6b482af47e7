"""Implicit-TLS FTPS with a self-signed certificate made in the test."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
from pathlib import Path

import pytest
from ftp_helpers import (
    HOST,
    TIMEOUT,
    ImplicitFtpTls,
    certificate_common_name,
    client_context,
    ftp_config,
    running_ftp,
    write_certificate,
)
from interactsh.tls import TlsProvider


def loaded_provider(cert_path: str, key_path: str) -> TlsProvider:
    provider = TlsProvider(cert_path, key_path)
    provider.load()
    return provider


def test_ftps_serves_files_and_records_events(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "report.txt").write_bytes(b"over TLS\n")
    cert_path, key_path = write_certificate(tmp_path, "first")

    async def scenario() -> None:
        async with running_ftp(ftp_config(root), loaded_provider(cert_path, key_path)) as harness:
            port = harness.listener.ports["ftps"]
            assert port != harness.listener.ports["ftp"]

            def steps() -> tuple[list[str], bytes, str]:
                client = ImplicitFtpTls(context=client_context(cert_path))
                client.connect(HOST, port, timeout=TIMEOUT)
                client.login("bob", "hunter2")
                client.prot_p()
                names = client.nlst()
                content = io.BytesIO()
                client.retrbinary("RETR report.txt", content.write)
                upload = client.storbinary("STOR drop.bin", io.BytesIO(b"secret upload"))
                client.quit()
                return names, content.getvalue(), upload

            names, content, upload = await asyncio.to_thread(steps)
            assert names == ["report.txt"]
            assert content == b"over TLS\n"
            assert upload.startswith("226")
            assert sorted(path.name for path in root.iterdir()) == ["report.txt"]
            assert harness.requests() == [
                "USER bob\nbob logging in",
                "PASS hunter2\nuser bob logged in with password hunter2",
                "RETR report.txt\ndownloading file /report.txt",
                "RETR report.txt\ndownloaded file /report.txt",
                "STOR drop.bin\nuploading /drop.bin",
                "STOR drop.bin\nuploaded /drop.bin",
            ]

    asyncio.run(scenario())


def test_ftps_advertises_tls_features(tmp_path: Path) -> None:
    cert_path, key_path = write_certificate(tmp_path, "first")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path), loaded_provider(cert_path, key_path)) as harness:
            port = harness.listener.ports["ftps"]

            def steps() -> str:
                client = ImplicitFtpTls(context=client_context(cert_path))
                client.connect(HOST, port, timeout=TIMEOUT)
                reply = client.sendcmd("FEAT")
                client.quit()
                return reply

            features = await asyncio.to_thread(steps)
            assert " PBSZ" in features
            assert " PROT" in features

    asyncio.run(scenario())


def test_ftps_plaintext_client_gets_no_greeting(tmp_path: Path) -> None:
    cert_path, key_path = write_certificate(tmp_path, "first")

    async def scenario() -> None:
        config = ftp_config(tmp_path, ftp_transfer_timeout=1.0)
        async with running_ftp(config, loaded_provider(cert_path, key_path)) as harness:
            port = harness.listener.ports["ftps"]

            def steps() -> bytes:
                with socket.create_connection((HOST, port), timeout=TIMEOUT) as connection:
                    connection.sendall(b"USER plain\r\n")
                    received = bytearray()
                    while chunk := connection.recv(4096):
                        received += chunk
                    return bytes(received)

            received = await asyncio.to_thread(steps)
            assert not received.startswith(b"220")
            assert harness.requests() == []

    asyncio.run(scenario())


def test_ftps_follows_a_reloaded_certificate(tmp_path: Path) -> None:
    first = write_certificate(tmp_path, "first")
    second = write_certificate(tmp_path, "second")
    provider = loaded_provider(*first)

    def presented_name(port: int, cert_path: str) -> str:
        with (
            socket.create_connection((HOST, port), timeout=TIMEOUT) as raw,
            client_context(cert_path).wrap_socket(raw, server_hostname=HOST) as secure,
        ):
            der = secure.getpeercert(binary_form=True)
            assert der is not None
            return certificate_common_name(der)

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path), provider) as harness:
            port = harness.listener.ports["ftps"]
            assert await asyncio.to_thread(presented_name, port, first[0]) == "first"
            provider.load(*second)
            assert await asyncio.to_thread(presented_name, port, second[0]) == "second"

    asyncio.run(scenario())


def test_no_ftps_port_without_certificate(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:
            assert list(harness.listener.ports) == ["ftp"]

    asyncio.run(scenario())


def test_untrusted_client_handshake_fails_cleanly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert_path, key_path = write_certificate(tmp_path, "first")
    other_path, _ = write_certificate(tmp_path, "other")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path), loaded_provider(cert_path, key_path)) as harness:
            port = harness.listener.ports["ftps"]

            def steps() -> None:
                with (
                    socket.create_connection((HOST, port), timeout=TIMEOUT) as raw,
                    pytest.raises(ssl.SSLCertVerificationError),
                ):
                    client_context(other_path).wrap_socket(raw, server_hostname=HOST)

            await asyncio.to_thread(steps)
            follow_up = ImplicitFtpTls(context=client_context(cert_path))
            greeting = await asyncio.to_thread(follow_up.connect, HOST, port, TIMEOUT)
            await asyncio.to_thread(follow_up.quit)
            assert greeting.startswith("220")

    asyncio.run(scenario())
    assert [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")] == []
