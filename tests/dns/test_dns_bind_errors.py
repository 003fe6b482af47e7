"""Messages of a DNS listener that cannot bind, by cause."""

from __future__ import annotations

import socket

import pytest

from dnsharness import HOST, DnsHarness, make_config

# TEST-NET-3 (RFC 5737) is never assigned to a host, so binding to it fails without sending anything.
UNASSIGNED = "203.0.113.7"


def test_unassigned_listen_ip_suggests_listen_ip(loop_kind: str) -> None:
    harness = DnsHarness(make_config(listen_ip=UNASSIGNED, dns_port=5353), loop_kind)
    with pytest.raises(OSError) as raised:
        harness.__enter__()
    harness.__exit__(None, None, None)
    message = str(raised.value)
    assert f"could not bind DNS UDP on {UNASSIGNED} port 5353: Cannot assign requested address" in message
    assert f"{UNASSIGNED} is not an address of this machine: choose one of its addresses with -listen-ip" in message
    assert "-dns-port" not in message


def test_taken_port_suggests_dns_port(loop_kind: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        harness = DnsHarness(make_config(dns_port=port), loop_kind)
        with pytest.raises(OSError) as raised:
            harness.__enter__()
        harness.__exit__(None, None, None)
    message = str(raised.value)
    assert f"could not bind DNS UDP on {HOST} port {port}: Address already in use" in message
    assert "another socket uses the port: stop its process, or choose another port with -dns-port" in message
