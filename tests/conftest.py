"""Fixtures that run the real server process on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from serverproc import RunningServer, finish, launch


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    """Factory fixture: ``start_server(*flags, engine=...)`` starts a fresh server process."""
    started: list[RunningServer] = []

    def start(*args: str, engine: str = "rust", env: dict[str, str] | None = None) -> RunningServer:
        server = launch(tmp_path_factory.mktemp("server"), *args, engine=engine, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        finish(server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server on the embedded defaults, shared by the tests of one module."""
    running = launch(tmp_path_factory.mktemp("server"))
    yield running
    finish(running)
