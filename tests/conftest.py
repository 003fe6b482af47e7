"""Fixtures that run the real server process on free loopback ports."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest

from serverproc import RunningServer, finish, launch


@pytest.fixture(autouse=True)
def collect_garbage_after_test() -> Iterator[None]:
    """Collect garbage at each teardown, so a leaked socket fails the test that leaked it."""
    yield
    gc.collect()


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
