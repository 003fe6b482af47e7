"""What the LDAP listener records: per-id interactions, unattributed contacts and the -ldap log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ldap3
from ldap_harness import (
    CORRELATION_ID,
    ID,
    LdapHarness,
    ReplyStream,
    auth_config,
    message,
    present_search,
    simple_bind,
    tlv,
)

StartServer = Callable[..., LdapHarness]
OTHER_ID = "c" * 20 + "d" * 13


def send(server: LdapHarness, data: bytes, replies: int) -> tuple[str, int]:
    """Send raw requests, read ``replies`` messages and return the client's ``ip:port``."""
    with server.socket() as sock:
        host, port = sock.getsockname()[:2]
        sock.sendall(data)
        ReplyStream(sock).take(replies)
    return f"{host}:{port}", port


def test_search_base_dn_id_recorded(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    peer, _ = send(ldap_server, present_search(2, f"cn=x,dc={ID}.oast.test", ("cn", "mail")), 2)
    (item,) = ldap_server.poll(session)
    assert item["protocol"] == "ldap"
    assert item["unique-id"] == ID
    assert item["full-id"] == ID
    assert item["remote-address"] == peer
    assert item["raw-request"] == (
        f"Type=Search\nBaseDn=cn=x,dc={ID}.oast.test\nFilter=objectClass\nFilterString=(objectClass=*)\n"
        "Attributes=[cn mail]\nTimeLimit=0\n"
    )
    assert "timestamp" in item


def test_full_id_keeps_dotted_prefix(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    send(ldap_server, present_search(1, f"dc=sub.{ID}.oast.test"), 2)
    (item,) = ldap_server.poll(session)
    assert item["full-id"] == f"sub.{ID}"
    assert item["unique-id"] == ID


def test_bind_dn_id_recorded(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    send(ldap_server, simple_bind(1, f"cn={ID},dc=oast,dc=test", "pw"), 1)
    (item,) = ldap_server.poll(session)
    assert item["unique-id"] == ID
    assert item["raw-request"] == f"Type=Bind\nAuthenticationChoice=simple\nUser=cn={ID},dc=oast,dc=test\nPass=pw\n"


def test_upper_case_id_matches(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    send(ldap_server, present_search(1, f"DC={ID.upper()}"), 2)
    (item,) = ldap_server.poll(session)
    assert item["unique-id"] == ID
    assert item["full-id"] == ID.upper()


def test_id_glued_to_other_text_matches(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    send(ldap_server, present_search(1, f"cn=zz{ID}zz"), 2)
    (item,) = ldap_server.poll(session)
    assert item["unique-id"] == ID


def test_one_record_per_id_per_operation(ldap_server: LdapHarness) -> None:
    first = ldap_server.register(CORRELATION_ID)
    second = ldap_server.register(OTHER_ID[:20])
    send(ldap_server, present_search(1, f"cn={ID},ou={OTHER_ID},dc={ID}"), 2)
    assert [item["unique-id"] for item in ldap_server.poll(first)] == [ID]
    assert [item["unique-id"] for item in ldap_server.poll(second)] == [OTHER_ID]


def test_unregistered_id_not_recorded(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    send(ldap_server, present_search(1, f"dc={OTHER_ID}"), 2)
    assert ldap_server.poll(session) == []


def test_other_operations_not_correlated(ldap_server: LdapHarness) -> None:
    session = ldap_server.register(CORRELATION_ID)
    delete = message(1, tlv(0x4A, f"cn={ID}".encode()))
    send(ldap_server, delete, 1)
    assert ldap_server.poll(session) == []


def test_no_extra_without_auth(ldap_server: LdapHarness) -> None:
    send(ldap_server, simple_bind(1, "") + present_search(2, "a"), 3)
    assert ldap_server.poll_extra() == []


def test_unattributed_contact_with_auth(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config())
    peer, _ = send(server, simple_bind(1, "") + present_search(2, "a"), 3)
    extra = server.poll_extra()
    assert [item["raw-request"].partition("\n")[0] for item in extra] == ["Type=Bind", "Type=Search"]
    for item in extra:
        assert item["protocol"] == "ldap"
        assert item["unique-id"] == ""
        assert item["full-id"] == ""
        assert item["remote-address"] == peer
    assert "BaseDn=a\n" in extra[1]["raw-request"]


def test_attributed_contact_not_in_extra(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config())
    session = server.register(CORRELATION_ID)
    send(server, present_search(1, ID), 2)
    assert len(server.poll(session)) == 1
    assert server.poll_extra() == []


def test_full_logging_records_every_operation(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config(ldap=True))
    session = server.register(CORRELATION_ID)
    connection = server.connect(user="cn=admin", password="secret")
    assert connection.bind()
    assert connection.search(f"dc={ID}", "(cn=x)", attributes=["cn"])
    assert connection.compare("cn=x", "sn", "y")
    assert connection.add("cn=n,dc=x", "person", {"sn": "s"})
    assert connection.modify("cn=n,dc=x", {"sn": [(ldap3.MODIFY_ADD, ["v1", "v2"])]})
    assert connection.delete("cn=n,dc=x")
    connection.extend.standard.who_am_i()
    connection.unbind()
    texts = [item["raw-request"] for item in server.poll_extra()]
    assert texts == [
        "Type=Bind\nAuthenticationChoice=simple\nUser=cn=admin\nPass=secret\n",
        f"Type=Search\nBaseDn=dc={ID}\nFilter={{cn x}}\nFilterString=(cn=x)\nAttributes=[cn]\nTimeLimit=0\n",
        "Type=Compare\nAttribute name to compare=sn\nAttribute value expected=y\n",
        # ldap3 sends the attributes first and objectClass last.
        (
            "Type=Add\nEntity=cn=n,dc=x\nAttribute Name=sn Attribute Value=s\n"
            "Attribute Name=objectClass Attribute Value=person\n"
        ),
        "Type=Modify\nEntity=cn=n,dc=x\nOperation=Add Attribute=sn Values=[v1 - v2]\n",
        "Type=Delete\nEntity=cn=n,dc=x\n",
        "Type=WhoAmI\n",
    ]
    (item,) = server.poll(session)
    assert item["raw-request"] == texts[1]


def test_full_logging_keeps_no_packet_dumps(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config(ldap=True))
    send(server, simple_bind(1, "") + message(2, tlv(0x50, b"\x01")) + message(3, tlv(0x7E, b"")), 2)
    texts = [item["raw-request"] for item in server.poll_extra()]
    assert texts == [
        "Type=Bind\nAuthenticationChoice=simple\nUser=\nPass=\n",
        "Type=Abandon\n",
        "Type=Application30\n",
    ]


def test_large_request_text_truncated(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config(ldap=True, max_request_size=300))
    session = server.register(CORRELATION_ID)
    attributes = tuple(f"attribute{index}" for index in range(200))
    send(server, present_search(1, ID, attributes), 2)
    (item,) = server.poll(session)
    assert item["truncated"] is True
    assert len(item["raw-request"]) == 300
    (logged,) = server.poll_extra()
    assert logged["truncated"] is True


def test_operations_counted_with_records(start_ldap_server: StartServer) -> None:
    server = start_ldap_server(auth_config(ldap=True))
    send(server, simple_bind(1, "") + present_search(2, "a"), 3)
    counters: dict[str, Any] = server.call(server.counters.as_dict)
    assert counters["ldap"] == 2
