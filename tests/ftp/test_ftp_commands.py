"""FTP commands through ftplib against the listener: records, real reads, changes that change nothing."""

from __future__ import annotations

import asyncio
import ftplib
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from ftp_helpers import HOST, TIMEOUT, FtpHarness, ftp_config, login, running_ftp

T = TypeVar("T")


def run_client(harness: FtpHarness, client_steps: Callable[[int], T]) -> Awaitable[T]:
    """Run blocking ftplib steps in a thread while the listener runs in this loop."""
    return asyncio.to_thread(client_steps, harness.port)


def test_login_records_user_and_password(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> int:
                client = login(port, "alice", "s3cret")
                assert client.sock is not None
                local_port = int(client.sock.getsockname()[1])
                client.quit()
                return local_port

            local_port = await run_client(harness, steps)
            records = harness.reader.read()
            assert [record["raw-request"] for record in records] == [
                "USER alice\nalice logging in",
                "PASS s3cret\nuser alice logged in with password s3cret",
            ]
            for record in records:
                assert record["protocol"] == "ftp"
                assert record["unique-id"] == ""
                assert record["full-id"] == ""
                assert record["remote-address"] == f"{HOST}:{local_port}"
                assert "timestamp" in record
            assert harness.recorder.counters.ftp == 2

    asyncio.run(scenario())


def test_record_keeps_upstream_key_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:
            await run_client(harness, lambda port: login(port).quit())
            reply = harness.store.poll("ftpreader00000000000", "5b0c8f4e-9d2a-4e61-8f3b-2c7d9e1a6b40", extra=True)
            first = json.loads(reply.body)["extra"][0]
            assert list(json.loads(first)) == [
                "protocol",
                "unique-id",
                "full-id",
                "raw-request",
                "remote-address",
                "timestamp",
            ]

    asyncio.run(scenario())


def test_listing_and_download_are_real(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"first line\nsecond line\n")
    (tmp_path / "sub").mkdir()

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> tuple[list[str], list[str], bytes, int]:
                client = login(port)
                listing: list[str] = []
                client.retrlines("LIST", listing.append)
                names = client.nlst()
                content = io.BytesIO()
                client.retrbinary("RETR notes.txt", content.write)
                size = client.size("notes.txt")
                client.quit()
                return listing, names, content.getvalue(), int(size or -1)

            listing, names, content, size = await run_client(harness, steps)
            assert sorted(names) == ["notes.txt", "sub"]
            assert any(line.endswith(" notes.txt") and line.startswith("-") for line in listing)
            assert any(line.endswith(" sub") and line.startswith("d") for line in listing)
            assert content == b"first line\nsecond line\n"
            assert size == 23
            requests = harness.requests()
            assert "RETR notes.txt\ndownloading file /notes.txt" in requests
            assert "RETR notes.txt\ndownloaded file /notes.txt" in requests

    asyncio.run(scenario())


def test_list_accepts_ls_options(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> list[str]:
                client = login(port)
                lines: list[str] = []
                client.retrlines("LIST -la", lines.append)
                client.quit()
                return lines

            lines = await run_client(harness, steps)
            assert len(lines) == 1
            assert lines[0].endswith(" a.txt")

    asyncio.run(scenario())


def test_download_from_rest_offset(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(bytes(range(200)))

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> bytes:
                client = login(port)
                content = io.BytesIO()
                client.retrbinary("RETR data.bin", content.write, rest=150)
                client.quit()
                return content.getvalue()

            assert await run_client(harness, steps) == bytes(range(150, 200))

    asyncio.run(scenario())


def test_missing_file_download_fails(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> str:
                client = login(port)
                with pytest.raises(ftplib.error_perm) as failure:
                    client.retrbinary("RETR absent.txt", lambda _: None)
                client.quit()
                return str(failure.value)

            message = await run_client(harness, steps)
            assert message.startswith("550")
            requests = harness.requests()
            assert "RETR absent.txt\ndownloading file /absent.txt" in requests
            assert not any("downloaded file" in request for request in requests)

    asyncio.run(scenario())


def test_upload_is_recorded_and_discarded(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> str:
                client = login(port)
                reply = client.storbinary("STOR payload.bin", io.BytesIO(b"x" * 100_000))
                client.quit()
                return reply

            assert (await run_client(harness, steps)).startswith("226")
            requests = harness.requests()
            assert "STOR payload.bin\nuploading /payload.bin" in requests
            assert "STOR payload.bin\nuploaded /payload.bin" in requests
            assert list(tmp_path.iterdir()) == []

    asyncio.run(scenario())


def test_append_is_recorded_as_upload(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> str:
                client = login(port)
                reply = client.storbinary("APPE log.txt", io.BytesIO(b"more"))
                client.quit()
                return reply

            assert (await run_client(harness, steps)).startswith("226")
            requests = harness.requests()
            assert "APPE log.txt\nuploading /log.txt" in requests
            assert "APPE log.txt\nuploaded /log.txt" in requests

    asyncio.run(scenario())


def test_changes_accepted_but_not_applied(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("unchanged")
    (tmp_path / "folder").mkdir()

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> list[str]:
                client = login(port)
                replies = [
                    client.delete("keep.txt"),
                    client.mkd("created"),
                    client.rmd("folder"),
                    client.rename("keep.txt", "renamed.txt"),
                ]
                client.quit()
                return replies

            delete_reply, mkd_reply, rmd_reply, rename_reply = await run_client(harness, steps)
            assert delete_reply.startswith("250")
            assert mkd_reply == "/created"
            assert rmd_reply.startswith("250")
            assert rename_reply.startswith("250")
            assert sorted(path.name for path in tmp_path.iterdir()) == ["folder", "keep.txt"]
            assert (tmp_path / "keep.txt").read_text() == "unchanged"
            assert harness.requests()[2:] == [
                "DELE keep.txt\ndeleting /keep.txt",
                "DELE keep.txt\ndeleted /keep.txt",
                "MKD created\ncreating directory /created",
                "MKD created\ncreated directory /created",
                "RMD folder\ndeleting directory /folder",
                "RMD folder\ndelete directory /folder",
            ]
            assert harness.recorder.counters.ftp == 8

    asyncio.run(scenario())


def test_change_directory_records_both_events(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "inner.txt").write_text("inside")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> tuple[str, list[str], str]:
                client = login(port)
                client.cwd("docs")
                inside = client.pwd()
                names = client.nlst()
                client.sendcmd("CDUP")
                back = client.pwd()
                client.quit()
                return inside, names, back

            inside, names, back = await run_client(harness, steps)
            assert inside == "/docs"
            assert names == ["inner.txt"]
            assert back == "/"
            assert harness.requests()[2:] == [
                "CWD docs\nchanging directory from / to /docs",
                "CWD docs\nchanged directory from / to /docs",
                "CDUP \nchanging directory from /docs to /",
                "CDUP \nchanged directory from /docs to /",
            ]

    asyncio.run(scenario())


def test_change_to_missing_directory_fails(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> tuple[str, str]:
                client = login(port)
                with pytest.raises(ftplib.error_perm) as failure:
                    client.cwd("nowhere")
                where = client.pwd()
                client.quit()
                return str(failure.value), where

            message, where = await run_client(harness, steps)
            assert message.startswith("550")
            assert where == "/"
            assert harness.requests()[2:] == ["CWD nowhere\nchanging directory from / to /nowhere"]

    asyncio.run(scenario())


def test_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the root")
    (root / "link.txt").symlink_to(secret)
    (root / "linkdir").symlink_to(tmp_path)
    (root / "visible.txt").write_text("inside")

    async def scenario() -> None:
        async with running_ftp(ftp_config(root)) as harness:

            def steps(port: int) -> tuple[str, list[str], list[str]]:
                client = login(port)
                client.cwd("../../..")
                where = client.pwd()
                failures = []
                for name in ("../secret.txt", "link.txt", "linkdir/secret.txt"):
                    with pytest.raises(ftplib.error_perm) as failure:
                        client.retrbinary(f"RETR {name}", lambda _: None)
                    failures.append(str(failure.value)[:3])
                names = client.nlst()
                client.quit()
                return where, failures, names

            where, failures, names = await run_client(harness, steps)
            assert where == "/"
            assert failures == ["550", "550", "550"]
            assert names == ["visible.txt"]

    asyncio.run(scenario())


def test_commands_need_login(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> str:
                client = ftplib.FTP()
                client.connect(HOST, port, timeout=TIMEOUT)
                with pytest.raises(ftplib.error_perm) as failure:
                    client.sendcmd("DELE x")
                client.quit()
                return str(failure.value)

            assert (await run_client(harness, steps)).startswith("503")
            assert harness.requests() == []

    asyncio.run(scenario())


def test_small_commands(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("12345")

    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)) as harness:

            def steps(port: int) -> dict[str, str]:
                client = login(port)
                replies = {
                    "noop": client.sendcmd("NOOP"),
                    "syst": client.sendcmd("SYST"),
                    "feat": client.sendcmd("FEAT"),
                    "opts": client.sendcmd("OPTS UTF8 ON"),
                    "mdtm": client.sendcmd("MDTM f.txt"),
                    "epsv": client.sendcmd("EPSV"),
                }
                for command in ("PORT 127,0,0,1,4,1", "EPRT |1|127.0.0.1|1025|", "SITE CHMOD 777 f.txt", "DELE"):
                    with pytest.raises(ftplib.error_perm) as failure:
                        client.sendcmd(command)
                    replies[command] = str(failure.value)
                client.quit()
                return replies

            replies = await run_client(harness, steps)
            assert replies["noop"].startswith("200")
            assert replies["syst"].startswith("215")
            assert "SIZE" in replies["feat"]
            assert "EPSV" in replies["feat"]
            assert replies["opts"].startswith("200")
            assert len(replies["mdtm"].split()[1]) == 14
            assert replies["epsv"].startswith("229")
            assert replies["PORT 127,0,0,1,4,1"].startswith("502 active mode is not supported")
            assert replies["EPRT |1|127.0.0.1|1025|"].startswith("502 active mode is not supported")
            assert replies["SITE CHMOD 777 f.txt"].startswith("502")
            assert replies["DELE"].startswith("501")

    asyncio.run(scenario())


def test_temporary_root_is_removed_on_close() -> None:
    async def scenario() -> Path:
        async with running_ftp(ftp_config(None)) as harness:
            root = harness.listener.root
            assert root.is_dir()
            assert list(root.iterdir()) == []
        return root

    root = asyncio.run(scenario())
    assert not root.exists()


def test_given_root_is_kept_on_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path)):
            pass

    asyncio.run(scenario())
    assert tmp_path.is_dir()


def test_missing_root_is_rejected(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_ftp(ftp_config(tmp_path / "absent")):
            pass

    with pytest.raises(NotADirectoryError, match="-ftp-dir .*absent.* is not a directory"):
        asyncio.run(scenario())


def test_busy_port_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]

        async def scenario() -> None:
            async with running_ftp(ftp_config(tmp_path, ftp_port=port)):
                pass

        with pytest.raises(OSError, match=f"could not listen for FTP on {HOST} port {port}"):
            asyncio.run(scenario())
