"""A small bounded BER reader and writer for LDAP messages (X.690, RFC 4511 section 5.1).

The reader accepts what BER allows and LDAP clients send: short and long-form
lengths, non-minimal long forms such as ``30 81 0c``, and messages split
across any number of TCP segments. It rejects indefinite lengths, which LDAP
forbids, and it rejects a declared length over the configured maximum as soon
as the length octets have arrived, before any buffer for the content exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from interactsh.errors import InteractshError

CLASS_UNIVERSAL = 0
CLASS_APPLICATION = 1
CLASS_CONTEXT = 2
CLASS_PRIVATE = 3

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30
TAG_SET = 0x31

# A long-form length has at most 126 length octets (0xff is reserved), so a
# header is at most one tag octet, one length-form octet and 126 octets.
MAX_HEADER_SIZE = 128
# Tag numbers above 31 take extra octets. LDAP uses none, so a few octets are
# plenty, and the limit keeps a stream of 0x80 continuation octets short.
MAX_TAG_NUMBER_OCTETS = 4


class BerError(InteractshError, ValueError):
    """The bytes are not a valid BER encoding, or break a limit of this reader."""


class NotLdapError(BerError):
    """The stream does not start with a SEQUENCE, so it is not an LDAP message."""


class MessageTooLargeError(BerError):
    """A message declares a length over the configured maximum."""


@dataclass(frozen=True, slots=True)
class Element:
    """One decoded BER element whose content is a view into the message bytes."""

    tag_class: int
    constructed: bool
    number: int
    content: memoryview

    def is_tag(self, tag_class: int, number: int) -> bool:
        """Tell whether the element has this class and tag number, whatever its form."""
        return self.tag_class == tag_class and self.number == number

    def children(self) -> Iterator[Element]:
        """Yield the elements inside a constructed element, in order.

        Raises :class:`BerError` for a primitive element or for content that
        does not split exactly into elements.
        """
        if not self.constructed:
            raise BerError(f"expected a constructed element, got primitive tag {self.number}")
        offset = 0
        while offset < len(self.content):
            child, offset = read_element(self.content, offset)
            yield child

    def as_bytes(self) -> bytes:
        """Return the content octets of a primitive element."""
        if self.constructed:
            raise BerError(f"expected a primitive element, got constructed tag {self.number}")
        return bytes(self.content)

    def as_integer(self, max_octets: int = 8) -> int:
        """Return the content of an INTEGER or ENUMERATED as a signed integer."""
        if self.constructed or not 0 < len(self.content) <= max_octets:
            raise BerError(f"integer of {len(self.content)} octets is invalid: expected 1 to {max_octets} octets")
        return int.from_bytes(self.content, "big", signed=True)

    def as_boolean(self) -> bool:
        """Return the content of a BOOLEAN; BER counts any non-zero octet as true."""
        if self.constructed or len(self.content) != 1:
            raise BerError(f"boolean of {len(self.content)} octets is invalid: expected 1 octet")
        return self.content[0] != 0


@dataclass(frozen=True, slots=True)
class Header:
    """The identifier and length octets of an element."""

    tag_class: int
    constructed: bool
    number: int
    header_size: int
    length: int


def read_header(data: memoryview | bytes | bytearray, offset: int = 0) -> Header | None:
    """Decode the header at ``offset``; return ``None`` when more octets are needed.

    Raises :class:`BerError` for an indefinite or reserved length form and for
    a tag number longer than :data:`MAX_TAG_NUMBER_OCTETS` octets.
    """
    end = len(data)
    if offset >= end:
        return None
    first = data[offset]
    position = offset + 1
    number = first & 0x1F
    if number == 0x1F:
        number, position = _read_long_tag_number(data, position)
        if position < 0:
            return None
    if position >= end:
        return None
    form = data[position]
    position += 1
    if form < 0x80:
        length = form
    elif form == 0x80:
        raise BerError("indefinite length (0x80) is not allowed in LDAP: send a definite length")
    elif form == 0xFF:
        raise BerError("length form 0xff is reserved by X.690 and invalid")
    else:
        count = form & 0x7F
        if position + count > end:
            return None
        length = int.from_bytes(data[position : position + count], "big")
        position += count
    return Header(first >> 6, bool(first & 0x20), number, position - offset, length)


def _read_long_tag_number(data: memoryview | bytes | bytearray, position: int) -> tuple[int, int]:
    """Decode a high-tag-number form; return ``(number, next position)`` or ``(0, -1)`` when incomplete."""
    number = 0
    for count in range(MAX_TAG_NUMBER_OCTETS):
        if position + count >= len(data):
            return 0, -1
        octet = data[position + count]
        number = (number << 7) | (octet & 0x7F)
        if not octet & 0x80:
            return number, position + count + 1
    raise BerError(f"tag number longer than {MAX_TAG_NUMBER_OCTETS} octets is not supported")


def read_element(data: memoryview, offset: int = 0) -> tuple[Element, int]:
    """Decode the complete element at ``offset`` and return it with the offset after it."""
    header = read_header(data, offset)
    if header is None:
        raise BerError(f"element header at offset {offset} is truncated")
    start = offset + header.header_size
    end = start + header.length
    if end > len(data):
        raise BerError(
            f"element at offset {offset} declares {header.length} content octets but only {len(data) - start} remain"
        )
    element = Element(header.tag_class, header.constructed, header.number, data[start:end])
    return element, end


def read_single(data: bytes | memoryview) -> Element:
    """Decode ``data`` as exactly one element with nothing after it."""
    view = memoryview(data)
    element, end = read_element(view)
    if end != len(view):
        raise BerError(f"{len(view) - end} octets follow the element")
    return element


class MessageReader:
    """Splits a TCP byte stream into complete top-level SEQUENCE elements.

    Only the incomplete tail of the stream stays buffered, so after every
    :meth:`feed` the buffer contains at most ``max_message_size`` plus
    :data:`MAX_HEADER_SIZE` octets. The first invalid header stops the
    reader for good: a BER stream cannot be resynchronised.
    """

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self.messages_read = 0
        self.error: BerError | None = None
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Number of octets of an incomplete message held back."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received octets and return every message they complete, each as its full encoding.

        When a header is invalid, the messages before it are still returned
        and :attr:`error` is set, after which further octets are ignored. The
        error is a :class:`NotLdapError` when a message does not start with
        the SEQUENCE tag 0x30. It is a :class:`MessageTooLargeError` when a
        message declares a length over the maximum, else a :class:`BerError`.
        """
        if self.error is not None:
            return []
        self._buffer += chunk
        messages: list[bytes] = []
        offset = 0
        try:
            while (header := self._next_header(offset)) is not None:
                end = offset + header.header_size + header.length
                if end > len(self._buffer):
                    break
                messages.append(bytes(self._buffer[offset:end]))
                self.messages_read += 1
                offset = end
        except BerError as error:
            self.error = error
            self._buffer = bytearray()
            return messages
        del self._buffer[:offset]
        return messages

    def _next_header(self, offset: int) -> Header | None:
        if offset >= len(self._buffer):
            return None
        first = self._buffer[offset]
        if first != TAG_SEQUENCE:
            raise NotLdapError(f"message starts with octet 0x{first:02x}, not the SEQUENCE tag 0x30")
        header = read_header(self._buffer, offset)
        if header is None:
            return None
        if header.length > self.max_message_size:
            raise MessageTooLargeError(
                f"message declares {header.length} octets, over the limit of {self.max_message_size} "
                "(ldap_max_message_size)"
            )
        return header


def encode_length(length: int) -> bytes:
    """Encode a definite length in its minimal form."""
    if length < 0x80:
        return bytes((length,))
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def encode(tag: int, content: bytes) -> bytes:
    """Encode one element from its single identifier octet and its content."""
    return bytes((tag,)) + encode_length(len(content)) + content


def encode_integer(value: int, tag: int = TAG_INTEGER) -> bytes:
    """Encode an INTEGER or ENUMERATED in the minimal two's-complement form."""
    magnitude = value if value >= 0 else ~value
    size = magnitude.bit_length() // 8 + 1
    return encode(tag, value.to_bytes(size, "big", signed=True))


def encode_octet_string(value: bytes, tag: int = TAG_OCTET_STRING) -> bytes:
    """Encode an OCTET STRING, or an implicitly tagged one when ``tag`` is given."""
    return encode(tag, value)


def encode_constructed(tag: int, *parts: bytes) -> bytes:
    """Encode a SEQUENCE, SET or tagged constructed element from encoded parts."""
    return encode(tag, b"".join(parts))
