"""Bad and unusual DNS inputs against the real server process, checked through a real client.

Each test registers its own session with the project's client, sends the
input over a real socket, then polls and decrypts to prove that the query
was recorded exactly once, or not at all. The fixtures stop the server at
the end and fail the test if it died or logged a traceback.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from interactsh.client import InteractshClient

from dnsharness import (
    closed_by_server,
    frame,
    hdr,
    name,
    opt,
    option,
    q,
    question_bytes,
    rcode,
    read_frame,
    tcp,
    udp,
)
from serverproc import HOST, RunningServer

FORMERR = 1
NOTIMP = 4
REFUSED = 5
IDLE_WAIT = 15.0  # the server's default idle timeout is 10 s


def payload_id(client: InteractshClient) -> str:
    return client.payload("x").split(".")[0]


def poll_once(client: InteractshClient) -> list[dict[str, object]]:
    """Poll twice and return the first poll's interactions; the second must be empty."""
    interactions = client.poll().interactions
    assert client.poll().interactions == [], "a second poll returned items again"
    return interactions


def alternate_case(text: str) -> str:
    return "".join(char.upper() if index % 2 == 0 else char for index, char in enumerate(text))


def test_mixed_case_query_echoed_and_recorded(server: RunningServer) -> None:
    client = server.client()
    unique_id = payload_id(client)
    qname = f"{alternate_case(unique_id)}.OaSt.TeSt"
    query = hdr() + q(qname)
    reply = udp(query, server.dns_port)
    assert reply is not None
    assert question_bytes(reply) == question_bytes(query)
    parsed = dns.message.from_wire(reply)
    assert parsed.flags & dns.flags.AA
    assert parsed.answer[0].name.to_text(omit_final_dot=True) == qname
    (item,) = poll_once(client)
    assert item["unique-id"] == unique_id
    assert item["full-id"] == alternate_case(unique_id)
    assert item["q-type"] == "A"


def test_question_count_zero_and_two(server: RunningServer) -> None:
    client = server.client()
    unique_id = payload_id(client)
    assert rcode(udp(bytes.fromhex("123400000000000000000000"), server.dns_port)) == FORMERR
    cookie_only = hdr(qd=0, ar=1) + opt(opts=option(10, bytes(range(1, 9))))
    cookie_reply = udp(cookie_only, server.dns_port)
    assert rcode(cookie_reply) == 0
    assert cookie_reply is not None
    assert [o.otype for o in dns.message.from_wire(cookie_reply).options] == [10]
    two = hdr(qd=2) + q(f"{unique_id}.oast.test") + q("x.oast.test")
    assert rcode(udp(two, server.dns_port)) == FORMERR
    assert poll_once(client) == []


def test_label_and_name_length_limits(server: RunningServer) -> None:
    client = server.client()
    unique_id = payload_id(client)
    assert rcode(udp(hdr() + q("x" * 30 + unique_id + ".oast.test"), server.dns_port)) == 0
    long_label = bytes([0x40]) + ("y" * 31 + unique_id).encode() + name("oast.test") + struct.pack(">HH", 1, 1)
    assert rcode(udp(hdr() + long_label, server.dns_port)) == FORMERR
    at_limit = ".".join(["c" * 63] * 3 + ["c" * 17] + [unique_id, "oast", "test"])
    over_limit = ".".join(["c" * 63] * 3 + ["c" * 18] + [unique_id, "oast", "test"])
    assert rcode(udp(hdr() + q(at_limit), server.dns_port)) == 0
    assert rcode(udp(hdr() + q(over_limit), server.dns_port)) == FORMERR
    full_ids = [item["full-id"] for item in poll_once(client)]
    assert full_ids == ["x" * 30 + unique_id, at_limit.removesuffix(".oast.test")]


def test_edns_cases(server: RunningServer) -> None:
    client = server.client()
    qname = f"{payload_id(client)}.oast.test"
    big = udp(hdr(ar=1) + q(qname) + opt(size=65535, do=True), server.dns_port)
    assert big is not None
    parsed = dns.message.from_wire(big)
    assert parsed.payload == 1232
    assert parsed.ednsflags & dns.flags.DO
    tiny = udp(hdr(ar=1) + q(qname) + opt(size=100), server.dns_port)
    assert tiny is not None
    assert len(tiny) <= 512
    assert dns.message.from_wire(tiny).payload == 1232, "the reply OPT carries the server's own size"
    badvers = udp(hdr(ar=1) + q(qname) + opt(ver=1), server.dns_port)
    assert badvers is not None
    assert dns.message.from_wire(badvers).rcode() == dns.rcode.BADVERS
    assert rcode(udp(hdr(ar=2) + q(qname) + opt() + opt(), server.dns_port)) == FORMERR
    items = poll_once(client)
    assert len(items) == 2, "the 65535-byte and the 100-byte queries are recorded, the others are not"
    assert "flags: do; udp: 65535" in str(items[0]["raw-request"])
    assert "udp: 100" in str(items[1]["raw-request"])


