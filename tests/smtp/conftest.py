"""Fixtures of the SMTP listener tests: the in-process listener and the real server process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverproc import RunningServer, finish, launch
from smtp_harness import HOST, SmtpHarness, make_config, write_certificate
from smtp_process import ProcessTarget, tls_provider


def require_smtp(server: RunningServer) -> None:
    """Skip when the server process does not listen for SMTP (the listener is not wired in yet)."""
    try:
        socket.create_connection((HOST, server.ports["smtp"]), timeout=2).close()
    except OSError:
        pytest.skip("the server process does not listen on its -smtp-port: start_smtp is not wired into server.py")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(loop_kind: str) -> Iterator[SmtpHarness]:
    """The listener on free ports with the default limits and no certificate."""
    with SmtpHarness(make_config(), loop_kind) as running:
        yield running


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the test domain: (certificate path, key path)."""
    return write_certificate(tmp_path_factory.mktemp("certificate"))


@pytest.fixture
def tls_harness(loop_kind: str, certificate: tuple[Path, Path]) -> Iterator[SmtpHarness]:
    """The listener with a certificate: STARTTLS on the plain ports and implicit TLS bound."""
    with SmtpHarness(make_config(), loop_kind, tls_provider(certificate)) as running:
        yield running


@pytest.fixture(scope="module")
def smtp_process(tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]) -> Iterator[RunningServer]:
    """One server process with a certificate, shared by the tests of a module."""
    running = launch(tmp_path_factory.mktemp("server"), "-cert", str(certificate[0]), "-privkey", str(certificate[1]))
    yield running
    finish(running)


@pytest.fixture(params=["in-process", "process"])
def target(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[SmtpHarness | ProcessTarget]:
    """Each bug case runs against the in-process listener and against the server process."""
    if request.param == "process":
        server: RunningServer = request.getfixturevalue("smtp_process")
        require_smtp(server)
        yield ProcessTarget(server)
        assert server.alive(), f"the server process died:\n{server.logs()[-4000:]}"
        return
    with SmtpHarness(make_config(), "asyncio", tls_provider(certificate)) as running:
        yield running
