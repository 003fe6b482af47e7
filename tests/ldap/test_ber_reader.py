"""The bounded BER reader: framing, length forms, limits, and fuzzing with random input."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interactsh.listeners.ber import (
    MAX_HEADER_SIZE,
    BerError,
    MessageReader,
    MessageTooLargeError,
    NotLdapError,
    encode_integer,
    encode_length,
    read_header,
    read_single,
)
from interactsh.listeners.ldap_ops import decode_message, describe
from ldap_harness import message, present_search, simple_bind

CAP = 1024 * 1024
# An anonymous bind whose message length uses the non-minimal long form 0x81 0x0c.
LONG_FORM_BIND = bytes.fromhex("30810c020101600702010304008000")


@pytest.mark.parametrize(
    ("octets", "size", "length"),
    [
        (b"\x30\x05", 2, 5),
        (b"\x30\x81\x0c", 3, 12),
        (b"\x30\x82\x01\x00", 4, 256),
        (b"\x30\x84\x00\x00\x00\x07", 6, 7),
        (b"\x04\x88" + (3).to_bytes(8, "big"), 10, 3),
    ],
)
def test_header_length_forms(octets: bytes, size: int, length: int) -> None:
    header = read_header(octets)
    assert header is not None
    assert header.header_size == size
    assert header.length == length


@pytest.mark.parametrize("octets", [b"", b"\x30", b"\x30\x82\x01", b"\x30\x84\x00\x00"])
def test_header_incomplete_returns_none(octets: bytes) -> None:
    assert read_header(octets) is None


def test_header_indefinite_length_rejected() -> None:
    with pytest.raises(BerError, match="indefinite length"):
        read_header(b"\x30\x80")


def test_header_reserved_length_rejected() -> None:
    with pytest.raises(BerError, match="reserved"):
        read_header(b"\x30\xff")


def test_header_high_tag_number() -> None:
    header = read_header(b"\x5f\x81\x00\x01")
    assert header is not None
    assert header.number == 128
    assert header.tag_class == 1
    assert header.length == 1


def test_long_form_bind_accepted() -> None:
    reader = MessageReader(CAP)
    assert reader.feed(LONG_FORM_BIND) == [LONG_FORM_BIND]
    assert reader.error is None
    assert decode_message(LONG_FORM_BIND).message_id == 1


def test_reader_byte_by_byte() -> None:
    data = simple_bind(1, "cn=x") + present_search(2, "dc=y", ("cn",))
    reader = MessageReader(CAP)
    out: list[bytes] = []
    for index in range(len(data)):
        out += reader.feed(data[index : index + 1])
    assert out == [simple_bind(1, "cn=x"), present_search(2, "dc=y", ("cn",))]
    assert reader.buffered == 0


def test_reader_pipelined_in_one_segment() -> None:
    messages = [simple_bind(i, f"cn={i}") for i in range(1, 50)]
    reader = MessageReader(CAP)
    assert reader.feed(b"".join(messages)) == messages


def test_reader_rejects_large_length_before_content() -> None:
    reader = MessageReader(CAP)
    # Only the header arrives: the declared 2 GiB must be rejected at once.
    assert reader.feed(b"\x30\x84\x7f\xff\xff\xff") == []
    assert isinstance(reader.error, MessageTooLargeError)
    assert "2147483647" in str(reader.error)
    assert reader.buffered == 0


def test_reader_accepts_message_at_cap() -> None:
    content = b"\x04" + encode_length(100 - 4) + b"x" * 96
    data = b"\x30" + encode_length(len(content)) + content
    reader = MessageReader(len(content))
    assert reader.feed(data) == [data]
    over = MessageReader(len(content) - 1)
    assert over.feed(data) == []
    assert isinstance(over.error, MessageTooLargeError)


def test_reader_keeps_messages_before_error() -> None:
    bind = simple_bind(1, "cn=x")
    reader = MessageReader(CAP)
    assert reader.feed(bind + b"GET / HTTP/1.0\r\n") == [bind]
    assert isinstance(reader.error, NotLdapError)
    assert reader.feed(bind) == []


def test_reader_rejects_indefinite_message() -> None:
    reader = MessageReader(CAP)
    assert reader.feed(b"\x30\x80\x02\x01\x01\x00\x00") == []
    assert isinstance(reader.error, BerError)
    assert "indefinite" in str(reader.error)


def test_read_single_rejects_trailing_octets() -> None:
    with pytest.raises(BerError, match="follow the element"):
        read_single(simple_bind(1, "") + b"\x00")


def test_nested_length_past_parent_rejected() -> None:
    # The bind claims 0x40 octets inside a message of 7.
    with pytest.raises(BerError, match="declares"):
        decode_message(bytes.fromhex("300702010160400000"))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 2**31 - 1, -1, -128, -129])
def test_integer_round_trip(value: int) -> None:
    encoded = encode_integer(value)
    assert read_single(encoded).as_integer() == value
    # Minimal: dropping the first octet would change the value or leave nothing.
    assert len(encoded) == 2 + max(1, ((value if value >= 0 else ~value).bit_length()) // 8 + 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096), cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=20))
def test_fuzz_random_bytes_random_splits(data: bytes, cuts: list[int]) -> None:
    cap = 512
    reader = MessageReader(cap)
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(bounds):
        for raw in reader.feed(data[start:end]):
            assert len(raw) <= cap + MAX_HEADER_SIZE
            _decode_or_parse_error(raw)
        assert reader.buffered <= cap + MAX_HEADER_SIZE
    assert reader.error is None or isinstance(reader.error, BerError)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=600), message_id=st.integers(min_value=0, max_value=2**31 - 1))
def test_fuzz_random_operation_bodies(body: bytes, message_id: int) -> None:
    # Random content inside a valid envelope reaches the operation decoders.
    for tag in (0x60, 0x63, 0x66, 0x68, 0x6C, 0x6E, 0x77, 0x42, 0x4A, 0x50, 0x7F):
        _decode_or_parse_error(message(message_id, bytes([tag]) + encode_length(len(body)) + body))


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(st.tuples(st.integers(1, 2**31 - 1), st.text(max_size=300)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=30),
)
def test_fuzz_valid_stream_any_split(messages: list[tuple[int, str]], cuts: list[int]) -> None:
    encoded = [simple_bind(message_id, dn) for message_id, dn in messages]
    stream = b"".join(encoded)
    reader = MessageReader(CAP)
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    out: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        out += reader.feed(stream[start:end])
    assert out == encoded
    assert [decode_message(raw).message_id for raw in out] == [message_id for message_id, _ in messages]


def _decode_or_parse_error(raw: bytes) -> None:
    """Decode and describe ``raw``; only the reader's own parse errors may escape."""
    try:
        decoded = decode_message(raw)
        text, _ = describe(decoded.operation, 4096)
    except BerError:
        return
    assert len(text) <= 4096
