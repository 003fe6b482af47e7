"""Fixtures of the DNS listener tests: an in-process listener on each event loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dnsharness import CORRELATION_ID, DnsHarness, Session, make_config


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dns_server(loop_kind: str) -> Iterator[DnsHarness]:
    """A listener for ``oast.test`` answering with 127.0.0.1."""
    with DnsHarness(make_config(), loop_kind) as harness:
        yield harness


@pytest.fixture
def session(dns_server: DnsHarness) -> Session:
    """A session registered under the correlation id of the bug cases."""
    return dns_server.register(CORRELATION_ID)
