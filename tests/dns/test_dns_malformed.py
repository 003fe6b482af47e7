"""Malformed, unusual and hostile DNS messages over real UDP sockets."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsharness import (
    DOMAIN,
    ID,
    DnsHarness,
    Session,
    hdr,
    name,
    opt,
    option,
    q,
    question_bytes,
    rcode,
    udp,
)

FORMERR = 1
NOTIMP = 4
COOKIE = 10
CLIENT_COOKIE = bytes(range(1, 9))


def assert_still_answering(server: DnsHarness) -> None:
    assert rcode(udp(hdr(qid=0x7777) + q(f"alive.{DOMAIN}"), server.port)) == 0


def assert_header_only_error(reply: bytes | None, code: int, qid: int = 0x1234) -> None:
    assert reply is not None
    qid_received, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", reply[:12])
    assert qid_received == qid
    assert flags & 0x8000, "QR must be set"
    assert flags & 0x0F == code
    assert (qd, an, ns, ar) == (0, 0, 0, 0)
    assert len(reply) == 12


def test_no_question_is_formerr(dns_server: DnsHarness, session: Session) -> None:
    reply = udp(bytes.fromhex("123400000000000000000000"), dns_server.port)
    assert_header_only_error(reply, FORMERR)
    assert dns_server.poll(session) == []
    assert dns_server.counters.dns_malformed == 1
    assert_still_answering(dns_server)


def test_cookie_only_query_gets_server_cookie(dns_server: DnsHarness) -> None:
    raw = bytes.fromhex("12340000000000000000000100002904d000000000000c000a00080102030405060708")
    reply_wire = udp(raw, dns_server.port)
    assert reply_wire is not None
    reply = dns.message.from_wire(reply_wire)
    assert reply.id == 0x1234
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.question == []
    cookie = _cookie(reply)
    assert cookie[:8] == CLIENT_COOKIE
    assert len(cookie) == 24
    assert cookie[8] == 1, "server cookie version 1"


def test_two_questions_are_formerr(dns_server: DnsHarness, session: Session) -> None:
    query = hdr(qd=2) + q(f"{ID}.{DOMAIN}") + q(f"x.{DOMAIN}")
    assert len(query) == 78
    assert_header_only_error(udp(query, dns_server.port), FORMERR)
    assert dns_server.poll(session) == []
    assert_still_answering(dns_server)


def test_63_octet_label_is_recorded(dns_server: DnsHarness, session: Session) -> None:
    assert rcode(udp(hdr() + q("x" * 30 + ID + f".{DOMAIN}"), dns_server.port)) == 0
    assert [record["unique-id"] for record in dns_server.poll(session)] == [ID]


def test_64_octet_label_is_formerr(dns_server: DnsHarness, session: Session) -> None:
    label = ("y" * 31 + ID).encode()
    assert len(label) == 64
    query = hdr() + bytes([0x40]) + label + name(DOMAIN) + struct.pack(">HH", 1, 1)
    assert_header_only_error(udp(query, dns_server.port), FORMERR)
    assert dns_server.poll(session) == []
    assert_still_answering(dns_server)


def long_name(filler: int) -> str:
    return ".".join(["c" * 63] * 3 + ["c" * filler] + [ID, "oast", "test"])


def test_255_octet_name_is_answered(dns_server: DnsHarness, session: Session) -> None:
    qname = long_name(17)
    assert len(qname) == 253
    assert len(name(qname)) == 255
    reply = udp(hdr() + q(qname), dns_server.port)
    assert rcode(reply) == 0
    assert reply is not None
    assert question_bytes(reply) == q(qname)
    assert [record["unique-id"] for record in dns_server.poll(session)] == [ID]


def test_256_octet_name_is_formerr(dns_server: DnsHarness, session: Session) -> None:
    qname = long_name(18)
    assert len(name(qname)) == 256
    assert_header_only_error(udp(hdr() + q(qname), dns_server.port), FORMERR)
    assert dns_server.poll(session) == []


@pytest.mark.parametrize(
    "body",
    [
        bytes.fromhex("c00c") + struct.pack(">HH", 1, 1),  # points at itself
        bytes.fromhex("c000") + struct.pack(">HH", 1, 1),  # points into the header
        bytes.fromhex("c020") + struct.pack(">HH", 1, 1) + b"\x00" * 20,  # points forwards
        b"\x01a\xc0\x0c" + struct.pack(">HH", 1, 1),  # loops back to its own start
        b"\x04oast\x04te",  # name cut off
        name(DOMAIN) + b"\x00\x01",  # class cut off
        b"\x80abc" + struct.pack(">HH", 1, 1),  # reserved label type
    ],
    ids=[
        "self-pointer",
        "header-pointer",
        "forward-pointer",
        "pointer-loop",
        "short-name",
        "short-fixed",
        "label-type-10",
    ],
)
def test_broken_names_are_formerr(dns_server: DnsHarness, body: bytes) -> None:
    assert_header_only_error(udp(hdr() + body, dns_server.port), FORMERR)
    assert_still_answering(dns_server)


def test_short_message_gets_no_reply(dns_server: DnsHarness) -> None:
    assert udp(bytes.fromhex("1234000000"), dns_server.port, timeout=0.5) is None
    assert dns_server.counters.dns_malformed == 1
    assert_still_answering(dns_server)


def test_edns_size_is_capped_and_do_echoed(dns_server: DnsHarness, session: Session) -> None:
    query = hdr(ar=1) + q(f"{ID}.{DOMAIN}") + opt(size=65535, do=True)
    wire = udp(query, dns_server.port)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.edns == 0
    assert reply.payload == 1232
    assert reply.ednsflags & dns.flags.DO
    assert reply.options == ()
    records = dns_server.poll(session)
    assert len(records) == 1
    assert "; EDNS: version 0; flags: do; udp: 65535\n" in records[0]["raw-request"]
    assert "; EDNS: version 0; flags: do; udp: 1232\n" in records[0]["raw-response"]


def test_small_edns_size_gets_server_size_in_opt(dns_server: DnsHarness) -> None:
    wire = udp(hdr(ar=1) + q(f"x.{DOMAIN}") + opt(size=100), dns_server.port)
    assert wire is not None
    assert dns.message.from_wire(wire).payload == 1232


def test_edns_version_1_is_badvers(dns_server: DnsHarness, session: Session) -> None:
    wire = udp(hdr(ar=1) + q(f"{ID}.{DOMAIN}") + opt(ver=1, do=True), dns_server.port)
    assert wire is not None
    assert wire[3] & 0x0F == 0, "the header carries the low four bits of BADVERS"
    reply = dns.message.from_wire(wire)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0
    assert reply.answer == []
    assert question_bytes(wire) == q(f"{ID}.{DOMAIN}")
    assert dns_server.poll(session) == []


def test_two_opt_records_are_formerr(dns_server: DnsHarness, session: Session) -> None:
    query = hdr(ar=2) + q(f"{ID}.{DOMAIN}") + opt() + opt()
    assert_header_only_error(udp(query, dns_server.port), FORMERR)
    assert dns_server.poll(session) == []


def test_opt_outside_additional_is_formerr(dns_server: DnsHarness) -> None:
    query = hdr(an=1) + q(f"x.{DOMAIN}") + opt()
    assert_header_only_error(udp(query, dns_server.port), FORMERR)


def test_client_options_are_not_echoed(dns_server: DnsHarness) -> None:
    options = option(COOKIE, CLIENT_COOKIE + b"S" * 16) + option(3, b"") + option(12, b"\x00" * 8)
    wire = udp(hdr(ar=1) + q(f"x.{DOMAIN}") + opt(opts=options), dns_server.port)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert [o.otype for o in reply.options] == [COOKIE]
    cookie = _cookie(reply)
    assert cookie[:8] == CLIENT_COOKIE
    assert cookie[8:] != b"S" * 16


@pytest.mark.parametrize("size", [1, 7, 9, 15, 41])
def test_bad_cookie_length_is_formerr(dns_server: DnsHarness, size: int) -> None:
    query = hdr(ar=1) + q(f"x.{DOMAIN}") + opt(opts=option(COOKIE, b"c" * size))
    assert_header_only_error(udp(query, dns_server.port), FORMERR)


def test_bad_option_layout_is_formerr(dns_server: DnsHarness) -> None:
    broken = struct.pack(">HH", 3, 10) + b"abc"
    query = hdr(ar=1) + q(f"x.{DOMAIN}") + opt(opts=broken)
    assert_header_only_error(udp(query, dns_server.port), FORMERR)


def test_extra_records_beyond_query_limits_are_formerr(dns_server: DnsHarness) -> None:
    record = name(f"x.{DOMAIN}") + struct.pack(">HHIH", 1, 1, 0, 4) + b"\x7f\x00\x00\x01"
    assert rcode(udp(hdr(an=1) + q(f"x.{DOMAIN}") + record, dns_server.port)) == 0
    assert_header_only_error(udp(hdr(an=2) + q(f"x.{DOMAIN}") + record * 2, dns_server.port), FORMERR)
    assert_header_only_error(udp(hdr(ar=3) + q(f"x.{DOMAIN}") + record * 3, dns_server.port), FORMERR)


def test_response_gets_no_reply(dns_server: DnsHarness, session: Session) -> None:
    query = hdr(flags=0x8000) + q("AaAaAaAaAaAaAaAaAaAaBbBbBbBbBbBbB.OaSt.TeSt")
    assert udp(query, dns_server.port, timeout=0.5) is None
    assert dns_server.poll(session) == []
    assert_still_answering(dns_server)


@pytest.mark.parametrize(
    "raw",
    [
        "12342000000100000000000004" + "6f617374" + "04" + "74657374" + "0000060001",
        "1234280000010000000000000" + "4" + "6f617374" + "04" + "74657374" + "0000060001",
        "1234100000010000000000000" + "4" + "6f617374" + "04" + "74657374" + "0000060001",
    ],
    ids=["notify", "update", "status"],
)
def test_other_opcodes_are_notimp(dns_server: DnsHarness, session: Session, raw: str) -> None:
    message = bytes.fromhex(raw)
    reply = udp(message, dns_server.port)
    assert reply is not None
    assert reply[3] & 0x0F == NOTIMP
    assert (reply[2] >> 3) & 0x0F == (message[2] >> 3) & 0x0F, "the opcode is copied"
    assert dns_server.poll(session) == []


def test_id_in_notify_is_not_recorded(dns_server: DnsHarness, session: Session) -> None:
    reply = udp(hdr(flags=0x2000) + q(f"{ID}.{DOMAIN}"), dns_server.port)
    assert rcode(reply) == NOTIMP
    assert dns_server.poll(session) == []


def _cookie(reply: dns.message.Message) -> bytes:
    for item in reply.options:
        if isinstance(item, dns.edns.CookieOption):
            return item.client + item.server
    raise AssertionError(f"no COOKIE option in {reply.options}")
