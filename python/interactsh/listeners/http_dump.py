"""The request and response texts of HTTP interaction records.

``raw-request`` follows Go's ``httputil.DumpRequest(r, true)`` as upstream
records it. It has the request line with the target as received, ``Host``
and ``Transfer-Encoding``. The other headers follow, sorted by their canonical
names, then a blank line and the body, chunked again when the request was
chunked. Two things differ from Go. ``Host`` shows each Host header as
received, where Go shows the target's authority and leaves it out for an
absolute-form target. A chunked body that did not end properly shows the
bytes received, where Go would show a terminating ``0`` line that the client
never sent.

``raw-response`` follows ``httputil.DumpResponse`` of upstream's response
recorder: the status line, ``Connection: close``, the handler's headers sorted
by name, a blank line and the body.

Every line ends in CRLF. Bytes that are not UTF-8 are kept as lone surrogates
(``surrogateescape``), which the record builder writes as JSON escapes.
"""

from __future__ import annotations

import functools
import http
import re
from dataclasses import dataclass, field

# Go's textproto accepts these bytes in a header name; a name with any other byte keeps its case.
_TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DUMP_EXCLUDED = frozenset({"host", "transfer-encoding", "trailer"})
_ABSOLUTE_FORM = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LINE_BREAK = re.compile(r"\r?\n")


def as_text(data: bytes) -> str:
    """Decode bytes as UTF-8, keeping every invalid byte as a lone surrogate."""
    return data.decode("utf-8", "surrogateescape")


def as_bytes(text: str) -> bytes:
    """Encode text made by :func:`as_text` back into the original bytes."""
    return text.encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=1024)
def canonical_header_name(name: str) -> str:
    """Return Go's canonical form of a header name (``x-big`` becomes ``X-Big``)."""
    if not name or any(ord(char) > 127 or ord(char) not in _TOKEN_BYTES for char in name):
        return name
    parts = name.lower().split("-")
    return "-".join(part[:1].upper() + part[1:] for part in parts)


@dataclass
class CapturedRequest:
    """One request as the capture route saw it; header names are lowercase."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    scheme: str = "http"
    client_ip: str = ""
    # False when the body stopped early: it failed to parse, timed out or the client left.
    complete: bool = True
    # A chunked body as received, framing included, kept when it did not end properly.
    raw_body: bytes | None = None

    def header(self, name: str) -> str | None:
        """Return the first value of the header ``name`` (lowercase), or ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """Return every value of the header ``name`` (lowercase), in order."""
        return [value for key, value in self.headers if key == name]

    @property
    def absolute_form(self) -> bool:
        """Tell whether the target is an absolute URI (``http://host/path``)."""
        return bool(_ABSOLUTE_FORM.match(self.target))

    @property
    def host(self) -> str:
        """Return the host the request names: an absolute-form target's authority, else the Host header."""
        if self.absolute_form:
            authority = self.target.split("://", 1)[1]
            for separator in "/?#":
                authority = authority.split(separator, 1)[0]
            return authority.rsplit("@", 1)[-1]
        return self.header("host") or ""

    @property
    def chunked(self) -> bool:
        """Tell whether the body came with chunked transfer coding."""
        codings = ",".join(value for key, value in self.headers if key == "transfer-encoding")
        return codings.rsplit(",", 1)[-1].strip().lower() == "chunked"


@dataclass
class ResponsePlan:
    """A response before it is sent; ``headers`` are the ones ``raw-response`` shows."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0
    close: bool = False


def dump_request(request: CapturedRequest) -> str:
    """Return ``raw-request`` in the format of Go's ``httputil.DumpRequest``."""
    lines = [f"{request.method} {request.target} HTTP/{request.version}"]
    lines.extend(f"Host: {_clean_value(host)}" for host in request.header_values("host") if host)
    codings = request.header_values("transfer-encoding")
    if codings:
        lines.append("Transfer-Encoding: " + ",".join(codings))
    others = [
        (canonical_header_name(key), _clean_value(value)) for key, value in request.headers if key not in _DUMP_EXCLUDED
    ]
    others.sort(key=lambda item: item[0])
    lines.extend(f"{key}: {value}" for key, value in others)
    return "\r\n".join(lines) + "\r\n\r\n" + _dump_body(request)


def _dump_body(request: CapturedRequest) -> str:
    if not request.chunked:
        return as_text(request.body)
    if request.raw_body is not None:
        return as_text(request.raw_body)
    body = f"{len(request.body):x}\r\n{as_text(request.body)}\r\n" if request.body else ""
    # Without the bytes as received, a body that stopped early still gets no terminator it never had.
    return (body + "0\r\n\r\n") if request.complete else body


def dump_response(plan: ResponsePlan) -> str:
    """Return ``raw-response`` in the format of Go's ``httputil.DumpResponse``."""
    lines = [f"HTTP/1.1 {plan.status} {status_phrase(plan.status)}", "Connection: close"]
    lines.extend(f"{key}: {value}" for key, value in sorted(plan.headers, key=lambda item: item[0]))
    return "\r\n".join(lines) + "\r\n\r\n" + as_text(plan.body)


def status_phrase(status: int) -> str:
    """Return the reason phrase of a status code, or Go's ``status code N`` for an unknown one."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"status code {status}"


def parse_raw_head(raw: bytes) -> CapturedRequest:
    """Parse what arrived of a rejected request head, tolerating any damage.

    The request line and complete ``Name: value`` lines are read; a line
    without a colon is skipped and a missing part stays empty.
    """
    text = as_text(raw)
    head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
    lines = _LINE_BREAK.split(head.lstrip("\r\n"))
    parts = lines[0].split(" ")
    method = parts[0] if parts else ""
    target = parts[1] if len(parts) > 1 else ""
    version = parts[2].removeprefix("HTTP/") if len(parts) > 2 else ""
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip():
            headers.append((name.strip().lower(), value.strip(" \t")))
    return CapturedRequest(method, target, version, headers)


def _clean_value(value: str) -> str:
    # Go's Header.Write turns line breaks into spaces and trims spaces and tabs.
    return value.replace("\r", " ").replace("\n", " ").strip(" \t")
