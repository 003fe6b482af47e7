"""Unit tests for the shared connection caps that the DNS TCP and LDAP listeners use."""

from __future__ import annotations

import logging

import pytest
from interactsh.listeners.connection_limits import OpenConnections

LOGGER = "interactsh.test_limits"


def _limits(max_total: int, max_per_ip: int) -> OpenConnections[object]:
    return OpenConnections("LDAP", max_total, max_per_ip, "-ldap-max-connections-per-ip", logging.getLogger(LOGGER))


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER and record.levelno == level]


def test_per_ip_cap_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limits = _limits(max_total=10, max_per_ip=2)
    first, second = object(), object()
    assert limits.admit(first, "10.0.0.1")
    assert limits.admit(second, "10.0.0.1")
    assert not limits.admit(object(), "10.0.0.1")
    assert not limits.admit(object(), "10.0.0.1")
    assert limits.admit(object(), "10.0.0.2"), "another address has its own count"
    warnings = _records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "10.0.0.1" in warnings[0]
    assert "LDAP" in warnings[0]
    assert "cap of 2" in warnings[0]
    assert "-ldap-max-connections-per-ip" in warnings[0]

    limits.release(first)
    assert limits.admit(object(), "10.0.0.1"), "a released slot is free again"
    assert not limits.admit(object(), "10.0.0.1")
    assert len(_records(caplog, logging.WARNING)) == 2, "the address is warned about again after dropping below"


def test_total_cap_logs_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    limits = _limits(max_total=2, max_per_ip=5)
    assert limits.admit(object(), "10.0.0.1")
    assert limits.admit(object(), "10.0.0.2")
    assert not limits.admit(object(), "10.0.0.3")
    assert not limits.admit(object(), "10.0.0.3")
    assert _records(caplog, logging.WARNING) == []
    assert len(_records(caplog, logging.DEBUG)) == 2
    assert len(limits) == 2


def test_release_forgets_connections() -> None:
    limits = _limits(max_total=5, max_per_ip=5)
    connections = [object() for _ in range(3)]
    for connection in connections:
        assert limits.admit(connection, "10.0.0.1")
    assert set(limits) == set(connections)
    limits.release(object())
    assert len(limits) == 3, "releasing a connection that was never admitted changes nothing"
    for connection in connections:
        limits.release(connection)
        limits.release(connection)
    assert len(limits) == 0
    assert list(limits) == []
    assert limits.admit(object(), "10.0.0.1")
