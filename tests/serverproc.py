"""The real server process on free loopback ports, for tests of every listener."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import interactsh
from interactsh.client import InteractshClient

HOST = "127.0.0.1"
DOMAIN = "oast.test"
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 15.0
# Every listener gets its own free port, named as in its -<service>-port flag.
SERVICES = ("dns", "http", "https", "smtp", "smtps", "smtp-autotls", "ldap", "ftp", "ftps", "smb")
PACKAGE_ROOT = str(Path(interactsh.__file__).resolve().parent.parent)


def free_port() -> int:
    """Return a port that is free for both TCP and UDP on the loopback address."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1 after 50 tries")


@dataclass
class RunningServer:
    """One ``interactsh-server`` process started by a test."""

    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int]
    args: list[str]
    domain: str = DOMAIN
    token: str | None = None
    clients: list[InteractshClient] = field(default_factory=list)

    @property
    def dns_port(self) -> int:
        return self.ports["dns"]

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, *, register: bool = True, **options: object) -> InteractshClient:
        """Return a client of this server, registered unless ``register`` is false."""
        options.setdefault("token", self.token)
        client = InteractshClient(self.base_url, **options)  # type: ignore[arg-type]
        if register:
            client.register()
        self.clients.append(client)
        return client

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """Stop the process with SIGTERM and return its exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


# A port that free_port() found free can be taken before the server binds it (another
# process's outgoing connection may get it as its ephemeral port), so start-up is retried
# on fresh ports when the server reports a port in use.
START_ATTEMPTS = 3


class PortTakenError(RuntimeError):
    """The server exited at start because one of its ports was already in use."""


def launch(tmp_path: Path, *args: str, engine: str = "rust", env: dict[str, str] | None = None) -> RunningServer:
    """Start the server with ``args`` on fresh ports and wait until it listens."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return _launch_once(tmp_path, *args, engine=engine, env=env)
        except PortTakenError:
            if attempt == START_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _launch_once(tmp_path: Path, *args: str, engine: str, env: dict[str, str] | None) -> RunningServer:
    ports = {service: free_port() for service in SERVICES}
    argv = [sys.executable, "-m", "interactsh.cli", "-listen-ip", HOST, "-ip", HOST, "-domain", DOMAIN]
    for service, port in ports.items():
        argv += [f"-{service}-port", str(port)]
    argv += ["-store-engine", engine, *args]
    log_path = tmp_path / f"server-{ports['http']}.log"
    environment = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, **(env or {})}
    # Keep a user's ~/.config/interactsh-server/config.yaml out of the tests.
    environment["HOME"] = str(tmp_path)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=environment)
    server = RunningServer(process, log_path, ports, argv)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while "server ready" not in server.logs():
        if not server.alive():
            logs = server.logs()
            failure = PortTakenError if "address already in use" in logs.lower() else RuntimeError
            raise failure(f"server exited with {process.returncode} at start:\n{logs}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server did not listen within {STARTUP_TIMEOUT} s:\n{server.logs()}")
        time.sleep(0.05)
    for line in server.logs().splitlines():
        if line.startswith("Client Token: "):
            server.token = line.removeprefix("Client Token: ").strip()
    return server


def finish(server: RunningServer) -> None:
    """Stop a server and fail the test when it crashed or logged a traceback."""
    was_alive = server.alive()
    code = server.stop()
    logs = server.logs()
    assert was_alive, f"server died during the test (exit {code}):\n{logs[-4000:]}"
    assert code == 0, f"server exited with {code} on SIGTERM:\n{logs[-4000:]}"
    assert "Traceback" not in logs, f"server logged a traceback:\n{logs[-4000:]}"
