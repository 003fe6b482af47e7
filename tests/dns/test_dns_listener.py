"""Binding, shutdown and failure handling of the DNS listener."""

from __future__ import annotations

import logging
import socket
import struct

import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interactsh.listeners.dns_answer import DnsAnswerer
from interactsh.listeners.dns_handler import DnsHandler
from interactsh.listeners.dns_records import load_custom_records
from interactsh.listeners.dns_wire import parse_message
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore

from dnsharness import (
    CORRELATION_ID,
    DOMAIN,
    HOST,
    ID,
    DnsHarness,
    frame,
    hdr,
    make_config,
    opt,
    option,
    q,
    rcode,
    read_frame,
    udp,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_port_zero_shares_one_port(dns_server: DnsHarness) -> None:
    listener = dns_server.listener
    assert listener is not None
    assert listener.udp_port == listener.tcp_port != 0
    assert rcode(udp(hdr() + q(f"x.{DOMAIN}"), listener.udp_port)) == 0
    with socket.create_connection((HOST, listener.tcp_port), timeout=3) as sock:
        sock.sendall(frame(hdr() + q(f"x.{DOMAIN}")))
        assert rcode(read_frame(sock)) == 0


def test_explicit_port(loop_kind: str) -> None:
    port = free_port()
    with DnsHarness(make_config(dns_port=port), loop_kind) as server:
        assert server.port == port
        assert rcode(udp(hdr() + q(f"x.{DOMAIN}"), port)) == 0


def test_taken_port_is_reported(loop_kind: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        harness = DnsHarness(make_config(dns_port=port), loop_kind)
        with pytest.raises(OSError, match=f"could not bind DNS UDP on {HOST} port {port}"):
            harness.__enter__()
        harness.__exit__(None, None, None)


def test_close_releases_port_and_connections(loop_kind: str) -> None:
    harness = DnsHarness(make_config(), loop_kind)
    with harness as server:
        port = server.port
        client = socket.create_connection((HOST, port), timeout=3)
        client.sendall(frame(hdr() + q(f"x.{DOMAIN}")))
        assert rcode(read_frame(client)) == 0
    try:
        assert read_frame(client) is None, "close() must end open TCP connections"
    except ConnectionResetError:
        pass
    finally:
        client.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_sock, socket.socket() as tcp_sock:
        udp_sock.bind((HOST, port))
        tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp_sock.bind((HOST, port))


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_dual_stack_listener_reports_ipv4_clients_as_ipv4(loop_kind: str) -> None:
    with DnsHarness(make_config(listen_ip="::"), loop_kind) as server:
        session = server.register(CORRELATION_ID)
        assert rcode(udp(hdr() + q(f"{ID}.{DOMAIN}"), server.port)) == 0
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(hdr(qid=2) + q(f"v6.{ID}.{DOMAIN}"), ("::1", server.port))
            assert rcode(sock.recv(512)) == 0
        with socket.create_connection(("::1", server.port), timeout=3) as sock:
            sock.sendall(frame(hdr(qid=3) + q(f"tcp.{ID}.{DOMAIN}")))
            assert rcode(read_frame(sock)) == 0
        addresses = [record["remote-address"] for record in server.poll(session)]
        assert addresses == ["127.0.0.1", "::1", "::1"]


def test_answer_failure_gets_servfail(
    dns_server: DnsHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_answer(*args: object, **kwargs: object) -> None:
        raise RuntimeError("answer builder bug")

    listener = dns_server.listener
    assert listener is not None
    caplog.set_level(logging.ERROR, logger="interactsh.dns")
    monkeypatch.setattr(listener.handler.answerer, "answer", broken_answer)
    for _ in range(3):
        reply = udp(hdr() + q(f"x.{DOMAIN}"), dns_server.port)
        assert rcode(reply) == 2
    failures = [record for record in caplog.records if record.name == "interactsh.dns"]
    assert len(failures) == 1, "repeated failures are logged once per interval"
    assert "could not answer DNS message from 127.0.0.1 over udp" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    monkeypatch.undo()
    assert rcode(udp(hdr() + q(f"x.{DOMAIN}"), dns_server.port)) == 0


def test_recording_failure_still_answers(
    dns_server: DnsHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.register(CORRELATION_ID)

    # The recorder counts a full store (StoreFullError) without logging, so this failure is another error.
    def broken_store(correlation_id: str, record: bytes) -> bool:
        raise RuntimeError("the store failed")

    monkeypatch.setattr(dns_server.store, "append", broken_store)
    caplog.set_level(logging.ERROR, logger="interactsh.dns")
    reply = udp(hdr() + q(f"{ID}.{DOMAIN}"), dns_server.port)
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR
    assert any("could not record DNS query id 4660" in record.getMessage() for record in caplog.records)


def make_handler() -> DnsHandler:
    config = make_config()
    store = PythonStore(config.store_options())
    return DnsHandler(Recorder(config, store, Counters()), DnsAnswerer(config, load_custom_records("")))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    handler = make_handler()
    for transport in ("udp", "tcp"):
        reply = handler.handle(data, "127.0.0.1", transport)
        if reply is None:
            continue
        assert reply[:2] == data[:2], "a reply carries the query id"
        assert reply[2] & 0x80, "a reply has QR set"
        parse_message(reply)


_BASE_QUERY = hdr(ar=1) + q(f"{ID}.{DOMAIN}") + opt(do=True, opts=option(10, bytes(range(8))))


@settings(max_examples=400, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(_BASE_QUERY) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    length=st.integers(0, len(_BASE_QUERY) + 8),
)
def test_mutated_queries_never_raise(edits: list[tuple[int, int]], length: int) -> None:
    data = bytearray(_BASE_QUERY + b"\x00" * 8)
    for position, value in edits:
        data[position] = value
    message = bytes(data[:length])
    handler = make_handler()
    for transport in ("udp", "tcp"):
        reply = handler.handle(message, "127.0.0.1", transport)
        if reply is None:
            continue
        assert reply[:2] == message[:2], "a reply carries the query id"
        assert reply[2] & 0x80, "a reply has QR set"
        parse_message(reply)


_LABEL = st.binary(min_size=1, max_size=63)
_QUERY_PARTS = st.tuples(
    st.lists(_LABEL, max_size=4),
    st.integers(0, 0xFFFF),
    st.sampled_from([1, 255, 3]),
    st.integers(0, 0xFFFF) | st.none(),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(parts=_QUERY_PARTS)
def test_structured_queries_get_valid_replies(parts: tuple[list[bytes], int, int, int | None, bool]) -> None:
    labels, qtype, qclass, payload, under_domain = parts
    if under_domain:
        labels = [*labels, b"oast", b"test"]
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(qname) > 255:
        return
    additional = b""
    if payload is not None:
        additional = b"\x00" + struct.pack(">HHIH", 41, payload, 0, 0)
    query = hdr(ar=1 if additional else 0) + qname + struct.pack(">HH", qtype, qclass) + additional
    reply = make_handler().handle(query, "127.0.0.1", "udp")
    assert reply is not None
    limit = max(512, min(payload, 1232)) if payload is not None else 512
    assert len(reply) <= limit
    parsed = dns.message.from_wire(reply)
    assert parsed.id == 0x1234
    assert parsed.rcode() in (dns.rcode.NOERROR, dns.rcode.REFUSED)
    assert (parsed.rcode() == dns.rcode.NOERROR) == (under_domain and qclass in (1, 255))
