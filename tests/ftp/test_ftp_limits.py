"""Bad and hostile FTP clients: long lines, odd bytes, floods, stalls, data-port theft, limits."""

from __future__ import annotations

import asyncio
import ftplib
import io
import logging
import re
import socket
from pathlib import Path

import pytest
from ftp_helpers import HOST, TIMEOUT, ftp_config, login, running_ftp

CRLF = b"\r\n"


def raw_connection(port: int, source: str = HOST) -> socket.socket:
    """Return a TCP connection to the listener whose 220 greeting was already read."""
    connection = socket.create_connection((HOST, port), timeout=TIMEOUT, source_address=(source, 0))
    greeting = connection.recv(1024)
    assert greeting.startswith(b"220 "), greeting
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """Read until the server closes the connection."""
    received = bytearray()
    while chunk := connection.recv(65536):
        received += chunk
    return bytes(received)


def read_replies(connection: socket.socket, count: int) -> list[bytes]:
    """Read exactly ``count`` single-line replies."""
    buffer = bytearray()
    received = 0
    while received < count:
        chunk = connection.recv(65536)
        assert chunk, f"connection closed after {received} of {count} replies"
        buffer += chunk
        received = buffer.count(CRLF)
    return bytes(buffer).split(CRLF)[:count]


def test_long_command_line_closes_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path, ftp_max_line_length=1024)) as harness:

            def steps(port: int) -> tuple[bytes, str]:
                with raw_connection(port) as connection:
                    connection.sendall(b"USER " + b"a" * 5000 + b"\r\n")
                    rejected = read_until_closed(connection)
                follow_up = login(port)
                reply = follow_up.sendcmd("NOOP")
                follow_up.quit()
                return rejected, reply

            rejected, reply = await asyncio.to_thread(steps, harness.port)
            assert rejected == b"500 command line longer than 1024 bytes\r\n"
            assert reply.startswith("200")
            assert harness.requests() == [
                "USER alice\nalice logging in",
                "PASS s3cret\nuser alice logged in with password s3cret",
            ]

    asyncio.run(scenario())


def test_undecodable_bytes_recorded_as_json(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> list[bytes]:
                with raw_connection(port) as connection:
                    connection.sendall(b"USER caf\xe9\xff\r\nPASS \x00\x01\r\nQUIT\r\n")
                    return read_until_closed(connection).split(b"\r\n")

            replies = await asyncio.to_thread(steps, harness.port)
            assert replies[0].startswith(b"331")
            assert replies[1].startswith(b"230")
            assert replies[2].startswith(b"221")
            records = harness.reader.read()
            assert len(records) == 2
            # Each undecodable byte is recorded as the text \\xNN.
            assert records[0]["raw-request"] == "USER caf\\xe9\\xff\ncaf\\xe9\\xff logging in"
            assert records[1]["raw-request"].startswith("PASS \x00\x01\n")

    asyncio.run(scenario())


def test_reply_not_split_by_carriage_return(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> bytes:
                with raw_connection(port) as connection:
                    connection.sendall(b"USER a\r\nPASS b\r\nMKD x\r200 forged\r\nQUIT\r\n")
                    return read_until_closed(connection)

            received = await asyncio.to_thread(steps, harness.port)
            lines = received.split(b"\r\n")
            assert lines[2] == b'257 "/x 200 forged" created'
            assert b"\r200" not in received

    asyncio.run(scenario())


def test_pipelined_commands_replied_in_order(tmp_path: Path) -> None:
    count = 3000

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> list[bytes]:
                with raw_connection(port) as connection:
                    connection.sendall(b"USER a\r\nPASS b\r\n" + b"NOOP\r\n" * count + b"PWD\r\n")
                    return read_replies(connection, count + 3)

            replies = await asyncio.to_thread(steps, harness.port)
            assert replies[0].startswith(b"331")
            assert replies[1].startswith(b"230")
            assert all(reply == b"200 ok" for reply in replies[2:-1])
            assert replies[-1] == b'257 "/"'

    asyncio.run(scenario())


def test_idle_connection_is_closed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path, ftp_idle_timeout=0.3)) as harness:

            def steps(port: int) -> bytes:
                with raw_connection(port) as connection:
                    return read_until_closed(connection)

            received = await asyncio.to_thread(steps, harness.port)
            assert received == b"421 idle timeout, closing the control connection\r\n"

    asyncio.run(scenario())


