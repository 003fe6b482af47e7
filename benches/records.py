"""Typical interaction records and session credentials for the store benchmarks.

The record texts are rendered by the listeners' own code (the DNS message
text, the HTTP request and response dumps and the record builder), so they
have the exact shape and size of what the server stores. Each record gets its
own unique id, so no two records are the same ``bytes`` object: an engine
that keeps references (the Python one) must hold every record.

Kinds:

* ``dns``: an A query with EDNS and no cookie (as ``dig +nocookie`` sends it)
  and the server's answer with its NS authority and glue (about 1.07 KB).
* ``http``: a browser-like ``GET /`` and the server's default HTML reply
  (about 1.0 KB, HTML escapes included).
* ``small``: a DNS query without EDNS whose reply has only the answer
  section (about 0.73 KB). The server always adds the authority section, so
  it never stores this shape; it shows the per-record overhead on a smaller
  record.
"""

from __future__ import annotations

import base64
import functools

import dnslib
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from interactsh import __version__
from interactsh.interaction import build_record, timestamp_now
from interactsh.listeners.dns_text import message_text
from interactsh.listeners.dns_wire import parse_message
from interactsh.listeners.http_dump import CapturedRequest, ResponsePlan, dump_request, dump_response

CID_LENGTH = 20
NONCE_LENGTH = 13
DOMAIN = "oast.test"
SECRET = "6c1e2a57-93b0-4f5e-8d2c-0a4b7e9f1d36"
CLIENT_ADDRESS = "127.0.0.1"
KINDS = ("dns", "http", "small")

# Stand-ins for the unique id, replaced in each record: letters that appear
# nowhere else in the rendered templates.
_ID_PLACEHOLDER = "q" * (CID_LENGTH + NONCE_LENGTH)
_REVERSED_PLACEHOLDER = "j" * (CID_LENGTH + NONCE_LENGTH)
_BROWSER_HEADERS = (
    ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate"),
    ("connection", "close"),
)
_CORS_HEADERS = (
    ("Access-Control-Allow-Credentials", "true"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
    ("Access-Control-Allow-Origin", "*"),
)


def correlation_id(number: int) -> str:
    """Return the distinct, valid correlation id number ``number``."""
    return f"b{number:0{CID_LENGTH - 1}d}"


def unique_id(cid: str, number: int) -> str:
    """Return the unique id ``<correlation id><nonce>`` of the record ``number``."""
    return f"{cid}{number:0{NONCE_LENGTH}d}"


@functools.cache
def public_key_b64(bits: int = 2048) -> str:
    """Return a public key as clients register it: base64 of a PEM document, one key per process."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode("ascii")


class RecordFactory:
    """Builds records of one kind from a template, each with its own unique id."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"record kind {kind!r} is unknown: use one of {', '.join(KINDS)}")
        self.kind = kind
        render = {"dns": _dns_template, "http": _http_template, "small": _small_template}[kind]
        self.template = render()
        self._id = _ID_PLACEHOLDER.encode("ascii")
        self._reversed = _REVERSED_PLACEHOLDER.encode("ascii")

    def build(self, uid: str) -> bytes:
        """Return the template with ``uid`` (33 characters of ``[a-z0-9]``) in place of the placeholder."""
        encoded = uid.encode("ascii")
        return self.template.replace(self._id, encoded).replace(self._reversed, encoded[::-1])

    @property
    def size(self) -> int:
        """Bytes of every record of this kind (all unique ids have the same length)."""
        return len(self.template)


def _dns_texts(edns: bool, full_reply: bool) -> tuple[str, str]:
    name = f"{_ID_PLACEHOLDER}.{DOMAIN}"
    query = dnslib.DNSRecord.question(name, "A")
    # A fixed message id keeps every template the same size (dnslib picks a random one).
    query.header.id = 41257
    query.header.ad = 1
    if edns:
        query.add_ar(dnslib.EDNS0(udp_len=1232))
    reply = query.reply(aa=1, ra=0)
    reply.header.ad = 0
    if edns:
        reply.add_ar(dnslib.EDNS0(udp_len=1232))
    reply.add_answer(dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A(CLIENT_ADDRESS), ttl=3600))
    if full_reply:
        for server in ("ns1", "ns2"):
            reply.add_auth(dnslib.RR(DOMAIN, dnslib.QTYPE.NS, rdata=dnslib.NS(f"{server}.{DOMAIN}"), ttl=3600))
        for server in ("ns1", "ns2"):
            glue = dnslib.RR(f"{server}.{DOMAIN}", dnslib.QTYPE.A, rdata=dnslib.A(CLIENT_ADDRESS), ttl=3600)
            reply.add_ar(glue)
    return message_text(parse_message(bytes(query.pack()))), message_text(parse_message(bytes(reply.pack())))


def _dns_record(edns: bool, full_reply: bool) -> bytes:
    request, response = _dns_texts(edns, full_reply)
    return build_record(
        "dns",
        _ID_PLACEHOLDER,
        _ID_PLACEHOLDER,
        CLIENT_ADDRESS,
        q_type="A",
        raw_request=request,
        raw_response=response,
        timestamp=timestamp_now(),
        transport="udp",
    )


def _dns_template() -> bytes:
    return _dns_record(edns=True, full_reply=True)


def _small_template() -> bytes:
    return _dns_record(edns=False, full_reply=False)


def _http_template() -> bytes:
    headers = [("host", f"{_ID_PLACEHOLDER}.{DOMAIN}"), *_BROWSER_HEADERS]
    request = CapturedRequest("GET", "/", "1.1", headers)
    response_headers = [
        *_CORS_HEADERS,
        ("Content-Type", "text/html; charset=utf-8"),
        ("Server", DOMAIN),
        ("X-Interactsh-Version", __version__),
    ]
    body = f"<html><head></head><body>{_REVERSED_PLACEHOLDER}</body></html>".encode("ascii")
    return build_record(
        "http",
        _ID_PLACEHOLDER,
        _ID_PLACEHOLDER,
        CLIENT_ADDRESS,
        raw_request=dump_request(request),
        raw_response=dump_response(ResponsePlan(200, response_headers, body)),
        timestamp=timestamp_now(),
    )
