"""Hostile and malformed input on the LDAP port: probes, split and oversized messages, broken BER."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable

import pytest
from interactsh.listeners.ldap_ops import OID_NOTICE_OF_DISCONNECTION
from ldap_harness import (
    CORRELATION_ID,
    ID,
    REPLY_TIMEOUT,
    LdapHarness,
    ReplyStream,
    auth_config,
    closed_by_server,
    message,
    simple_bind,
    tlv,
)

StartServer = Callable[..., LdapHarness]
# A 66-octet simple bind whose DN "cn=<id>,dc=oast,dc=test" carries the id.
SPLIT_BIND = bytes.fromhex(
    "30400201016" + "03b020103043463" + "6e3d" + "61" * 20 + "62" * 13 + "2c64633d6f6173742c64633d74657374" + "8000"
)
# An anonymous bind whose message length uses the long form 0x81 0x0c, which BER allows.
LONG_FORM_BIND = bytes.fromhex("30810c020101600702010304008000")


def assert_still_serving(server: LdapHarness) -> None:
    with server.socket() as sock:
        sock.sendall(simple_bind(99, ""))
        (reply,) = ReplyStream(sock).take(1)
    assert reply.message_id == 99
    assert reply.result_code == 0


def assert_notice_then_close(sock: socket.socket, reason: str) -> None:
    stream = ReplyStream(sock)
    notice = stream.next()
    assert notice is not None, "the server closed the connection without a notice of disconnection"
    assert notice.message_id == 0
    assert notice.tag == 0x78
    assert notice.result_code == 2
    assert OID_NOTICE_OF_DISCONNECTION.encode() in notice.raw
    assert reason in notice.diagnostic.decode()
    assert stream.next() is None


def test_split_bind_with_id_recorded(ldap_server: LdapHarness) -> None:
    assert SPLIT_BIND == simple_bind(1, f"cn={ID},dc=oast,dc=test")
    session = ldap_server.register(CORRELATION_ID)
    with ldap_server.socket() as sock:
        sock.sendall(SPLIT_BIND[:7])
        time.sleep(0.2)
        sock.sendall(SPLIT_BIND[7:])
        (reply,) = ReplyStream(sock).take(1)
    assert reply.tag == 0x61
    assert reply.result_code == 0
    (item,) = ldap_server.poll(session)
    assert item["unique-id"] == ID
    assert item["raw-request"].startswith(f"Type=Bind\nAuthenticationChoice=simple\nUser=cn={ID},dc=oast,dc=test\n")


def test_long_form_length_bind_accepted(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(LONG_FORM_BIND)
        (reply,) = ReplyStream(sock).take(1)
    assert reply.message_id == 1
    assert reply.result_code == 0


def test_tls_client_hello_closed(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config(ldap=True))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        server.socket() as raw,
        pytest.raises((ssl.SSLError, OSError)),
        context.wrap_socket(raw, server_hostname="oast.test") as tls,
    ):
        tls.recv(1)
    assert server.call(lambda: server.counters.ldap_nonldap) == 1
    (probe,) = server.poll_extra()
    assert probe["protocol"] == "ldap"
    assert probe["raw-request"].startswith("Type=NonLDAP\nProbe=TLS handshake\nFirstBytes=16 03 ")
    assert_still_serving(server)


def test_http_request_closed_without_reply(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(4096) == b""
    assert ldap_server.call(lambda: ldap_server.counters.ldap_nonldap) == 1
    assert_still_serving(ldap_server)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_on_plain_port(ldap_server: LdapHarness) -> None:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{ldap_server.port}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0, "the TLS handshake on the plain LDAP port should fail"
    assert_still_serving(ldap_server)


def test_oversized_length_rejected_at_once(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(b"\x30\x84\x7f\xff\xff\xff")
        assert_notice_then_close(sock, "over the limit of 1048576")
    assert_still_serving(ldap_server)


def test_message_over_configured_cap(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config(ldap_max_message_size=1000))
    with server.socket() as sock:
        sock.sendall(simple_bind(1, "x" * 990))
        assert_notice_then_close(sock, "over the limit of 1000")


def test_indefinite_length_rejected(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(b"\x30\x80" + SPLIT_BIND[2:] + b"\x00\x00")
        assert_notice_then_close(sock, "indefinite length")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (message(1, tlv(0x60, tlv(0x02, b"\x03"))), "has only 1 of its 3 required elements"),
        (tlv(0x30, tlv(0x02, b"\xff") + tlv(0x42, b"")), "out of range"),
        (tlv(0x30, tlv(0x02, b"\x01") + tlv(0x60, b"\x04\x40")), "declares 64 content octets"),
    ],
)
def test_invalid_message_gets_notice(ldap_server: LdapHarness, raw: bytes, reason: str) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(raw)
        assert_notice_then_close(sock, reason)


def test_garbage_after_valid_message(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(simple_bind(1, "") + b"GET / HTTP/1.0\r\n\r\n")
        stream = ReplyStream(sock)
        bind = stream.next()
        assert bind is not None
        assert bind.message_id == 1
        notice = stream.next()
        assert notice is not None
        assert notice.message_id == 0
        assert b"not the SEQUENCE tag" in notice.diagnostic
        assert stream.next() is None
    assert ldap_server.call(lambda: ldap_server.counters.ldap_nonldap) == 0


def test_half_sent_message_then_close(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(SPLIT_BIND[:20])
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_server(sock, REPLY_TIMEOUT)
    assert_still_serving(ldap_server)
