"""Text rendering of DNS messages, as miekg/dns v1.1.68 ``Msg.String()`` prints them.

Upstream stores this text as an interaction's ``raw-request`` and
``raw-response``, and clients match on it (nuclei lowercases it and
applies regular expressions to the question section), so the layout is
kept line for line::

    ;; opcode: QUERY, status: NOERROR, id: 4660
    ;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0

    ;; QUESTION SECTION:
    ;example.oast.test.\tIN\t A

    ;; ANSWER SECTION:
    example.oast.test.\t3600\tIN\tA\t127.0.0.1

Record data is rendered in presentation form for the types this server
answers with (A, AAAA, NS, CNAME, PTR, DNAME, MX, SOA, TXT, SRV); other
types use the generic ``\\# <length> <hex>`` form of RFC 3597.
"""

from __future__ import annotations

import ipaddress
import re
import struct

from interactsh.listeners.dns_wire import (
    EDNS_CO,
    FLAG_AA,
    FLAG_AD,
    FLAG_CD,
    FLAG_QR,
    FLAG_RA,
    FLAG_RD,
    FLAG_TC,
    FLAG_Z,
    OPTION_COOKIE,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_DNAME,
    TYPE_MX,
    TYPE_NS,
    TYPE_PTR,
    TYPE_SOA,
    TYPE_SRV,
    TYPE_TXT,
    Edns,
    Labels,
    Message,
    Record,
    WireError,
    read_name,
)

# miekg/dns TypeToString; a type missing here renders as TYPE<number>.
TYPE_NAMES: dict[int, str] = {
    0: "None", 1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
    10: "NULL", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB",
    19: "X25", 20: "ISDN", 21: "RT", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS",
    28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR",
    36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
    53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 100: "UINFO",
    101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP",
    108: "EUI48", 109: "EUI64", 128: "NXNAME", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
    253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA", 258: "AVC", 260: "AMTRELAY",
    261: "RESINFO", 32768: "TA", 32769: "DLV", 65535: "Reserved",
}  # fmt: skip

# miekg/dns prints a class mnemonic only when it is not also a type name, so
# class 255 (ANY) renders as CLASS255.
CLASS_NAMES: dict[int, str] = {1: "IN", 2: "CS", 3: "CH", 4: "HS", 254: "NONE"}
OPCODE_NAMES: dict[int, str] = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}
RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI", 16: "BADVERS", 17: "BADKEY",
    18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
}  # fmt: skip

_FLAG_NAMES = (
    (FLAG_QR, "qr"),
    (FLAG_AA, "aa"),
    (FLAG_TC, "tc"),
    (FLAG_RD, "rd"),
    (FLAG_RA, "ra"),
    (FLAG_Z, "z"),
    (FLAG_AD, "ad"),
    (FLAG_CD, "cd"),
)
_NAME_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_DNAME})
_OPTION_NSID = 3
_OPTION_SUBNET = 8
_OPTION_EXPIRE = 9
_OPTION_KEEPALIVE = 11
_OPTION_PADDING = 12
_OPTION_EDE = 15

# Bytes that print as themselves in a label: printable ASCII minus the
# characters that miekg/dns escapes with a backslash.
_PLAIN_LABEL = re.compile(rb"[!#$%&*+,\-/0-9:<=>?A-Z\[\]^_`a-z{|}~]*")
_LABEL_SPECIAL = frozenset(b". '@;()\"\\")
_TXT_SPECIAL = frozenset(b'"\\')


def type_name(rtype: int) -> str:
    """Return the mnemonic of a record type (``A``, ``HTTPS``...) or ``TYPE<n>``."""
    return TYPE_NAMES.get(rtype) or f"TYPE{rtype}"


def class_name(rclass: int) -> str:
    return CLASS_NAMES.get(rclass) or f"CLASS{rclass}"


def _escape_byte(value: int) -> str:
    return f"\\{value:03d}"


