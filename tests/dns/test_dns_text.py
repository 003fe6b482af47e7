"""The dig-style text of DNS messages stored as raw-request and raw-response.

The expected texts follow miekg/dns v1.1.68 (``Msg.String`` and the
``String`` methods of its record types), which upstream uses.
"""

from __future__ import annotations

import struct

import pytest

from interactsh.listeners.dns_text import label_text, message_text, name_text, type_name
from interactsh.listeners.dns_wire import parse_message

from dnsharness import hdr, name, opt, option, q


def record(owner: str, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1) -> bytes:
    return name(owner) + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def render(wire: bytes) -> str:
    return message_text(parse_message(wire))


def test_query_with_edns_options() -> None:
    options = option(10, bytes(range(1, 9))) + option(3, b"") + option(8, bytes.fromhex("00011800c00002"))
    wire = hdr(qid=0xBEEF, flags=0x0120, ar=1) + q("Ab.oast.test", t=65) + opt(size=4096, do=True, opts=options)
    assert render(wire) == (
        ";; opcode: QUERY, status: NOERROR, id: 48879\n"
        ";; flags: rd ad; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1\n"
        "\n;; OPT PSEUDOSECTION:\n"
        "; EDNS: version 0; flags: do; udp: 4096\n"
        "; COOKIE: 0102030405060708\n"
        "; NSID:   \n"
        "; SUBNET: 192.0.2.0/24/0\n"
        "\n;; QUESTION SECTION:\n"
        ";Ab.oast.test.\tIN\t HTTPS\n"
    )


def test_edns_flags_beyond_do_show_as_mbz() -> None:
    wire = hdr(ar=1) + q("x.test") + b"\x00" + struct.pack(">HHBBHH", 41, 1232, 0, 0, 0xC001, 0)
    assert "; EDNS: version 0; flags: do, co; MBZ: 0x4001, udp: 1232\n" in render(wire)


def test_reply_sections_and_rdata() -> None:
    soa = name("ns1.oast.test") + name("hostmaster.oast.test") + struct.pack(">IIIII", 7, 3600, 600, 86400, 60)
    answers = [
        record("x.oast.test", 1, bytes([127, 0, 0, 1])),
        record("x.oast.test", 28, bytes(10) + b"\xff\xff" + bytes([1, 2, 3, 4])),
        record("x.oast.test", 28, bytes.fromhex("20010db8000000000000000000000005")),
        record("x.oast.test", 15, b"\x00\x0a" + name("mail.oast.test")),
        record("x.oast.test", 16, b'\x03a"b\x04c\\d\x01' + b"\x00"),
        record("x.oast.test", 33, struct.pack(">HHH", 1, 2, 443) + name("srv.oast.test")),
        record("x.oast.test", 65280, b"abc"),
        record("x.oast.test", 65, b"\x00\x01\x00"),
    ]
    wire = (
        hdr(qid=1, flags=0x8783, an=len(answers), ns=1, ar=1)
        + q("x.oast.test")
        + b"".join(answers)
        + record("oast.test", 6, soa, ttl=60)
        + record("ns1.oast.test", 2, name("ns1.oast.test"), ttl=3600)
    )
    assert render(wire) == (
        ";; opcode: QUERY, status: NXDOMAIN, id: 1\n"
        ";; flags: qr aa tc rd ra; QUERY: 1, ANSWER: 8, AUTHORITY: 1, ADDITIONAL: 1\n"
        "\n;; QUESTION SECTION:\n"
        ";x.oast.test.\tIN\t A\n"
        "\n;; ANSWER SECTION:\n"
        "x.oast.test.\t300\tIN\tA\t127.0.0.1\n"
        "x.oast.test.\t300\tIN\tAAAA\t::ffff:1.2.3.4\n"
        "x.oast.test.\t300\tIN\tAAAA\t2001:db8::5\n"
        "x.oast.test.\t300\tIN\tMX\t10 mail.oast.test.\n"
        'x.oast.test.\t300\tIN\tTXT\t"a\\"b" "c\\\\d\\001" ""\n'
        "x.oast.test.\t300\tIN\tSRV\t1 2 443 srv.oast.test.\n"
        "x.oast.test.\t300\tCLASS1\tTYPE65280\t\\# 3 616263\n"
        "x.oast.test.\t300\tIN\tHTTPS\t\\# 3 000100\n"
        "\n;; AUTHORITY SECTION:\n"
        "oast.test.\t60\tIN\tSOA\tns1.oast.test. hostmaster.oast.test. 7 3600 600 86400 60\n"
        "\n;; ADDITIONAL SECTION:\n"
        "ns1.oast.test.\t3600\tIN\tNS\tns1.oast.test.\n"
    )


def test_compressed_names_are_followed() -> None:
    question = q("x.oast.test")
    pointer_to_question = b"\xc0\x0c"
    answer = pointer_to_question + struct.pack(">HHIH", 5, 1, 60, 6) + b"\x03www\xc0\x0e"
    wire = hdr(flags=0x8400, an=1) + question + answer
    assert "x.oast.test.\t60\tIN\tCNAME\twww.oast.test.\n" in render(wire)


def test_badvers_status_uses_extended_rcode() -> None:
    wire = hdr(flags=0x8000, ar=1) + q("x.test") + opt(rcode=1)
    assert render(wire).startswith(";; opcode: QUERY, status: BADVERS, id: 4660\n")


def test_opt_only_additional_has_no_section() -> None:
    text = render(hdr(flags=0x8000, ar=1) + q("x.test") + opt())
    assert "ADDITIONAL: 1\n" in text
    assert ";; ADDITIONAL SECTION:" not in text


def test_class_any_question() -> None:
    assert ";x.test.\tCLASS255\t ANY\n" in render(hdr() + q("x.test", t=255, c=255))


@pytest.mark.parametrize(
    ("label", "text"),
    [
        (b"plain-Label_1", "plain-Label_1"),
        (b"a.b", "a\\.b"),
        (b"sp ace", "sp\\ ace"),
        (b'q"u\\o', 'q\\"u\\\\o'),
        (b"at@semi;(paren)'", "at\\@semi\\;\\(paren\\)\\'"),
        (b"\x00\x1f\x7f\xff", "\\000\\031\\127\\255"),
    ],
)
def test_label_escaping(label: bytes, text: str) -> None:
    assert label_text(label) == text


def test_root_and_names() -> None:
    assert name_text(()) == "."
    assert name_text((b"a", b"b")) == "a.b."


@pytest.mark.parametrize(
    ("rtype", "mnemonic"),
    [(1, "A"), (28, "AAAA"), (65, "HTTPS"), (257, "CAA"), (23, "NSAP-PTR"), (65534, "TYPE65534"), (11, "TYPE11")],
)
def test_type_names(rtype: int, mnemonic: str) -> None:
    assert type_name(rtype) == mnemonic
