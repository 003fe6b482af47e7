"""Answers and recording of well-formed queries, over real UDP sockets."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from dnsharness import (
    CORRELATION_ID,
    DOMAIN,
    ID,
    DnsHarness,
    Session,
    hdr,
    make_config,
    q,
    question_bytes,
    rcode,
    udp,
)


def ask(server: DnsHarness, qname: str, qtype: str = "A", **options: object) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, **options)  # type: ignore[arg-type]
    wire = udp(query.to_wire(), server.port)
    assert wire is not None, f"no reply to {qtype} {qname}"
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id
    return reply


def section_types(section: list[dns.rrset.RRset]) -> list[str]:
    return [dns.rdatatype.to_text(rrset.rdtype) for rrset in section]


def assert_nodata(reply: dns.message.Message) -> None:
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    assert section_types(reply.authority) == ["SOA"]
    soa_rrset = reply.authority[0]
    soa = soa_rrset[0]
    assert soa_rrset.name.to_text() == "oast.test."
    assert soa.mname.to_text() == "ns1.oast.test."
    assert soa.rname.to_text() == "hostmaster.oast.test."
    assert soa.minimum == 60
    assert soa_rrset.ttl == 60


def test_a_answer_with_ns_and_glue(dns_server: DnsHarness) -> None:
    reply = ask(dns_server, f"x.{DOMAIN}")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RA
    assert [(rrset.name.to_text(), rrset.ttl, [r.address for r in rrset]) for rrset in reply.answer] == [
        ("x.oast.test.", 3600, ["127.0.0.1"])
    ]
    ns = reply.authority[0]
    assert ns.name.to_text() == "oast.test."
    assert sorted(r.target.to_text() for r in ns) == ["ns1.oast.test.", "ns2.oast.test."]
    glue = sorted((rrset.name.to_text(), rrset[0].address) for rrset in reply.additional)
    assert glue == [("ns1.oast.test.", "127.0.0.1"), ("ns2.oast.test.", "127.0.0.1")]


def test_aaaa_on_ipv4_only_is_nodata(dns_server: DnsHarness, session: Session) -> None:
    reply = ask(dns_server, f"{ID}.{DOMAIN}", "AAAA")
    assert_nodata(reply)
    records = dns_server.poll(session)
    assert [record["q-type"] for record in records] == ["AAAA"]


@pytest.mark.parametrize(
    ("qtype", "mnemonic"), [(65, "HTTPS"), (257, "CAA"), (33, "SRV"), (12, "PTR"), (65534, "TYPE65534")]
)
def test_types_without_data_are_nodata_and_recorded(
    dns_server: DnsHarness, session: Session, qtype: int, mnemonic: str
) -> None:
    wire = udp(hdr() + q(f"{ID}.{DOMAIN}", t=qtype), dns_server.port)
    assert wire is not None
    assert_nodata(dns.message.from_wire(wire))
    records = dns_server.poll(session)
    assert len(records) == 1
    assert records[0]["q-type"] == mnemonic
    assert records[0]["unique-id"] == ID
    assert records[0]["protocol"] == "dns"
    assert records[0]["remote-address"] == "127.0.0.1"
    assert records[0]["transport"] == "udp"


def test_aaaa_answer_has_no_a_record(loop_kind: str) -> None:
    with DnsHarness(make_config(ips=["127.0.0.1", "::1", "2001:db8::5"]), loop_kind) as server:
        reply = ask(server, f"x.{DOMAIN}", "AAAA")
        assert section_types(reply.answer) == ["AAAA"]
        assert [r.address for r in reply.answer[0]] == ["::1", "2001:db8::5"]
        glue = sorted((rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype)) for rrset in reply.additional)
        assert glue == [
            ("ns1.oast.test.", "A"),
            ("ns1.oast.test.", "AAAA"),
            ("ns2.oast.test.", "A"),
            ("ns2.oast.test.", "AAAA"),
        ]
        a_reply = ask(server, f"x.{DOMAIN}", "A")
        assert section_types(a_reply.answer) == ["A"]


def test_a_without_ipv4_is_nodata(loop_kind: str) -> None:
    with DnsHarness(make_config(ips=["::1"]), loop_kind) as server:
        assert_nodata(ask(server, f"x.{DOMAIN}", "A"))


def test_any_returns_both_families(loop_kind: str) -> None:
    with DnsHarness(make_config(ips=["127.0.0.1", "::1"]), loop_kind) as server:
        reply = ask(server, f"x.{DOMAIN}", "ANY")
        assert sorted(section_types(reply.answer)) == ["A", "AAAA"]


def test_mx_ns_soa_txt_defaults(dns_server: DnsHarness) -> None:
    mx = ask(dns_server, f"x.{DOMAIN}", "MX").answer[0]
    assert (mx.name.to_text(), mx.ttl, mx[0].preference, mx[0].exchange.to_text()) == (
        "x.oast.test.",
        3600,
        1,
        "mail.oast.test.",
    )
    ns = ask(dns_server, DOMAIN, "NS")
    assert sorted(r.target.to_text() for r in ns.answer[0]) == ["ns1.oast.test.", "ns2.oast.test."]
    assert {rrset.name.to_text() for rrset in ns.additional} == {"ns1.oast.test.", "ns2.oast.test."}
    soa = ask(dns_server, DOMAIN, "SOA").answer[0]
    assert soa.name.to_text() == "oast.test."
    assert soa[0].mname.to_text() == "ns1.oast.test."
    assert soa[0].rname.to_text() == "hostmaster.oast.test."
    assert soa[0].serial == dns_server.listener.answerer.serial  # type: ignore[union-attr]
    txt = ask(dns_server, f"x.{DOMAIN}", "TXT").answer[0]
    assert (txt.ttl, [r.strings for r in txt]) == (0, [(b"",)])


def test_cname_without_custom_record_is_nodata(dns_server: DnsHarness) -> None:
    assert_nodata(ask(dns_server, f"x.{DOMAIN}", "CNAME"))


def test_mixed_case_query_is_echoed_exactly(dns_server: DnsHarness, session: Session) -> None:
    query = hdr() + q("AaAaAaAaAaAaAaAaAaAaBbBbBbBbBbBbB.OaSt.TeSt")
    assert len(query) == 61
    wire = udp(query, dns_server.port)
    assert wire is not None
    assert question_bytes(wire) == question_bytes(query)
    reply = dns.message.from_wire(wire)
    assert reply.flags & dns.flags.AA
    assert reply.rcode() == dns.rcode.NOERROR
    owner = reply.answer[0].name.to_text(omit_final_dot=True)
    assert owner == "AaAaAaAaAaAaAaAaAaAaBbBbBbBbBbBbB.OaSt.TeSt"
    records = dns_server.poll(session)
    assert len(records) == 1
    assert records[0]["unique-id"] == ID
    assert records[0]["full-id"] == "AaAaAaAaAaAaAaAaAaAaBbBbBbBbBbBbB"
    assert ";AaAaAaAaAaAaAaAaAaAaBbBbBbBbBbBbB.OaSt.TeSt.\tIN\t A\n" in records[0]["raw-request"]


@pytest.mark.parametrize(
    ("qname", "full_id"),
    [
        (f"foo.{ID}.{DOMAIN}", f"foo.{ID}"),
        (f"{ID}.bar.{DOMAIN}", ID),
        (f"x.{'x' * 30}{ID}.{DOMAIN}", f"x.{'x' * 30}{ID}"),
        (f"{ID}zzz.{DOMAIN}", f"{ID}zzz"),
    ],
    ids=["prefix-label", "suffix-label", "63-octet-label", "glued-suffix"],
)
def test_full_id_and_sliding_window(dns_server: DnsHarness, session: Session, qname: str, full_id: str) -> None:
    assert ask(dns_server, qname).rcode() == dns.rcode.NOERROR
    records = dns_server.poll(session)
    assert [(record["unique-id"], record["full-id"]) for record in records] == [(ID, full_id)]


def test_first_registered_id_wins(dns_server: DnsHarness, session: Session) -> None:
    other = dns_server.register("c" * 20)
    ask(dns_server, f"{'c' * 20}{'d' * 13}.{ID}.{DOMAIN}")
    assert [record["unique-id"] for record in dns_server.poll(other)] == ["c" * 20 + "d" * 13]
    assert dns_server.poll(session) == []


def test_unregistered_id_is_not_recorded(dns_server: DnsHarness, session: Session) -> None:
    reply = ask(dns_server, f"{'z' * 33}.{DOMAIN}")
    assert reply.rcode() == dns.rcode.NOERROR
    assert dns_server.poll(session) == []
    assert dns_server.counters.recorded == 0


def test_each_query_recorded_once(dns_server: DnsHarness, session: Session) -> None:
    for qtype in ("A", "AAAA", "MX", "TXT"):
        ask(dns_server, f"{ID}.{DOMAIN}", qtype)
    records = dns_server.poll(session)
    assert [record["q-type"] for record in records] == ["A", "AAAA", "MX", "TXT"]
    assert dns_server.counters.dns == 4
    assert dns_server.counters.recorded == 4


@pytest.mark.parametrize(
    "qname",
    ["example.com", f"{ID}.oast.test.attacker.example", f"{ID}.xoast.test", "test"],
    ids=["foreign", "suffix-inside", "suffix-glued", "parent"],
)
def test_names_outside_the_zone_are_refused(dns_server: DnsHarness, session: Session, qname: str) -> None:
    wire = udp(hdr(flags=0x0100) + q(qname), dns_server.port)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.AA
    assert reply.flags & dns.flags.RD
    assert reply.answer == []
    assert question_bytes(wire) == q(qname)
    assert dns_server.poll(session) == []
    assert dns_server.counters.dns_refused == 1


def test_chaos_class_is_refused(dns_server: DnsHarness, session: Session) -> None:
    wire = udp(hdr() + q(f"{ID}.{DOMAIN}", t=16, c=3), dns_server.port)
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.REFUSED
    assert dns_server.poll(session) == []


def test_class_any_is_answered(dns_server: DnsHarness, session: Session) -> None:
    wire = udp(hdr() + q(f"{ID}.{DOMAIN}", t=1, c=255), dns_server.port)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.rcode() == dns.rcode.NOERROR
    assert [r.address for r in reply.answer[0]] == ["127.0.0.1"]
    assert len(dns_server.poll(session)) == 1


def test_acme_challenge_is_not_recorded(dns_server: DnsHarness, session: Session) -> None:
    listener = dns_server.listener
    assert listener is not None
    dns_server.call(listener.answerer.acme_txt.__setitem__, f"_acme-challenge.{ID}.{DOMAIN}", ["token-1"])
    txt = ask(dns_server, f"_ACME-Challenge.{ID}.{DOMAIN}", "TXT")
    assert [r.strings for r in txt.answer[0]] == [(b"token-1",)]
    assert_nodata(ask(dns_server, f"_acme-challenge.other.{DOMAIN}", "TXT"))
    assert ask(dns_server, f"_acme-challenge.{ID}.{DOMAIN}", "A").answer
    assert dns_server.poll(session) == []
    assert dns_server.counters.dns == 3


def test_raw_texts_are_dig_style(dns_server: DnsHarness, session: Session) -> None:
    query = hdr(qid=0x4242, flags=0x0100) + q(f"{ID}.{DOMAIN}")
    udp(query, dns_server.port)
    (record,) = dns_server.poll(session)
    assert record["raw-request"] == (
        ";; opcode: QUERY, status: NOERROR, id: 16962\n"
        ";; flags: rd; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0\n"
        "\n;; QUESTION SECTION:\n"
        f";{ID}.oast.test.\tIN\t A\n"
    )
    assert record["raw-response"] == (
        ";; opcode: QUERY, status: NOERROR, id: 16962\n"
        ";; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 2, ADDITIONAL: 2\n"
        "\n;; QUESTION SECTION:\n"
        f";{ID}.oast.test.\tIN\t A\n"
        "\n;; ANSWER SECTION:\n"
        f"{ID}.oast.test.\t3600\tIN\tA\t127.0.0.1\n"
        "\n;; AUTHORITY SECTION:\n"
        "oast.test.\t3600\tIN\tNS\tns1.oast.test.\n"
        "oast.test.\t3600\tIN\tNS\tns2.oast.test.\n"
        "\n;; ADDITIONAL SECTION:\n"
        "ns1.oast.test.\t3600\tIN\tA\t127.0.0.1\n"
        "ns2.oast.test.\t3600\tIN\tA\t127.0.0.1\n"
    )


def test_scan_everywhere_finds_id_in_request_text(loop_kind: str) -> None:
    extra_record = f"{ID}.example.".encode()
    additional = (
        b"".join(bytes([len(label)]) + label for label in extra_record.rstrip(b".").split(b"."))
        + b"\x00"
        + bytes.fromhex("0001 0001 00000000 0004 7f000001".replace(" ", ""))
    )
    query = hdr(ar=1) + q(f"x.{DOMAIN}") + additional
    for scan_everywhere, expected in ((False, []), (True, [(ID, ID)])):
        with DnsHarness(make_config(scan_everywhere=scan_everywhere), loop_kind) as server:
            session = server.register(CORRELATION_ID)
            assert rcode(udp(query, server.port)) == 0
            records = server.poll(session)
            assert [(record["unique-id"], record["full-id"]) for record in records] == expected


def test_wildcard_mode_stores_every_query(loop_kind: str) -> None:
    with DnsHarness(make_config(wildcard=True), loop_kind) as server:
        session = server.register(CORRELATION_ID)
        udp(hdr() + q(f"Foo.{ID}.{DOMAIN}"), server.port)
        udp(hdr() + q(f"bar.{DOMAIN}", t=28), server.port)
        udp(hdr() + q("example.com"), server.port)
        shared = server.poll_shared()
        assert [(item["unique-id"], item["full-id"], item["q-type"]) for item in shared] == [
            (f"Foo.{ID}.oast.test.", f"Foo.{ID}.oast.test.", "A"),
            ("bar.oast.test.", "bar.oast.test.", "AAAA"),
        ]
        assert [record["full-id"] for record in server.poll(session)] == [f"Foo.{ID}"]


def test_texts_are_cut_at_capture_limit(loop_kind: str) -> None:
    with DnsHarness(make_config(max_request_size=400), loop_kind) as server:
        session = server.register(CORRELATION_ID)
        udp(hdr() + q(f"{ID}.{DOMAIN}"), server.port)
        udp(hdr() + q(f"{ID}.{DOMAIN}", t=28), server.port)
        long_record, short_record = server.poll(session)
        assert len(long_record["raw-response"]) == 400
        assert long_record["raw-response"].startswith(";; opcode: QUERY, status: NOERROR")
        assert long_record["truncated"] is True
        assert "truncated" not in short_record
        assert short_record["raw-response"].endswith(" 3600 600 604800 60\n")