def label_text(label: bytes) -> str:
    """Return one label in presentation form, with ``\\.`` and ``\\DDD`` escapes."""
    if _PLAIN_LABEL.fullmatch(label):
        return label.decode("ascii")
    parts: list[str] = []
    for value in label:
        if value in _LABEL_SPECIAL:
            parts.append("\\" + chr(value))
        elif value < 0x20 or value > 0x7E:
            parts.append(_escape_byte(value))
        else:
            parts.append(chr(value))
    return "".join(parts)


def name_text(labels: Labels) -> str:
    """Return a name in presentation form with its trailing dot (``.`` for the root)."""
    if not labels:
        return "."
    return ".".join(label_text(label) for label in labels) + "."


def _txt_text(strings: list[bytes]) -> str:
    rendered: list[str] = []
    for text in strings:
        parts: list[str] = []
        for value in text:
            if value in _TXT_SPECIAL:
                parts.append("\\" + chr(value))
            elif value < 0x20 or value > 0x7E:
                parts.append(_escape_byte(value))
            else:
                parts.append(chr(value))
        rendered.append('"' + "".join(parts) + '"')
    return " ".join(rendered)


def _split_txt(rdata: bytes) -> list[bytes] | None:
    strings: list[bytes] = []
    position = 0
    while position < len(rdata):
        length = rdata[position]
        if position + 1 + length > len(rdata):
            return None
        strings.append(rdata[position + 1 : position + 1 + length])
        position += 1 + length
    return strings


def _read_rdata_name(message: Message, offset: int, end: int) -> tuple[str, int]:
    labels, after = read_name(message.data, offset)
    if after > end:
        raise WireError("name runs past its record data", None)
    return name_text(labels), after


def _rdata_text(message: Message, record: Record) -> str | None:
    """Return the presentation form of a record's data, or ``None`` for the generic form."""
    rdata = message.rdata(record)
    start, end = record.rdata_offset, record.rdata_offset + record.rdata_length
    rtype = record.rtype
    try:
        if rtype == TYPE_A and len(rdata) == 4:
            return str(ipaddress.IPv4Address(rdata))
        if rtype == TYPE_AAAA and len(rdata) == 16:
            address = ipaddress.IPv6Address(rdata)
            mapped = address.ipv4_mapped
            return f"::ffff:{mapped}" if mapped else address.compressed
        if rtype in _NAME_TYPES:
            target, after = _read_rdata_name(message, start, end)
            return target if after == end else None
        if rtype == TYPE_MX and len(rdata) >= 3:
            target, after = _read_rdata_name(message, start + 2, end)
            return f"{struct.unpack_from('>H', rdata)[0]} {target}" if after == end else None
        if rtype == TYPE_SRV and len(rdata) >= 7:
            priority, weight, port = struct.unpack_from(">HHH", rdata)
            target, after = _read_rdata_name(message, start + 6, end)
            return f"{priority} {weight} {port} {target}" if after == end else None
        if rtype == TYPE_SOA:
            return _soa_text(message, start, end)
        if rtype == TYPE_TXT:
            strings = _split_txt(rdata)
            return _txt_text(strings) if strings is not None else None
    except WireError:
        return None
    return None


def _soa_text(message: Message, start: int, end: int) -> str | None:
    mname, offset = _read_rdata_name(message, start, end)
    rname, offset = _read_rdata_name(message, offset, end)
    if end - offset != 20:
        return None
    numbers = struct.unpack_from(">IIIII", message.data, offset)
    return f"{mname} {rname} " + " ".join(str(number) for number in numbers)


def record_text(message: Message, record: Record) -> str:
    """Return one resource record line without its line break."""
    rdata = _rdata_text(message, record)
    if rdata is None:
        raw = message.rdata(record)
        rdata = f"\\# {len(raw)} {raw.hex()}"
        if record.rtype not in TYPE_NAMES or record.rclass not in CLASS_NAMES:
            header = f"{name_text(record.labels)}\t{record.ttl}\tCLASS{record.rclass}\tTYPE{record.rtype}\t"
            return header + rdata
    owner = name_text(record.labels)
    return f"{owner}\t{record.ttl}\t{class_name(record.rclass)}\t{type_name(record.rtype)}\t{rdata}"


