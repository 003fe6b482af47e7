"""Replies larger than the client's limit: truncation over UDP, full answers over TCP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from dnsharness import CORRELATION_ID, DOMAIN, ID, DnsHarness, hdr, make_config, opt, q, question_bytes, tcp, udp

BIG_TXT = "t" * 1500


@pytest.fixture
def big_server(loop_kind: str, tmp_path: Path) -> Iterator[DnsHarness]:
    """A listener with a 1,500-byte TXT record at big.<ID> and 40 A records at many.<ID>."""
    lines = [f"big.{ID}:", "  - type: TXT", f'    value: "{BIG_TXT}"', f"many.{ID}:"]
    for index in range(40):
        lines += ["  - type: A", f'    value: "10.0.0.{index}"']
    path = tmp_path / "records.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with DnsHarness(make_config(custom_records=str(path)), loop_kind) as server:
        yield server


@pytest.mark.parametrize(("qname", "qtype"), [(f"big.{ID}.{DOMAIN}", 16), (f"many.{ID}.{DOMAIN}", 1)], ids=["txt", "a"])
def test_udp_without_edns_is_truncated(big_server: DnsHarness, qname: str, qtype: int) -> None:
    session = big_server.register(CORRELATION_ID)
    query = hdr() + q(qname, t=qtype)
    wire = udp(query, big_server.port)
    assert wire is not None
    assert len(wire) <= 512
    reply = dns.message.from_wire(wire)
    assert reply.flags & dns.flags.TC
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    assert question_bytes(wire) == q(qname, t=qtype)
    full_wire = tcp(query, big_server.port)
    assert full_wire is not None
    full = dns.message.from_wire(full_wire)
    assert not full.flags & dns.flags.TC
    if qtype == 16:
        assert b"".join(full.answer[0][0].strings).decode() == BIG_TXT
    else:
        assert len(full.answer[0]) == 40
    records = big_server.poll(session)
    assert [record["transport"] for record in records] == ["udp", "tcp"]
    assert "flags: qr aa tc;" in records[0]["raw-response"]


def test_udp_with_edns_is_truncated_above_its_size(big_server: DnsHarness) -> None:
    query = hdr(ar=1) + q(f"big.{ID}.{DOMAIN}", t=16) + opt(size=1232)
    wire = udp(query, big_server.port)
    assert wire is not None
    assert len(wire) <= 1232
    reply = dns.message.from_wire(wire)
    assert reply.flags & dns.flags.TC
    assert reply.payload == 1232
    roomy = udp(hdr(ar=1) + q(f"big.{ID}.{DOMAIN}", t=16) + opt(size=4096), big_server.port)
    assert roomy is not None
    assert len(roomy) <= 1232, "1232 is the server's own cap"
    assert dns.message.from_wire(roomy).flags & dns.flags.TC
    assert dns.message.from_wire(roomy).payload == 1232


def test_small_edns_size_truncates_at_512(big_server: DnsHarness) -> None:
    query = hdr(ar=1) + q(f"big.{ID}.{DOMAIN}", t=16) + opt(size=100)
    wire = udp(query, big_server.port)
    assert wire is not None
    assert len(wire) <= 512, "a client size under 512 counts as 512"
    reply = dns.message.from_wire(wire)
    assert reply.flags & dns.flags.TC
    assert reply.payload == 1232, "the reply OPT carries the server's own size, not the client's"


def test_opt_size_follows_server_limit(loop_kind: str) -> None:
    with DnsHarness(make_config(dns_udp_payload_limit=600), loop_kind) as server:
        for client_size in (100, 512, 1232, 4096):
            wire = udp(hdr(ar=1) + q(f"x.{DOMAIN}") + opt(size=client_size), server.port)
            assert wire is not None
            assert dns.message.from_wire(wire).payload == 600, client_size
        tcp_wire = tcp(hdr(ar=1) + q(f"x.{DOMAIN}") + opt(size=100), server.port)
        assert tcp_wire is not None
        assert dns.message.from_wire(tcp_wire).payload == 600


def test_glue_is_dropped_before_truncating(loop_kind: str) -> None:
    addresses = [f"10.1.0.{index}" for index in range(20)]
    with DnsHarness(make_config(ips=addresses), loop_kind) as server:
        wire = udp(hdr() + q(f"x.{DOMAIN}"), server.port)
        assert wire is not None
        assert len(wire) <= 512
        reply = dns.message.from_wire(wire)
        assert not reply.flags & dns.flags.TC
        assert sorted(r.address for r in reply.answer[0]) == sorted(addresses)
        assert reply.authority == []
        assert reply.additional == []
        full = dns.message.from_wire(tcp(hdr() + q(f"x.{DOMAIN}"), server.port) or b"")
        assert len(full.additional) == 2
        assert len(full.authority) == 1
