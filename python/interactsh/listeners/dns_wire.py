"""Strict parsing of DNS messages in wire format (RFC 1035 section 4, RFC 6891).

The listener parses every query here before it builds an answer, so that a
malformed message gets a defined reply (FORMERR, NOTIMP, or none) instead of
an exception from a general-purpose codec. The same parser reads back the
server's own replies for their text rendering.

Name rules: a label is at most 63 octets, a name at most 255 octets in wire
form, and label types 0b01 and 0b10 (the extended and reserved types) are
rejected. A compression pointer must point into the message body and strictly
before the start of the name piece that contains it, so pointer chains always
move backwards and cannot loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER_SIZE = 12
MAX_NAME_OCTETS = 255
MAX_LABEL_OCTETS = 63

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
FLAG_Z = 0x0040
FLAG_AD = 0x0020
FLAG_CD = 0x0010
OPCODE_SHIFT = 11
OPCODE_MASK = 0xF
OPCODE_QUERY = 0

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_DNAME = 39
TYPE_OPT = 41
TYPE_ANY = 255

CLASS_IN = 1
CLASS_ANY = 255

EDNS_DO = 0x8000
EDNS_CO = 0x4000
OPTION_COOKIE = 10
CLIENT_COOKIE_SIZE = 8
MIN_SERVER_COOKIE_SIZE = 8
MAX_SERVER_COOKIE_SIZE = 32

# miekg/dns, the library upstream uses, rejects queries with more records
# than these in the answer, authority and additional sections.
MAX_QUERY_ANSWERS = 1
MAX_QUERY_AUTHORITY = 1
MAX_QUERY_ADDITIONAL = 2

_HEADER = struct.Struct(">HHHHHH")
_RECORD_FIXED = struct.Struct(">HHIH")
_QUESTION_FIXED = struct.Struct(">HH")
_OPTION_HEADER = struct.Struct(">HH")

Labels = tuple[bytes, ...]


class WireError(ValueError):
    """A message that cannot be answered normally.

    ``rcode`` is the response code of the error reply, or ``None`` when the
    message gets no reply at all (a response, or a message too short to
    carry an id).
    """

    def __init__(self, reason: str, rcode: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rcode = rcode


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 12-byte message header."""

    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int

    @property
    def opcode(self) -> int:
        return (self.flags >> OPCODE_SHIFT) & OPCODE_MASK

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