def test_connections_per_address_are_limited(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = ftp_config(tmp_path, ftp_max_connections_per_ip=2)
        async with running_ftp(config) as harness:

            def steps(port: int) -> tuple[bytes, bytes]:
                first = raw_connection(port)
                second = raw_connection(port)
                with socket.create_connection((HOST, port), timeout=TIMEOUT) as third:
                    rejected = read_until_closed(third)
                first.sendall(b"QUIT\r\n")
                read_until_closed(first)
                first.close()
                with socket.create_connection((HOST, port), timeout=TIMEOUT) as fourth:
                    accepted = fourth.recv(1024)
                second.close()
                return rejected, accepted

            rejected, accepted = await asyncio.to_thread(steps, harness.port)
            assert rejected == b"421 too many connections, try again later\r\n"
            assert accepted.startswith(b"220 ")

    asyncio.run(scenario())


def test_total_connections_are_limited(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = ftp_config(tmp_path, ftp_max_connections=1)
        async with running_ftp(config) as harness:

            def steps(port: int) -> bytes:
                with (
                    raw_connection(port, source="127.0.0.2"),
                    socket.create_connection((HOST, port), timeout=TIMEOUT, source_address=("127.0.0.3", 0)) as other,
                ):
                    return read_until_closed(other)

            assert await asyncio.to_thread(steps, harness.port) == b"421 too many connections, try again later\r\n"

    asyncio.run(scenario())


def test_data_port_rejects_another_host(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file.txt").write_text("for the right client only")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> tuple[bytes, bytes]:
                client = login(port)
                reply = client.sendcmd("PASV")
                numbers = [int(n) for n in re.search(r"\((\d+(?:,\d+){5})\)", reply).group(1).split(",")]  # type: ignore[union-attr]
                data_port = numbers[4] * 256 + numbers[5]
                with socket.create_connection(
                    (HOST, data_port), timeout=TIMEOUT, source_address=("127.0.0.2", 0)
                ) as thief:
                    stolen = read_until_closed(thief)
                with socket.create_connection((HOST, data_port), timeout=TIMEOUT) as data:
                    client.sendcmd("RETR file.txt")
                    content = read_until_closed(data)
                client.voidresp()
                client.quit()
                return stolen, content

            with caplog.at_level(logging.WARNING, logger="interactsh.ftp"):
                stolen, content = await asyncio.to_thread(steps, harness.port)
            assert stolen == b""
            assert content == b"for the right client only"
            assert "data connection from 127.0.0.2 rejected" in caplog.text

    asyncio.run(scenario())


def test_transfer_without_pasv_rejected(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> str:
                client = login(port)
                with pytest.raises(ftplib.error_perm) as failure:
                    client.sendcmd("RETR anything")
                client.quit()
                return str(failure.value)

            assert (await asyncio.to_thread(steps, harness.port)).startswith("503")

    asyncio.run(scenario())


def test_data_connection_never_made_times_out(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path, ftp_transfer_timeout=0.3)) as harness:

            def steps(port: int) -> tuple[str, str]:
                client = login(port)
                client.sendcmd("PASV")
                started = client.sendcmd("RETR file.txt")
                failed = client.getline()
                client.quit()
                return started, failed

            started, failed = await asyncio.to_thread(steps, harness.port)
            assert started.startswith("150")
            assert failed.startswith("425")

    asyncio.run(scenario())


def test_oversized_upload_is_aborted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path, ftp_max_upload_size=10_000)) as harness:

            def upload(client: ftplib.FTP) -> str:
                try:
                    return client.storbinary("STOR big.bin", io.BytesIO(b"y" * 2_000_000))
                except ftplib.error_perm as error:
                    return str(error)
                except OSError:
                    # The server closed the data connection while the client
                    # was still sending, so the reply is read afterwards.
                    try:
                        return client.getresp()
                    except ftplib.error_perm as error:
                        return str(error)

            def steps(port: int) -> str:
                client = login(port)
                try:
                    reply = upload(client)
                    return reply + " / " + client.sendcmd("NOOP")
                finally:
                    client.close()

            replies = await asyncio.to_thread(steps, harness.port)
            assert replies.startswith("552 upload exceeds the 10000-byte limit")
            assert replies.endswith("/ 200 ok")
            requests = harness.requests()
            assert "STOR big.bin\nuploading /big.bin" in requests
            assert not any("uploaded" in request for request in requests)
            assert list(tmp_path.iterdir()) == []

    asyncio.run(scenario())


def test_abrupt_disconnects_log_no_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "big.bin").write_bytes(b"z" * 4_000_000)

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> None:
                with raw_connection(port):
                    pass
                with raw_connection(port) as connection:
                    connection.sendall(b"USER a\r\n")
                client = login(port)
                client.sendcmd("TYPE I")
                data = client.transfercmd("RETR big.bin")
                data.recv(1000)
                data.close()
                # Drop the control connection without QUIT.
                assert client.sock is not None
                assert client.file is not None
                client.sock.close()
                client.file.close()

            await asyncio.to_thread(steps, harness.port)
            follow_up = await asyncio.to_thread(lambda port: login(port).quit(), harness.port)
            assert follow_up.startswith("221")

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert problems == []


def test_close_ends_open_connections(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> bytes:
        async with running_ftp(ftp_config(tmp_path)) as harness:
            connection = await asyncio.to_thread(raw_connection, harness.port)
            await asyncio.to_thread(connection.sendall, b"USER a\r\n")
            await asyncio.to_thread(connection.recv, 1024)
        try:
            return await asyncio.to_thread(read_until_closed, connection)
        finally:
            connection.close()

    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(scenario()) == b""
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert problems == []
