"""Fixtures of the ACME tests: pebble and a server process that orders its certificate from it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pebbleproc import NO_PROXY_ENV, AcmeSetup, Pebble, start_pebble
from serverproc import RunningServer, free_port

PEBBLE_MISSING = "pebble is not installed: apt-get install pebble"


@pytest.fixture
def pebble_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], Pebble]]:
    """Factory fixture: ``pebble_factory(dns_port)`` starts pebble resolving through 127.0.0.1:dns_port."""
    if shutil.which("pebble") is None:
        # CI installs pebble, so there a missing binary is an error and not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail(PEBBLE_MISSING)
        pytest.skip(PEBBLE_MISSING)
    started: list[Pebble] = []

    def start(dns_port: int) -> Pebble:
        pebble = start_pebble(tmp_path_factory.mktemp("pebble"), dns_port)
        started.append(pebble)
        return pebble

    yield start
    for pebble in started:
        pebble.stop()


@pytest.fixture
def acme_server(
    start_server: Callable[..., RunningServer], pebble_factory: Callable[[int], Pebble]
) -> Callable[..., AcmeSetup]:
    """Factory fixture: ``acme_server(*flags)`` starts pebble, then a server that uses it as its ACME CA."""

    def start(*args: str, pebble_dns_port: int | None = None, pebble: Pebble | None = None) -> AcmeSetup:
        """Start a server; ``pebble`` reuses a running pebble, which keeps resolving through its first server."""
        dns_port = free_port()
        if pebble is None:
            pebble = pebble_factory(dns_port if pebble_dns_port is None else pebble_dns_port)
        server = start_server(
            "-dns-port",
            str(dns_port),
            "-acme-directory",
            pebble.directory_url,
            "-acme-ca-bundle",
            str(pebble.ca_path),
            *args,
            env=NO_PROXY_ENV,
        )
        server.ports["dns"] = dns_port
        return AcmeSetup(server, pebble)

    return start


@pytest.fixture
def shared_acme_dir(tmp_path: Path) -> Path:
    """A folder for ``-acme-dir`` that several servers of one test share."""
    return tmp_path / "acme"
