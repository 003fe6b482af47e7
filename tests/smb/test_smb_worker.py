"""The SMB worker process on its own: readiness line, exit with its parent, connection limit, bad setups."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from interactsh.listeners.smb import _worker_environment
from interactsh.listeners.smb_worker import READY_MARKER
from smb_helpers import HOST, TIMEOUT, smb_login


@contextmanager
def worker(log_path: Path, *extra: str, port: int = 0) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run the worker, wait for its readiness line and yield it with its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "interactsh.listeners.smb_worker", str(log_path), str(port), HOST, *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_worker_environment(),
    )
    try:
        assert process.stdout is not None
        marker, bound = process.stdout.readline().decode().split()
        assert marker == READY_MARKER
        yield process, int(bound)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_worker_exits_when_stdin_closes(tmp_path: Path) -> None:
    with worker(tmp_path / "smb.log") as (process, _port):
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(TIMEOUT) == 0


def test_worker_writes_impacket_log_format(tmp_path: Path) -> None:
    log_path = tmp_path / "smb.log"
    with worker(log_path) as (_process, port):
        smb_login(port)
        deadline = time.monotonic() + TIMEOUT
        while "Remaining connections" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
    lines = log_path.read_text().splitlines()
    first = lines[0]
    assert first[:2].isdigit() and first[2] == "/" and first[5] == "/"
    assert first[19:24] in (" AM: ", " PM: ")
    assert first[24:].startswith("INFO: Incoming connection (127.0.0.1,")
    assert not any("Config file parsed" in line for line in lines)


def test_worker_limits_connections(tmp_path: Path) -> None:
    log_path = tmp_path / "smb.log"
    with worker(log_path, "--max-connections", "1") as (_process, port):
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as held:
            # impacket logs each accepted connection, so its line shows that
            # the first connection owns the only slot before the second comes.
            deadline = time.monotonic() + TIMEOUT
            while "Incoming connection" not in log_path.read_text():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with socket.create_connection((HOST, port), timeout=TIMEOUT) as rejected:
                assert rejected.recv(1) == b""
            held.sendall(b"")
        deadline = time.monotonic() + TIMEOUT
        while "Remaining connections []" not in log_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        smb_login(port)
    assert "rejected: 1 connections open" in log_path.read_text()


def test_worker_reports_busy_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "interactsh.listeners.smb_worker", str(tmp_path / "smb.log"), str(port), HOST],
            check=False,
            capture_output=True,
            env=_worker_environment(),
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 2
    assert f"could not listen on {HOST} port {port}".encode() in result.stderr
