"""Answers of the authoritative server for the configured domains, packed with dnslib.

Rules (upstream's, with this server's corrections):

* A name outside every configured domain, or a class other than IN and ANY,
  gets REFUSED without AA. Every other query gets NOERROR with AA.
* A gets one A record per configured IPv4 address, AAAA one AAAA record per
  IPv6 address, ANY both; these carry the zone's NS records in AUTHORITY and
  glue for them in ADDITIONAL. MX gets ``mail.<domain>``, NS gets
  ``ns1``/``ns2.<domain>`` with glue, SOA the zone's SOA owned by the query
  name, TXT one empty string. Custom records of the query type replace these.
* Any other type, and A or AAAA without an address of that family, gets
  NODATA: an empty answer and the zone's SOA in AUTHORITY (RFC 2308).
* The question and every owner name derived from the query name keep the
  query's octets, so mixed-case (0x20) queries are echoed exactly.
* A query with an OPT record gets one back that advertises this server's own
  UDP payload size, ``dns_udp_payload_limit``, as RFC 6891 (section 6.2.5)
  asks of a responder, and echoes the DO bit. A client COOKIE gets a fresh
  server cookie; other options are not echoed.
* A reply larger than the client's limit first loses its optional NS and glue
  records; if it still does not fit, it keeps only the question and OPT and
  sets TC. Over UDP the limit is ``min(max(client size, 512),
  dns_udp_payload_limit)``, or 512 octets without EDNS; over TCP it is the
  65,535-octet message limit.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# dnslib ships no type information.
from dnslib import (  # type: ignore[import-untyped]
    AAAA,
    MX,
    NS,
    RR,
    SOA,
    TXT,
    A,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
    EDNSOption,
)

from interactsh.config import ServerConfig
from interactsh.listeners.dns_records import MAX_NAME_TEXT_LENGTH, CustomRecords
from interactsh.listeners.dns_text import label_text
from interactsh.listeners.dns_wire import (
    CLASS_ANY,
    CLASS_IN,
    CLIENT_COOKIE_SIZE,
    EDNS_DO,
    FLAG_AA,
    FLAG_CD,
    FLAG_QR,
    FLAG_RD,
    FLAG_TC,
    OPTION_COOKIE,
    RCODE_BADVERS,
    RCODE_NOERROR,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_MX,
    TYPE_NS,
    TYPE_OPT,
    TYPE_SOA,
    TYPE_TXT,
    Edns,
    Labels,
    Message,
    Question,
)

DEFAULT_TTL = 3600
TXT_TTL = 0
ACME_TXT_TTL = 60
# The SOA's own TTL and its MINIMUM field are both 60 s, which makes 60 s the
# negative-caching TTL of NODATA answers (RFC 2308 section 5).
SOA_TTL = 60
SOA_REFRESH = 3600
SOA_RETRY = 600
SOA_EXPIRE = 604_800
SOA_MINIMUM = 60
MX_PREFERENCE = 1
MIN_UDP_PAYLOAD = 512
MAX_MESSAGE_SIZE = 65_535
ACME_LABEL = b"_acme-challenge"
COOKIE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Zone:
    """One configured domain and the records of its apex."""

    name: str
    labels: Labels
    nameservers: tuple[DNSLabel, ...]
    mail: DNSLabel
    soa: SOA
    glue: tuple[RR, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    """A packed reply and what the listener needs to record it.

    ``recordable`` is true for a NOERROR answer to a name inside a configured
    domain that is not an ACME challenge name; ``prefix`` is the number of the
    query name's labels before the domain.
    """

    wire: bytes
    rcode: int
    zone: Zone | None = None
    prefix: int = 0
    recordable: bool = False


class ServerCookies:
    """Server cookies (RFC 7873) in the layout of RFC 9018.

    The layout is version 1, three reserved octets, a 32-bit timestamp and
    eight octets of keyed hash over the client cookie, those fields and the
    client address. HMAC-SHA-256 replaces RFC 9018's SipHash-2-4, so only this
    server could check the cookies. It never needs to, because a query with a
    missing or stale server cookie gets a normal reply with a fresh one.
    """

    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret or os.urandom(32)
        self._clock = clock

    def option_data(self, client_cookie: bytes, client_ip: str) -> bytes:
        """Return the COOKIE option data of a reply: the client cookie and a new server cookie."""
        head = struct.pack(">B3xI", COOKIE_VERSION, int(self._clock()) & 0xFFFFFFFF)
        try:
            address = ipaddress.ip_address(client_ip.split("%", 1)[0]).packed
        except ValueError:
            address = client_ip.encode("utf-8", "replace")
        digest = hmac.new(self._secret, client_cookie + head + address, hashlib.sha256).digest()
        return client_cookie + head + digest[:8]


@dataclass
class _Reply:
    """A reply under construction, before packing and truncation."""

    message: DNSRecord
    optional_authority: bool = False
    opt: RR | None = None
    extra: list[RR] = field(default_factory=list)


class DnsAnswerer:
    """Builds the reply to every well-formed query."""

    def __init__(
        self,
        config: ServerConfig,
        custom_records: CustomRecords,
        *,
        serial: int | None = None,
        cookies: ServerCookies | None = None,
    ) -> None:
        addresses = _unique_addresses(config.ips)
        self.ipv4 = [A(str(address)) for address in addresses if address.version == 4]
        self.ipv6 = [AAAA(str(address)) for address in addresses if address.version == 6]
        self.custom_records = custom_records
        self.serial = (int(time.time()) if serial is None else serial) & 0xFFFFFFFF
        self.zones = [self._make_zone(domain) for domain in config.domains]
        self.udp_payload_limit = max(MIN_UDP_PAYLOAD, min(config.dns_udp_payload_limit, MAX_MESSAGE_SIZE))
        self.cookies = cookies or ServerCookies()
        # TXT values that an ACME DNS-01 solver publishes, by lower-case name
        # without the trailing dot (``_acme-challenge.<domain>``).
        self.acme_txt: dict[str, list[str]] = {}

    def _make_zone(self, domain: str) -> Zone:
        name = domain.lower().rstrip(".")
        if len(name) + len("hostmaster.") > MAX_NAME_TEXT_LENGTH:
            raise ValueError(
                f"-domain {domain!r} is too long: hostmaster.{name} must fit in {MAX_NAME_TEXT_LENGTH} characters"
            )
        labels = tuple(label.encode("ascii") for label in name.split("."))
        nameservers = (DNSLabel((b"ns1", *labels)), DNSLabel((b"ns2", *labels)))
        soa = SOA(
            nameservers[0],
            DNSLabel((b"hostmaster", *labels)),
            (self.serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, SOA_MINIMUM),
        )
        glue: list[RR] = []
        for nameserver in nameservers:
            glue.extend(RR(nameserver, TYPE_A, CLASS_IN, DEFAULT_TTL, address) for address in self.ipv4)
            glue.extend(RR(nameserver, TYPE_AAAA, CLASS_IN, DEFAULT_TTL, address) for address in self.ipv6)
        return Zone(name, labels, nameservers, DNSLabel((b"mail", *labels)), soa, tuple(glue))

    def zone_of(self, labels: Labels) -> Zone | None:
        """Return the first configured zone that contains the name, compared without case."""
        for zone in self.zones:
            size = len(zone.labels)
            if len(labels) >= size and all(
                label.lower() == zone_label for label, zone_label in zip(labels[-size:], zone.labels, strict=True)
            ):
                return zone
        return None

    def answer(self, query: Message, client_ip: str, *, tcp: bool) -> Answer:
        """Build the reply to a query that :func:`parse_query` accepted."""
        edns = query.edns
        limit = MAX_MESSAGE_SIZE if tcp else MIN_UDP_PAYLOAD
        opt: RR | None = None
        if edns is not None:
            if not tcp:
                limit = min(max(edns.udp_size, MIN_UDP_PAYLOAD), self.udp_payload_limit)
            bad_version = edns.version > 0
            rcode = RCODE_BADVERS if bad_version else RCODE_NOERROR
            opt = self._opt_record(edns, self.udp_payload_limit, client_ip, rcode)
            if bad_version:
                return Answer(self._short_reply(query, RCODE_BADVERS, opt), RCODE_BADVERS)
        if not query.questions:
            return Answer(self._short_reply(query, RCODE_NOERROR, opt), RCODE_NOERROR)
        question = query.questions[0]
        zone = self.zone_of(question.labels)
        if zone is None or question.qclass not in (CLASS_IN, CLASS_ANY):
            return Answer(self._short_reply(query, RCODE_REFUSED, opt), RCODE_REFUSED, zone)
        prefix = len(question.labels) - len(zone.labels)
        acme = prefix > 0 and question.labels[0].lower() == ACME_LABEL
        reply = _Reply(self._skeleton(query, FLAG_AA, RCODE_NOERROR), opt=opt)
        self._fill(reply, question, zone, prefix, acme)
        return Answer(_pack(reply, limit), RCODE_NOERROR, zone, prefix, recordable=not acme)

    def _skeleton(self, query: Message, flags: int, rcode: int) -> DNSRecord:
        copied = query.header.flags & (FLAG_RD | FLAG_CD)
        header = DNSHeader(id=query.header.id, bitmap=FLAG_QR | flags | copied | (rcode & 0xF))
        questions = [DNSQuestion(DNSLabel(item.labels), item.qtype, item.qclass) for item in query.questions]
        return DNSRecord(header, questions=questions)

    def _short_reply(self, query: Message, rcode: int, opt: RR | None) -> bytes:
        """Pack a reply with only the question (if any) and the OPT record."""
        return _pack(_Reply(self._skeleton(query, 0, rcode), opt=opt), MAX_MESSAGE_SIZE)

    def _opt_record(self, edns: Edns, payload: int, client_ip: str, rcode: int) -> RR:
        options: list[EDNSOption] = []
        cookie = edns.option(OPTION_COOKIE)
        if cookie is not None:
            data = self.cookies.option_data(cookie[:CLIENT_COOKIE_SIZE], client_ip)
            options.append(EDNSOption(OPTION_COOKIE, data))
        ttl = ((rcode >> 4) << 24) | (edns.flags & EDNS_DO)
        return RR(DNSLabel(()), TYPE_OPT, payload, ttl, options)

    def _fill(self, reply: _Reply, question: Question, zone: Zone, prefix: int, acme: bool) -> None:
        owner = DNSLabel(question.labels)
        apex = DNSLabel(question.labels[prefix:])
        qtype = question.qtype
        message = reply.message
        if prefix and not acme:
            relative = ".".join(label_text(label) for label in question.labels[:prefix]).lower()
            custom = self.custom_records.lookup(relative, qtype)
            if custom:
                message.rr.extend(RR(owner, entry.rtype, CLASS_IN, entry.ttl, entry.rdata) for entry in custom)
                return
        if qtype in (TYPE_A, TYPE_AAAA, TYPE_ANY):
            self._add_addresses(reply, owner, apex, zone, qtype)
        elif qtype == TYPE_MX:
            message.add_answer(RR(owner, TYPE_MX, CLASS_IN, DEFAULT_TTL, MX(zone.mail, MX_PREFERENCE)))
        elif qtype == TYPE_NS:
            message.rr.extend(RR(owner, TYPE_NS, CLASS_IN, DEFAULT_TTL, NS(name)) for name in zone.nameservers)
            reply.extra.extend(zone.glue)
        elif qtype == TYPE_SOA:
            message.add_answer(RR(owner, TYPE_SOA, CLASS_IN, SOA_TTL, zone.soa))
        elif qtype == TYPE_TXT:
            self._add_txt(message, owner, question.labels, acme)
        if not message.rr:
            message.add_auth(RR(apex, TYPE_SOA, CLASS_IN, SOA_TTL, zone.soa))

    def _add_addresses(self, reply: _Reply, owner: DNSLabel, apex: DNSLabel, zone: Zone, qtype: int) -> None:
        message = reply.message
        if qtype in (TYPE_A, TYPE_ANY):
            message.rr.extend(RR(owner, TYPE_A, CLASS_IN, DEFAULT_TTL, address) for address in self.ipv4)
        if qtype in (TYPE_AAAA, TYPE_ANY):
            message.rr.extend(RR(owner, TYPE_AAAA, CLASS_IN, DEFAULT_TTL, address) for address in self.ipv6)
        if message.rr:
            message.auth.extend(RR(apex, TYPE_NS, CLASS_IN, DEFAULT_TTL, NS(name)) for name in zone.nameservers)
            reply.optional_authority = True
            reply.extra.extend(zone.glue)

    def _add_txt(self, message: DNSRecord, owner: DNSLabel, labels: Labels, acme: bool) -> None:
        if not acme:
            message.add_answer(RR(owner, TYPE_TXT, CLASS_IN, TXT_TTL, TXT([b""])))
            return
        key = b".".join(labels).decode("latin-1").lower()
        for value in self.acme_txt.get(key, ()):
            message.add_answer(RR(owner, TYPE_TXT, CLASS_IN, ACME_TXT_TTL, TXT([value.encode("utf-8")])))


def _pack(reply: _Reply, limit: int) -> bytes:
    """Pack a reply within ``limit`` octets, dropping optional records and then truncating."""
    message = reply.message
    opt = [reply.opt] if reply.opt is not None else []
    message.ar = [*reply.extra, *opt]
    wire = bytes(message.pack())
    if len(wire) <= limit:
        return wire
    if reply.extra or reply.optional_authority:
        if reply.optional_authority:
            message.auth = []
        message.ar = opt
        wire = bytes(message.pack())
        if len(wire) <= limit:
            return wire
    message.rr = []
    message.auth = []
    message.ar = opt
    message.header.bitmap |= FLAG_TC
    return bytes(message.pack())


def _unique_addresses(ips: list[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Return the configured addresses in order without repeats; an IPv4-mapped IPv6 address counts as IPv4."""
    unique: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in ips:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address not in unique:
            unique.append(address)
    return unique
