"""Replies of the LDAP listener over real sockets, with ldap3 and raw messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import ldap3
from interactsh.listeners.ldap_replies import NOT_IMPLEMENTED
from ldap_harness import (
    REPLY_TIMEOUT,
    LdapHarness,
    ReplyStream,
    closed_by_server,
    make_config,
    message,
    present_search,
    simple_bind,
    tlv,
)

StartServer = Callable[..., LdapHarness]


def test_ldap3_operations_get_upstream_replies(ldap_server: LdapHarness) -> None:
    connection = ldap_server.connect(user="cn=admin,dc=oast,dc=test", password="pw")
    assert connection.bind()
    assert connection.result["description"] == "success"
    assert connection.search("dc=oast,dc=test", "(objectClass=*)", attributes=["cn", "mail"])
    assert len(connection.response) == 1
    entry = connection.response[0]
    assert entry["dn"] == "cn=interactsh, dc=oast,dc=test"
    assert entry["raw_attributes"]["mail"] == [b"interact@s.h", b"interact@s.h"]
    assert entry["raw_attributes"]["telephoneNumber"] == [b"123456789"]
    assert entry["raw_attributes"]["cn"] == [b"interact"]
    assert connection.result["description"] == "success"
    assert connection.compare("cn=x", "cn", "anything")
    assert connection.result["description"] == "compareTrue"
    assert connection.add("cn=new,dc=x", "person", {"sn": "s"})
    assert connection.modify("cn=new,dc=x", {"sn": [(ldap3.MODIFY_REPLACE, ["a", "b"])]})
    assert connection.delete("cn=new,dc=x")
    assert connection.result["description"] == "success"
    connection.extend.standard.who_am_i()
    assert connection.result["description"] == "success"
    assert connection.unbind()


def test_search_entry_echoes_base_octets(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(present_search(5, "DC=Mixed Case,\u00e9=x"))
        entry, done = ReplyStream(sock).take(2)
    assert entry.message_id == 5
    assert entry.tag == 0x64
    assert "cn=interactsh, DC=Mixed Case,\u00e9=x".encode() in entry.raw
    assert done.tag == 0x65
    assert done.result_code == 0


def test_modify_dn_is_not_implemented(ldap_server: LdapHarness) -> None:
    connection = ldap_server.connect()
    connection.bind()
    assert not connection.modify_dn("cn=a,dc=x", "cn=b")
    assert connection.result["result"] == 53
    assert connection.result["message"] == NOT_IMPLEMENTED.decode()


def test_unknown_operation_unwilling(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(message(7, tlv(0x7E, b"")) + simple_bind(8, ""))
        unknown, bind = ReplyStream(sock).take(2)
    assert unknown.message_id == 7
    assert unknown.result_code == 53
    assert unknown.diagnostic == NOT_IMPLEMENTED
    assert bind.message_id == 8
    assert bind.result_code == 0


def test_abandon_gets_no_reply(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(message(2, tlv(0x50, b"\x01")) + simple_bind(3, ""))
        (reply,) = ReplyStream(sock).take(1)
    assert reply.message_id == 3
    assert reply.tag == 0x61


def test_unbind_closes_connection(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(simple_bind(1, "") + message(2, tlv(0x42, b"")) + simple_bind(3, ""))
        stream = ReplyStream(sock)
        first = stream.next()
        assert first is not None
        assert first.message_id == 1
        assert stream.next() is None


def test_pipelined_requests_answered_in_order(ldap_server: LdapHarness) -> None:
    count = 200
    with ldap_server.socket() as sock:
        sock.sendall(b"".join(simple_bind(index, f"cn={index}") for index in range(1, count + 1)))
        replies = ReplyStream(sock).take(count)
    assert [reply.message_id for reply in replies] == list(range(1, count + 1))
    assert {reply.result_code for reply in replies} == {0}


def test_client_that_does_not_read_is_paused(ldap_server: LdapHarness) -> None:
    # 3,000 searches produce about 1 MB of replies. While the client does not
    # read, the server stops reading too instead of buffering replies. Once
    # the client reads, every search gets its reply.
    count = 3000
    requests = b"".join(present_search(index, "dc=" + "x" * 200) for index in range(1, count + 1))
    with ldap_server.socket() as sock:
        sender = threading.Thread(target=sock.sendall, args=(requests,), daemon=True)
        sender.start()
        time.sleep(0.5)
        assert ldap_server.listener is not None
        listener = ldap_server.listener
        buffered = ldap_server.call(lambda: [connection.buffered for connection in listener.connections()])
        assert len(buffered) == 1
        assert buffered[0] <= 2 * 1024 * 1024
        replies = ReplyStream(sock).take(2 * count)
        sender.join(REPLY_TIMEOUT)
    assert [reply.message_id for reply in replies[::2]] == list(range(1, count + 1))
    assert all(reply.tag == 0x65 for reply in replies[1::2])


def test_operations_counted(ldap_server: LdapHarness) -> None:
    with ldap_server.socket() as sock:
        sock.sendall(simple_bind(1, "") + present_search(2, "dc=x") + message(3, tlv(0x4A, b"cn=x")))
        ReplyStream(sock).take(4)
    assert ldap_server.call(lambda: ldap_server.counters.ldap) == 3


def test_idle_connection_closed(start_ldap_server: StartServer) -> None:
    server: LdapHarness = start_ldap_server(make_config(ldap_idle_timeout=0.3))
    with server.socket() as sock:
        sock.sendall(simple_bind(1, ""))
        assert closed_by_server(sock, REPLY_TIMEOUT)


def test_partial_message_times_out(start_ldap_server: StartServer) -> None:
    server: LdapHarness = start_ldap_server(make_config(ldap_idle_timeout=0.3))
    with server.socket() as sock:
        sock.sendall(simple_bind(1, "cn=x")[:5])
        assert closed_by_server(sock, REPLY_TIMEOUT)


def test_connections_capped_per_address(start_ldap_server: StartServer) -> None:
    server: LdapHarness = start_ldap_server(make_config(ldap_max_connections_per_ip=2))
    first, second = server.socket(), server.socket()
    try:
        _wait_for_connections(server, 2)
        with server.socket() as third:
            assert closed_by_server(third, REPLY_TIMEOUT)
        first.sendall(simple_bind(1, ""))
        assert ReplyStream(first).take(1)[0].result_code == 0
    finally:
        first.close()
        second.close()
    _wait_for_connections(server, 0)
    with server.socket() as again:
        again.sendall(simple_bind(1, ""))
        assert ReplyStream(again).take(1)[0].result_code == 0


def test_connections_capped_in_total(start_ldap_server: StartServer) -> None:
    server: LdapHarness = start_ldap_server(make_config(ldap_max_connections=1))
    with server.socket() as first:
        _wait_for_connections(server, 1)
        with server.socket() as second:
            assert closed_by_server(second, REPLY_TIMEOUT)
        first.sendall(simple_bind(1, ""))
        assert ReplyStream(first).take(1)[0].result_code == 0


def test_close_ends_open_connections(start_ldap_server: StartServer) -> None:
    server: LdapHarness = start_ldap_server()
    with server.socket() as sock:
        _wait_for_connections(server, 1)
        assert server.listener is not None
        server.run(server.listener.close())
        assert closed_by_server(sock, REPLY_TIMEOUT)
    assert server.connection_count() == 0


def _wait_for_connections(server: LdapHarness, count: int) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT
    while server.connection_count() != count:
        assert time.monotonic() < deadline, f"expected {count} open connections, have {server.connection_count()}"
        time.sleep(0.01)
