"""StartTLS: the upgrade with a certificate, and the unavailable reply without one."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import ldap3
import pytest
from interactsh.listeners.ldap_ops import OID_START_TLS
from interactsh.tls import TlsProvider
from ldap_harness import (
    CORRELATION_ID,
    ID,
    REPLY_TIMEOUT,
    LdapHarness,
    ReplyStream,
    auth_config,
    closed_by_server,
    message,
    self_signed_tls,
    simple_bind,
    tlv,
)

StartServer = Callable[..., LdapHarness]
START_TLS = message(1, tlv(0x77, tlv(0x80, OID_START_TLS.encode())))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsProvider:
    """A provider holding a self-signed certificate for 127.0.0.1."""
    return self_signed_tls(tmp_path_factory.mktemp("ldap-tls"))


def test_start_tls_then_search(start_ldap_server: StartServer, tls: TlsProvider) -> None:
    server = start_ldap_server(auth_config(ldap=True), tls=tls)
    session = server.register(CORRELATION_ID)
    connection = server.connect()
    connection.server.tls = ldap3.Tls(validate=ssl.CERT_NONE)
    connection.open()
    assert connection.start_tls()
    assert connection.bind()
    assert connection.search(f"dc={ID}", "(objectClass=*)")
    assert connection.response[0]["dn"] == f"cn=interactsh, dc={ID}"
    connection.unbind()
    (item,) = server.poll(session)
    assert item["unique-id"] == ID
    texts = [extra["raw-request"] for extra in server.poll_extra()]
    assert texts[0] == "Type=StartTLS\nResult=StartTLS OK\n"
    assert texts[1].startswith("Type=Bind\n")


def test_start_tls_without_certificate_unavailable(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(START_TLS + simple_bind(2, ""))
        reply, bind = ReplyStream(sock).take(2)
    assert reply.tag == 0x78
    assert reply.result_code == 52
    assert b"no certificate" in reply.diagnostic
    assert bind.result_code == 0


def test_failed_handshake_closes(start_ldap_server: StartServer, tls: TlsProvider) -> None:
    server = start_ldap_server(auth_config(ldap=True), tls=tls)
    with server.socket() as sock:
        sock.sendall(START_TLS)
        (reply,) = ReplyStream(sock).take(1)
        assert reply.result_code == 0
        sock.sendall(b"this is not a TLS record\r\n" * 4)
        assert closed_by_server(sock, REPLY_TIMEOUT)
    texts = _wait_for_extra(server, 1)
    assert texts[0].startswith("Type=StartTLS\nResult=StartTLS Handshake error ")


def test_data_after_start_tls_request_rejected(start_ldap_server: StartServer, tls: TlsProvider) -> None:
    server = start_ldap_server(auth_config(), tls=tls)
    with server.socket() as sock:
        sock.sendall(START_TLS + simple_bind(2, ""))
        stream = ReplyStream(sock)
        notice = stream.next()
        assert notice is not None
        assert notice.message_id == 0
        assert b"StartTLS" in notice.diagnostic
        assert stream.next() is None


def _wait_for_extra(server: LdapHarness, count: int) -> list[str]:
    """Poll the token bucket until it contains ``count`` records, which the handshake task adds later."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        texts = [item["raw-request"] for item in server.poll_extra()]
        if len(texts) >= count or time.monotonic() > deadline:
            return texts
        time.sleep(0.02)
