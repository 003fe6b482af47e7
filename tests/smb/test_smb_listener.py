"""The supervised impacket SMB listener: records, counters, restarts, shutdown and bad setups."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import signal
import socket
from pathlib import Path

import pytest
from smb_helpers import HOST, TIMEOUT, running_smb, smb_config, smb_login

HASH_LINE = re.compile(r"^alice::CORP:aaaaaaaaaaaaaaaa:[0-9a-f]{32}:[0-9a-f]+$")


def has_hash(requests: list[str], count: int = 1) -> bool:
    return sum(1 for request in requests if HASH_LINE.match(request)) >= count


def test_login_records_ntlm_hash() -> None:
    async def scenario() -> None:
        async with running_smb(smb_config()) as harness:
            await asyncio.to_thread(smb_login, harness.listener.port)
            requests = await harness.wait_for(has_hash)
            assert any(request.startswith("Incoming connection (127.0.0.1,") for request in requests)
            assert "AUTHENTICATE_MESSAGE (CORP\\alice,)" in requests
            for record in harness.read():
                assert record["protocol"] == "smb"
                assert record["unique-id"] == ""
                assert record["full-id"] == ""
                assert record["remote-address"] == ""
                assert "timestamp" in record

    asyncio.run(scenario())


def test_every_log_line_is_counted() -> None:
    async def scenario() -> None:
        async with running_smb(smb_config()) as harness:
            # Listing shares asks for IPC$, which the worker removed, so
            # impacket also logs an ERROR line: counted, not recorded.
            await asyncio.to_thread(smb_login, harness.listener.port, list_shares=True)
            await harness.wait_for(lambda requests: "Remaining connections []" in requests)
            log_lines = harness.listener.log_path.read_text().splitlines()
            assert harness.recorder.counters.smb == len(log_lines)
            info_lines = [line for line in log_lines if "INFO: " in line]
            assert len(harness.read()) == len(info_lines)
            assert any(": ERROR: " in line for line in log_lines)

    asyncio.run(scenario())


def test_repeated_lines_are_recorded_each_time() -> None:
    async def scenario() -> None:
        async with running_smb(smb_config()) as harness:
            for _ in range(2):
                await asyncio.to_thread(smb_login, harness.listener.port)
            requests = await harness.wait_for(lambda found: has_hash(found, 2))
            assert requests.count("AUTHENTICATE_MESSAGE (CORP\\alice,)") == 2
            assert requests.count("User \\alice authenticated successfully") == 2

    asyncio.run(scenario())


def test_listens_only_on_listen_ip() -> None:
    async def scenario() -> None:
        async with running_smb(smb_config()) as harness:
            port = harness.listener.port
            with socket.create_connection((HOST, port), timeout=TIMEOUT):
                pass
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.2", port), timeout=TIMEOUT).close()

    asyncio.run(scenario())


def test_worker_is_restarted_on_the_same_port() -> None:
    async def scenario() -> None:
        async with running_smb(smb_config()) as harness:
            listener = harness.listener
            first = listener.worker_pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            deadline = asyncio.get_running_loop().time() + 30
            while listener.restarts == 0:
                assert asyncio.get_running_loop().time() < deadline, "the worker was not restarted within 30 s"
                await asyncio.sleep(0.05)
            assert listener.worker_pid not in (None, first)
            await asyncio.to_thread(smb_login, listener.port)
            await harness.wait_for(has_hash)

    asyncio.run(scenario())


def test_close_stops_worker_and_removes_log() -> None:
    async def scenario() -> tuple[int, int, Path]:
        async with running_smb(smb_config()) as harness:
            listener = harness.listener
            pid = listener.worker_pid
            assert pid is not None
            assert listener.log_path.parent.is_dir()
        return listener.port, pid, listener.log_path.parent

    port, pid, directory = asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not directory.exists()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((HOST, port))


def test_busy_port_is_reported() -> None:
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]

        async def scenario() -> None:
            async with running_smb(smb_config(smb_port=port)):
                pass

        with pytest.raises(OSError, match=f"exited with code 2 before listening on {HOST} port {port}: .*in use"):
            asyncio.run(scenario())


def test_rotated_log_loses_no_line() -> None:
    logins = 6

    async def scenario() -> None:
        async with running_smb(smb_config(smb_log_max_bytes=1500)) as harness:
            for number in range(1, logins + 1):
                await asyncio.to_thread(smb_login, harness.listener.port)
                await harness.wait_for(functools.partial(has_hash, count=number))
            directory = harness.listener.log_path.parent
            sizes = {path.name: path.stat().st_size for path in directory.iterdir()}
            assert set(sizes) == {"smb.log", "smb.log.1"}
            assert all(size < 3000 for size in sizes.values()), sizes

    asyncio.run(scenario())
