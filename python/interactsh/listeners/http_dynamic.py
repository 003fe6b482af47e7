"""Dynamic HTTP responses (``-dynamic-resp``): query parameters shape the reply.

Upstream's steps, in order:

1. A path ``/b64_body:<base64>/...`` writes the decoded text between the
   prefix and the last ``/``.
2. Every ``header=Name:Value`` adds a header.
3. ``delay=<seconds>`` waits.
4. ``status=<code>`` sets the status, unless the path already wrote a body.
5. ``body=<text>`` and then ``b64_body=<base64>`` are appended to the body.

Upstream crashes the handler on a non-numeric status and on a ``/b64_body:``
path without a later ``/``, and sleeps for any delay. Here every invalid value
raises :class:`DynamicResponseError`, and the capture route sends 400 after
recording the request. The delay is capped. A header name that is not an HTTP
token, or a value with a control character (CR, LF, NUL...), is rejected, so
no parameter can inject a header.
"""

from __future__ import annotations

import base64
import binascii
import re

from interactsh.errors import InteractshError
from interactsh.listeners.http_dump import ResponsePlan, as_bytes, canonical_header_name

PATH_PREFIX = "/b64_body:"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS = re.compile(r"[0-9]{1,9}")
_DELAY = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?")
# Headers that frame the response; the server sets them itself.
_RESERVED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_SNIFF_LENGTH = 512


class DynamicResponseError(InteractshError, ValueError):
    """A dynamic-response parameter has an invalid value."""


def wants_dynamic_response(path: str, query: list[tuple[str, str]]) -> bool:
    """Tell whether upstream's rules route this request to the dynamic response."""
    return bool(query) or path.lower().startswith(PATH_PREFIX)


def plan_dynamic_response(
    path: str, query: list[tuple[str, str]], base: ResponsePlan, max_delay: float
) -> ResponsePlan:
    """Apply the dynamic parameters to ``base`` (its status and headers) and return the plan.

    ``path`` is the percent-decoded request path and ``query`` the decoded
    query parameters in order. Raises :class:`DynamicResponseError` naming
    the parameter and the fix.
    """
    plan = ResponsePlan(base.status, list(base.headers))
    body = bytearray()
    path_body = path.lower().startswith(PATH_PREFIX)
    if path_body:
        body += _path_body(path)
    for key, value in query:
        if key == "header":
            plan.headers.append(_parse_header(value))
    delay = _first(query, "delay")
    if delay is not None:
        plan.delay = _parse_delay(delay, max_delay)
    status = _first(query, "status")
    if status is not None:
        code = _parse_status(status)
        if not path_body:
            plan.status = code
    text = _first(query, "body")
    if text:
        body += as_bytes(text)
    encoded = _first(query, "b64_body")
    if encoded:
        body += _decode_base64(encoded, "b64_body")
    plan.body = bytes(body)
    if plan.body and not any(key.lower() == "content-type" for key, _ in plan.headers):
        plan.headers.append(("Content-Type", sniff_content_type(plan.body)))
    return plan


def _first(query: list[tuple[str, str]], name: str) -> str | None:
    for key, value in query:
        if key == name:
            return value
    return None


def _path_body(path: str) -> bytes:
    end = path.rfind("/")
    if end < len(PATH_PREFIX):
        raise DynamicResponseError(f"path {path[:64]!r} has no '/' after the base64 text: use {PATH_PREFIX}<base64>/")
    return _decode_base64(path[len(PATH_PREFIX) : end], "the /b64_body: path")


def _decode_base64(text: str, where: str) -> bytes:
    # A "+" in a query string arrives as a space, which base64 never contains.
    cleaned = text.replace(" ", "+")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise DynamicResponseError(
            f"{where} is not valid standard base64: {text[:64]!r}. Encode '+' as %2B in a query string"
        ) from None


def _parse_header(value: str) -> tuple[str, str]:
    name, colon, content = value.partition(":")
    if not colon:
        raise DynamicResponseError(f"header parameter {value[:64]!r} has no ':': use header=Name:Value")
    if not _HEADER_NAME.fullmatch(name):
        raise DynamicResponseError(f"header name {name[:64]!r} is not a valid HTTP token")
    if _CONTROL_CHARACTERS.search(content):
        raise DynamicResponseError(f"header {name!r} has a control character (CR, LF, NUL...) in its value: remove it")
    if name.lower() in _RESERVED_HEADERS:
        raise DynamicResponseError(f"header {name!r} cannot be set: the server frames the response itself")
    return canonical_header_name(name), content.strip(" \t")


def _parse_status(text: str) -> int:
    if not _STATUS.fullmatch(text):
        raise DynamicResponseError(f"status {text[:32]!r} is not a number: use a status code from 200 to 599")
    code = int(text)
    # A 1xx code announces another response, so it cannot be the final one that carries the body.
    if not 200 <= code <= 599:
        raise DynamicResponseError(f"status {code} is out of range: use a status code from 200 to 599")
    return code


def _parse_delay(text: str, max_delay: float) -> float:
    if not _DELAY.fullmatch(text):
        raise DynamicResponseError(f"delay {text[:32]!r} is not a number of seconds: use e.g. delay=2")
    return min(float(text), max_delay)


def sniff_content_type(body: bytes) -> str:
    """Return a Content-Type for ``body`` as Go's ``http.DetectContentType`` would for common content.

    This covers HTML, XML, PDF, PostScript, the common image and archive
    signatures, UTF-16 and UTF-8 byte order marks, and the text/binary split;
    Go's audio, video and font signatures are left out.
    """
    data = body[:_SNIFF_LENGTH]
    for prefix, content_type in _EXACT_SIGNATURES:
        if data.startswith(prefix):
            return content_type
    if data[:4] == b"RIFF" and data[8:14] == b"WEBPVP":
        return "image/webp"
    stripped = data.lstrip(b"\t\n\x0c\r ")
    lowered = stripped[:16].lower()
    for tag in _HTML_TAGS:
        if lowered.startswith(tag) and len(stripped) > len(tag) and stripped[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if lowered.startswith(b"<!--"):
        return "text/html; charset=utf-8"
    if lowered.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    if any(byte in _BINARY_BYTES for byte in data):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


_EXACT_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xfe\xff", "text/plain; charset=utf-16be"),
    (b"\xff\xfe", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf", "text/plain; charset=utf-8"),
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
)
_HTML_TAGS = (
    b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1", b"<div", b"<font",
    b"<table", b"<a", b"<style", b"<title", b"<b", b"<body", b"<br", b"<p",
)  # fmt: skip
_BINARY_BYTES = frozenset([*range(0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])
