"""Fixtures of the LDAP listener tests: an in-process listener on each event loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from interactsh.config import ServerConfig
from interactsh.tls import TlsProvider
from ldap_harness import LdapHarness, make_config


@pytest.fixture(autouse=True)
def no_listener_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose listener logged an error, such as an exception caught at the connection boundary."""
    caplog.set_level(logging.DEBUG, logger="interactsh")
    yield
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [], f"the listener logged errors: {errors}"


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_ldap_server(loop_kind: str) -> Iterator[Callable[..., LdapHarness]]:
    """Factory fixture: ``start_ldap_server(config, tls=None)`` starts a listener on this test's loop."""
    started: list[LdapHarness] = []

    def start(config: ServerConfig | None = None, tls: TlsProvider | None = None) -> LdapHarness:
        harness = LdapHarness(config or make_config(), loop_kind, tls).__enter__()
        started.append(harness)
        return harness

    yield start
    for harness in started:
        harness.__exit__(None, None, None)


@pytest.fixture
def ldap_server(start_ldap_server: Callable[..., LdapHarness]) -> LdapHarness:
    """A listener with auth off and full logging off, as a plain server starts."""
    return start_ldap_server()
