"""Messages of an HTTP listener that cannot bind, by cause."""

from __future__ import annotations

import socket

import pytest
from http_helpers import HOST
from interactsh.listeners.http import bind_socket

# TEST-NET-3 (RFC 5737) is never assigned to a host, so binding to it fails without sending anything.
UNASSIGNED = "203.0.113.7"


def test_unassigned_listen_ip_suggests_listen_ip() -> None:
    with pytest.raises(OSError) as raised:
        bind_socket(UNASSIGNED, 8080)
    message = str(raised.value)
    assert f"could not bind the HTTP listener on {UNASSIGNED} port 8080: Cannot assign requested address" in message
    assert "choose one of its addresses with -listen-ip" in message
    assert "-http-port" not in message


def test_taken_port_suggests_http_port() -> None:
    with socket.create_server((HOST, 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as raised:
            bind_socket(HOST, port)
    assert "Address already in use; another socket uses the port" in str(raised.value)
    assert "choose another port with -http-port" in str(raised.value)