@dataclass(frozen=True, slots=True)
class Question:
    """One entry of the question section; ``labels`` keep the octets as sent."""

    labels: Labels
    qtype: int
    qclass: int


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; its rdata stays in the message at ``rdata_offset``."""

    labels: Labels
    rtype: int
    rclass: int
    ttl: int
    rdata_offset: int
    rdata_length: int


@dataclass(frozen=True, slots=True)
class Edns:
    """The OPT pseudo-record of RFC 6891, decoded."""

    udp_size: int
    extended_rcode: int
    version: int
    flags: int
    options: tuple[tuple[int, bytes], ...]

    @property
    def dnssec_ok(self) -> bool:
        return bool(self.flags & EDNS_DO)

    def option(self, code: int) -> bytes | None:
        """Return the data of the first option with this code, or ``None``."""
        for option_code, data in self.options:
            if option_code == code:
                return data
        return None


@dataclass(slots=True)
class Message:
    """A parsed message; ``additional`` excludes the OPT record, which is ``edns``."""

    data: bytes
    header: Header
    questions: list[Question] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    edns: Edns | None = None

    @property
    def rcode(self) -> int:
        """Return the full response code, extended bits from the OPT record included."""
        extended = self.edns.extended_rcode << 4 if self.edns else 0
        return extended | self.header.rcode

    def rdata(self, record: Record) -> bytes:
        return self.data[record.rdata_offset : record.rdata_offset + record.rdata_length]


def read_header(data: bytes) -> Header:
    """Decode the header; raise :class:`WireError` (no reply) when it is incomplete."""
    if len(data) < HEADER_SIZE:
        raise WireError(f"message of {len(data)} bytes is shorter than the 12-byte header", None)
    return Header(*_HEADER.unpack_from(data))


def read_name(data: bytes, offset: int) -> tuple[Labels, int]:
    """Decode the name at ``offset`` and return its labels and the offset after it.

    Raises :class:`WireError` with FORMERR for a name that breaks the rules in
    the module documentation or runs past the end of ``data``.
    """
    labels: list[bytes] = []
    octets = 1  # the root label
    end: int | None = None
    lowest = offset  # a pointer must point below the start of the current piece
    position = offset
    while True:
        if position >= len(data):
            raise WireError(f"name at offset {offset} runs past the end of the message", RCODE_FORMERR)
        length = data[position]
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= len(data):
                raise WireError(f"compression pointer at offset {position} is cut off", RCODE_FORMERR)
            target = ((length & 0x3F) << 8) | data[position + 1]
            if target < HEADER_SIZE or target >= lowest:
                raise WireError(
                    f"compression pointer at offset {position} to offset {target} does not point backwards "
                    "into the message body",
                    RCODE_FORMERR,
                )
            if end is None:
                end = position + 2
            lowest = position = target
            continue
        if kind:
            raise WireError(f"label type 0x{length:02x} at offset {position} is not supported", RCODE_FORMERR)
        if length == 0:
            return tuple(labels), position + 1 if end is None else end
        octets += length + 1
        if octets > MAX_NAME_OCTETS:
            raise WireError(f"name at offset {offset} is longer than {MAX_NAME_OCTETS} octets", RCODE_FORMERR)
        if position + 1 + length > len(data):
            raise WireError(f"label at offset {position} runs past the end of the message", RCODE_FORMERR)
        labels.append(data[position + 1 : position + 1 + length])
        position += 1 + length


def _read_question(data: bytes, offset: int) -> tuple[Question, int]:
    labels, offset = read_name(data, offset)
    if offset + _QUESTION_FIXED.size > len(data):
        raise WireError("question is cut off before its type and class", RCODE_FORMERR)
    qtype, qclass = _QUESTION_FIXED.unpack_from(data, offset)
    return Question(labels, qtype, qclass), offset + _QUESTION_FIXED.size


def _read_record(data: bytes, offset: int) -> tuple[Record, int]:
    labels, offset = read_name(data, offset)
    if offset + _RECORD_FIXED.size > len(data):
        raise WireError(f"resource record at offset {offset} is cut off in its fixed fields", RCODE_FORMERR)
    rtype, rclass, ttl, rdata_length = _RECORD_FIXED.unpack_from(data, offset)
    offset += _RECORD_FIXED.size
    if offset + rdata_length > len(data):
        raise WireError(f"rdata of {rdata_length} bytes at offset {offset} runs past the end", RCODE_FORMERR)
    return Record(labels, rtype, rclass, ttl, offset, rdata_length), offset + rdata_length


def _read_edns(record: Record, data: bytes) -> Edns:
    if record.labels:
        raise WireError("OPT record has an owner name other than the root", RCODE_FORMERR)
    options: list[tuple[int, bytes]] = []
    position = record.rdata_offset
    end = record.rdata_offset + record.rdata_length
    while position < end:
        if position + _OPTION_HEADER.size > end:
            raise WireError("EDNS option header is cut off", RCODE_FORMERR)
        code, length = _OPTION_HEADER.unpack_from(data, position)
        position += _OPTION_HEADER.size
        if position + length > end:
            raise WireError(f"EDNS option {code} of {length} bytes runs past the OPT record", RCODE_FORMERR)
        options.append((code, data[position : position + length]))
        position += length
    edns = Edns(
        udp_size=record.rclass,
        extended_rcode=record.ttl >> 24,
        version=(record.ttl >> 16) & 0xFF,
        flags=record.ttl & 0xFFFF,
        options=tuple(options),
    )
    cookie = edns.option(OPTION_COOKIE)
    if cookie is not None and not _is_valid_cookie(cookie):
        raise WireError(f"COOKIE option of {len(cookie)} bytes is neither 8 nor 16 to 40 bytes", RCODE_FORMERR)
    return edns


def _is_valid_cookie(cookie: bytes) -> bool:
    server_part = len(cookie) - CLIENT_COOKIE_SIZE
    return server_part == 0 or MIN_SERVER_COOKIE_SIZE <= server_part <= MAX_SERVER_COOKIE_SIZE


def parse_message(data: bytes) -> Message:
    """Parse a whole message; raise :class:`WireError` when it is malformed.

    An OPT record outside the additional section, a second OPT record, or an
    OPT record with a bad option layout is a format error. Bytes after the
    last record are ignored.
    """
    header = read_header(data)
    message = Message(data, header)
    offset = HEADER_SIZE
    for _ in range(header.qdcount):
        question, offset = _read_question(data, offset)
        message.questions.append(question)
    sections = (
        (message.answers, header.ancount, "answer"),
        (message.authority, header.nscount, "authority"),
        (message.additional, header.arcount, "additional"),
    )
    for records, count, section in sections:
        for _ in range(count):
            record, offset = _read_record(data, offset)
            if record.rtype != TYPE_OPT:
                records.append(record)
            elif section != "additional":
                raise WireError(f"OPT record in the {section} section", RCODE_FORMERR)
            elif message.edns is not None:
                raise WireError("message has more than one OPT record", RCODE_FORMERR)
            else:
                message.edns = _read_edns(record, data)
    return message


def parse_query(data: bytes) -> Message:
    """Parse a query and apply the acceptance rules of an authoritative server.

    Raises :class:`WireError`: no reply for a response (QR set); NOTIMP for
    an opcode other than QUERY; FORMERR for a malformed message, a question
    count other than one (except a cookie-only query, see
    :func:`is_cookie_only`), or more answer, authority or additional records
    than a query carries. The EDNS version is checked by the caller, because
    a BADVERS reply needs the parsed query.
    """
    header = read_header(data)
    if header.flags & FLAG_QR:
        raise WireError("message is a response (QR set)", None)
    if header.opcode != OPCODE_QUERY:
        raise WireError(f"opcode {header.opcode} is not QUERY", RCODE_NOTIMP)
    message = parse_message(data)
    if header.qdcount != 1 and not is_cookie_only(message):
        raise WireError(f"question count is {header.qdcount}, not 1", RCODE_FORMERR)
    if header.ancount > MAX_QUERY_ANSWERS or header.nscount > MAX_QUERY_AUTHORITY:
        raise WireError(f"query carries {header.ancount} answer and {header.nscount} authority records", RCODE_FORMERR)
    if header.arcount > MAX_QUERY_ADDITIONAL:
        raise WireError(f"query carries {header.arcount} additional records", RCODE_FORMERR)
    return message


def is_cookie_only(message: Message) -> bool:
    """Tell whether a message is a query with no question and only a DNS cookie (RFC 7873 section 5.4)."""
    header = message.header
    if header.qdcount or header.ancount or header.nscount or message.additional:
        return False
    return message.edns is not None and message.edns.option(OPTION_COOKIE) is not None


def error_reply(data: bytes, rcode: int) -> bytes:
    """Build a header-only reply with ``rcode`` for a query that could not be parsed.

    The id, opcode, RD and CD bits are copied from the query's header, which
    must be complete.
    """
    header = read_header(data)
    flags = FLAG_QR | (header.flags & ((OPCODE_MASK << OPCODE_SHIFT) | FLAG_RD | FLAG_CD)) | (rcode & 0xF)
    return _HEADER.pack(header.id, flags, 0, 0, 0, 0)
