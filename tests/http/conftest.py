"""Fixtures of the HTTP listener tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from http_helpers import InProcessServer
from interactsh.config import ServerConfig


@pytest.fixture
def http_server() -> Iterator[Callable[..., InProcessServer]]:
    """Factory fixture: ``http_server(loop_kind="uvloop", **config_fields)`` starts an in-process listener.

    The listener takes a free port and runs on uvloop, or on asyncio's loop with ``loop_kind="asyncio"``.
    """
    started: list[InProcessServer] = []

    def start(loop_kind: str = "uvloop", **fields: Any) -> InProcessServer:
        fields.setdefault("http_port", 0)
        fields.setdefault("store_engine", "python")
        server = InProcessServer(ServerConfig(**fields), loop_kind).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