def _option_text(code: int, data: bytes) -> str:
    # NOTE: miekg/dns has its own forms for the DAU, DHU, N3U, UL, LLQ and ESU
    # options, and names extended error codes; those render here as LOCAL OPT
    # and as bare numbers.
    if code == OPTION_COOKIE:
        return "; COOKIE: " + data.hex()
    if code == _OPTION_NSID:
        shown = "".join(f"({chr(value)})" for value in data)
        return f"; NSID: {data.hex()}  {shown}"
    if code == _OPTION_SUBNET and len(data) >= 4:
        return "; SUBNET: " + _subnet_text(data)
    if code == _OPTION_EXPIRE and len(data) in (0, 4):
        return "; EXPIRE: " + (str(struct.unpack(">I", data)[0]) if data else "")
    if code == _OPTION_KEEPALIVE and len(data) in (0, 2):
        timeout = struct.unpack(">H", data)[0] if data else 0
        detail = f"timeout {timeout * 100}ms" if timeout else "timeout omitted"
        return "; KEEPALIVE: use tcp keep-alive, " + detail
    if code == _OPTION_PADDING:
        return "; PADDING: " + data.hex().upper()
    if code == _OPTION_EDE and len(data) >= 2:
        info = struct.unpack_from(">H", data)[0]
        return f"; EDE: {info}: ({data[2:].decode('utf-8', 'replace')})"
    return f"; LOCAL OPT: {code}:0x{data.hex()}"


def _subnet_text(data: bytes) -> str:
    family, source, scope = struct.unpack_from(">HBB", data)
    address = data[4:]
    if family == 1 and len(address) <= 4:
        text = str(ipaddress.IPv4Address(address.ljust(4, b"\0")))
    elif family == 2 and len(address) <= 16:
        text = "[" + str(ipaddress.IPv6Address(address.ljust(16, b"\0"))) + "]"
    else:
        text = "<nil>"
    return f"{text}/{source}/{scope}"


def edns_text(edns: Edns) -> str:
    """Return the OPT pseudo-section, starting with its blank line."""
    text = f"\n;; OPT PSEUDOSECTION:\n; EDNS: version {edns.version}; "
    if edns.dnssec_ok:
        text += "flags: do, co; " if edns.flags & EDNS_CO else "flags: do; "
    else:
        text += "flags:; "
    if edns.flags & 0x7FFF:
        text += f"MBZ: 0x{edns.flags & 0x7FFF:04x}, "
    text += f"udp: {edns.udp_size}"
    for code, data in edns.options:
        text += "\n" + _option_text(code, data)
    return text


def message_text(message: Message) -> str:
    """Render a whole message as miekg/dns does, every line ending in a newline."""
    header = message.header
    rcode = message.rcode
    flags = "".join(" " + name for bit, name in _FLAG_NAMES if header.flags & bit)
    additional_count = len(message.additional) + (1 if message.edns else 0)
    lines = [
        f";; opcode: {OPCODE_NAMES.get(header.opcode, '')}, status: {RCODE_NAMES.get(rcode, '')}, id: {header.id}\n",
        f";; flags:{flags}; QUERY: {len(message.questions)}, ANSWER: {len(message.answers)}, "
        f"AUTHORITY: {len(message.authority)}, ADDITIONAL: {additional_count}\n",
    ]
    if message.edns:
        lines.append(edns_text(message.edns) + "\n")
    if message.questions:
        lines.append("\n;; QUESTION SECTION:\n")
        for question in message.questions:
            lines.append(
                f";{name_text(question.labels)}\t{class_name(question.qclass)}\t {type_name(question.qtype)}\n"
            )
    sections = (("ANSWER", message.answers), ("AUTHORITY", message.authority), ("ADDITIONAL", message.additional))
    for title, records in sections:
        if records:
            lines.append(f"\n;; {title} SECTION:\n")
            lines.extend(record_text(message, record) + "\n" for record in records)
    return "".join(lines)