def test_large_reply_truncated_over_udp(start_server: Callable[..., RunningServer], tmp_path: Path) -> None:
    client = InteractshClient("http://unused", key_bits=1024)
    unique_id = payload_id(client)
    records = tmp_path / "records.yaml"
    records.write_text(f'big.{unique_id}:\n  - type: TXT\n    value: "{"t" * 1500}"\n', encoding="utf-8")
    server = start_server("-custom-records", str(records))
    client.server_url = server.base_url
    client.register()
    query = hdr() + q(f"big.{unique_id}.oast.test", t=16)
    truncated = udp(query, server.dns_port)
    assert truncated is not None
    assert len(truncated) <= 512
    assert dns.message.from_wire(truncated).flags & dns.flags.TC
    assert question_bytes(truncated) == question_bytes(query)
    full = tcp(query, server.dns_port)
    assert full is not None
    assert b"".join(dns.message.from_wire(full).answer[0][0].strings) == b"t" * 1500
    assert [item["transport"] for item in poll_once(client)] == ["udp", "tcp"]


def test_tcp_split_and_pipelined(server: RunningServer) -> None:
    client = server.client()
    unique_id = payload_id(client)
    first = hdr() + q(f"{unique_id}.oast.test")
    second = hdr(qid=0x5678) + q(f"x.{unique_id}.oast.test")
    with socket.create_connection((HOST, server.dns_port), timeout=5) as sock:
        prefix = struct.pack(">H", len(first))
        sock.sendall(prefix[:1])
        time.sleep(0.3)
        sock.sendall(prefix[1:] + first[:10])
        time.sleep(0.3)
        sock.sendall(first[10:])
        sock.sendall(frame(first) + frame(second))
        replies = [read_frame(sock) for _ in range(3)]
    assert sorted(struct.unpack(">H", reply[:2])[0] for reply in replies if reply) == [0x1234, 0x1234, 0x5678]
    assert len(poll_once(client)) == 3


@pytest.mark.slow
def test_tcp_idle_socket_flood(server: RunningServer) -> None:
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.create_connection((HOST, server.dns_port), timeout=5)) for _ in range(2000)
        ]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.sendall(b"\x00")
        time.sleep(1.0)
        still_open = [sock for sock in sockets if not closed_by_server(sock, 0.001)]
        assert len(still_open) <= 64, "the per-address cap must close most of the connections at once"
        assert rcode(udp(hdr() + q("alive.oast.test"), server.dns_port)) == 0
        assert all(closed_by_server(sock, IDLE_WAIT) for sock in still_open)
    assert rcode(tcp(hdr() + q("alive.oast.test"), server.dns_port)) == 0


@pytest.mark.parametrize("qtype", [65, 257, 33, 12, 28])
def test_types_without_data(server: RunningServer, qtype: int) -> None:
    client = server.client()
    reply = udp(hdr() + q(f"{payload_id(client)}.oast.test", t=qtype), server.dns_port)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.NOERROR
    assert parsed.flags & dns.flags.AA
    assert parsed.answer == []
    assert parsed.authority[0].ttl == 60
    (item,) = poll_once(client)
    assert item["q-type"] == {65: "HTTPS", 257: "CAA", 33: "SRV", 12: "PTR", 28: "AAAA"}[qtype]


def test_names_outside_the_zone(server: RunningServer) -> None:
    client = server.client()
    unique_id = payload_id(client)
    for qname in ("example.com", f"{unique_id}.oast.test.attacker.example", f"{unique_id}.xoast.test"):
        reply = udp(hdr(flags=0x0100) + q(qname), server.dns_port)
        assert rcode(reply) == REFUSED
        assert reply is not None
        assert not dns.message.from_wire(reply).flags & dns.flags.AA
    assert poll_once(client) == []


def test_responses_and_other_opcodes(server: RunningServer) -> None:
    client = server.client()
    qname = f"{payload_id(client)}.oast.test"
    assert udp(hdr(flags=0x8000) + q(qname), server.dns_port, timeout=0.5) is None
    for flags in (0x2000, 0x2800, 0x1000):
        assert rcode(udp(hdr(flags=flags) + q(qname), server.dns_port)) == NOTIMP
    assert poll_once(client) == []
