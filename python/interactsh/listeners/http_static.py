"""Operator-supplied HTTP bodies: ``-default-http-response``, ``-http-index`` and ``-http-directory``.

The two text files are read once at start, within ``max_static_file_size``,
and every ``{DOMAIN}`` in them is replaced per request. An empty file is
ignored with a warning, as upstream ignores it.

The directory serves regular files under ``/s/``. The request path is
percent-decoded to bytes, so file names that are not UTF-8 still match. A path
with an empty, ``.`` or ``..`` segment, a NUL byte, or a trailing ``/`` gets 404,
and so does a directory, a FIFO or a device. A file whose resolved path leaves
the directory through a symlink also gets 404. Go's ``http.FileServer``
redirects ``/s/dir`` to ``/s/dir/`` and ``/s/index.html`` to ``/s/``, where
upstream's handler returns 404. Here ``/s/dir`` gets 404 at once and
``index.html`` is served like any other file.

Files are opened before the interaction is recorded, so the record shows the
real status and the first ``max_request_size`` bytes of the body. The rest is
streamed in chunks from a worker thread, never read into memory at once. Like
Go's ``http.FileServer``, the handler returns 304 for a file unchanged since
``If-Modified-Since`` and 206 for a single byte range. It sends the whole file
when the ``Range`` header has several ranges, an unknown unit or comes with
``If-Range``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import mimetypes
import os
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from starlette.types import Scope, Send

from interactsh.config import ServerConfig
from interactsh.errors import ConfigurationError, InteractshError
from interactsh.listeners.http_dump import ResponsePlan, as_bytes, status_phrase
from interactsh.listeners.http_dynamic import sniff_content_type
from interactsh.listeners.http_io import Headers, connection_lost, header_value
from interactsh.listeners.http_protocol import request_info

log = logging.getLogger("interactsh.http")

STATIC_PREFIX = "/s/"
TEXT_TYPE = "text/plain; charset=utf-8"
DOMAIN_PLACEHOLDER = b"{DOMAIN}"
STREAM_CHUNK_SIZE = 64 * 1024
# Query parameters that apply to static files under -dynamic-resp; body and b64_body do not.
STATIC_DYNAMIC_PARAMETERS = frozenset({"header", "delay", "status"})
# Python's built-in table only, so that the guess does not depend on the host's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW


class Template:
    """A text file whose ``{DOMAIN}`` placeholders are filled in per request."""

    def __init__(self, content: bytes) -> None:
        self.parts = content.split(DOMAIN_PLACEHOLDER)

    def render(self, domain: str) -> bytes:
        """Return the file's bytes with every ``{DOMAIN}`` replaced by ``domain``."""
        return as_bytes(domain).join(self.parts)


def load_template(path: str, flag: str, max_size: int) -> Template | None:
    """Read a template file once at start; ``None`` for an empty file.

    Raises :class:`ConfigurationError` naming the flag and the path when the
    file cannot be read, is not a regular file, or is larger than ``max_size``.
    """
    try:
        # O_NONBLOCK keeps a FIFO from blocking the start until a writer appears.
        descriptor = os.open(path, _OPEN_FLAGS & ~os.O_NOFOLLOW)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise ConfigurationError(f"{flag} {path!r} is not a regular file: pass a text or HTML file")
            with open(descriptor, "rb", closefd=False) as file:
                content = file.read(max_size + 1)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise ConfigurationError(
            f"{flag} {path!r} could not be read: {error.strerror or error}: pass a readable file"
        ) from None
    if len(content) > max_size:
        raise ConfigurationError(
            f"{flag} {path!r} is larger than the limit of {max_size} bytes: "
            "use a smaller file or raise -max-static-file-size"
        )
    if not content:
        log.warning("%s %s is empty, so the built-in responses are used instead", flag, path)
        return None
    return Template(content)


class StaticLookupError(InteractshError, LookupError):
    """A path under ``/s/`` names no file that may be served; ``status`` is the response code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class StaticFile:
    """An open regular file of the static directory."""

    def __init__(self, descriptor: int, name: str, info: os.stat_result) -> None:
        self.descriptor: int | None = descriptor
        self.name = name
        self.size = info.st_size
        self.modified = int(info.st_mtime)

    def read(self, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes at ``offset``; fewer when the file shrank since it was opened."""
        if self.descriptor is None:
            return b""
        return os.pread(self.descriptor, length, offset)

    def close(self) -> None:
        """Close the file; later calls do nothing."""
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


class StaticDirectory:
    """The ``-http-directory`` tree, resolved once at start."""

    def __init__(self, path: str) -> None:
        root = os.path.realpath(os.fsencode(path))
        if not os.path.isdir(root):
            raise ConfigurationError(f"-http-directory {path!r} is not a directory: pass an existing directory")
        self.path = path
        self.root = root
        self._prefix = root if root.endswith(b"/") else root + b"/"

    def open(self, raw_path: bytes) -> StaticFile:
        """Open the file that the raw request path ``/s/<name>`` names.

        Raises :class:`StaticLookupError` with 404 for a path that names no
        regular file inside the directory and 403 for a file the server may
        not read.
        """
        relative = static_relative_path(raw_path)
        if relative is None:
            raise StaticLookupError(404, "path is not a file name under /s/")
        real = os.path.realpath(os.path.join(self.root, relative))
        if not real.startswith(self._prefix):
            raise StaticLookupError(404, "path leaves the static directory")
        try:
            descriptor = os.open(real, _OPEN_FLAGS)
        except PermissionError:
            raise StaticLookupError(403, "permission denied") from None
        except OSError as error:
            raise StaticLookupError(404, error.strerror or "could not open the file") from None
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise StaticLookupError(404, "not a regular file")
        return StaticFile(descriptor, os.fsdecode(relative.rsplit(b"/", 1)[-1]), info)


def static_relative_path(raw_path: bytes) -> bytes | None:
    """Return the file name below ``/s/`` of a raw request path, or ``None`` when it may not be served.

    The ``/s/`` prefix is stripped case-sensitively after percent-decoding,
    as Go's ``http.StripPrefix`` does.
    """
    decoded = urllib.parse.unquote_to_bytes(raw_path)
    if not decoded.startswith(STATIC_PREFIX.encode()):
        return None
    relative = decoded[len(STATIC_PREFIX) :]
    if b"\x00" in relative:
        return None
    if any(segment in (b"", b".", b"..") for segment in relative.split(b"/")):
        return None
    return relative


@dataclass
class OperatorBodies:
    """The bodies an operator configured: a default response, an index page and a static directory."""

    default_response: Template | None = None
    index: Template | None = None
    directory: StaticDirectory | None = None

    @classmethod
    def from_config(cls, config: ServerConfig) -> OperatorBodies:
        """Read the configured files; raise :class:`ConfigurationError` naming the first unusable one."""
        bodies = cls()
        limit = config.max_static_file_size
        if config.default_http_response:
            bodies.default_response = load_template(config.default_http_response, "-default-http-response", limit)
            if bodies.default_response is not None:
                log.info("serving %s as every HTTP capture response", Path(config.default_http_response).resolve())
        if config.http_index:
            bodies.index = load_template(config.http_index, "-http-index", limit)
            if bodies.index is not None:
                log.info("serving %s as the HTTP index page", Path(config.http_index).resolve())
        if config.http_directory:
            bodies.directory = StaticDirectory(config.http_directory)
            log.info("serving files under /s/ from %s", os.fsdecode(bodies.directory.root))
        return bodies


@dataclass
class StaticPlan(ResponsePlan):
    """A response that streams ``length`` bytes of ``file`` from ``offset``; ``body`` is their recorded start."""

    file: StaticFile | None = None
    offset: int = 0
    length: int = 0

    def release(self) -> None:
        """Close the file; later calls do nothing."""
        if self.file is not None:
            self.file.close()


def plan_static_file(
    directory: StaticDirectory, scope: Scope, base: ResponsePlan, *, fixed_status: bool, record_limit: int
) -> ResponsePlan:
    """Return the plan that serves the file a ``/s/`` request names.

    ``base`` carries the status, headers and delay that the dynamic
    parameters set. With ``fixed_status`` (a ``status`` parameter) the whole
    file is sent with that status, and conditional and range headers are
    ignored. The plan's body contains at most ``record_limit`` bytes.
    """
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    try:
        file = directory.open(raw_path)
    except StaticLookupError as error:
        client = scope.get("client")
        peer = client[0] if client else ""
        log.debug("%s - %s %s gets %d: %s", peer, scope["method"], scope["path"][:128], error.status, error)
        # Go's http.FileServer sends these texts.
        text = "404 page not found" if error.status == 404 else f"{error.status} {status_phrase(error.status)}"
        headers = [
            *_without_content_type(base.headers),
            ("Content-Type", TEXT_TYPE),
            ("X-Content-Type-Options", "nosniff"),
        ]
        return ResponsePlan(error.status, headers, f"{text}\n".encode("ascii"), delay=base.delay)
    try:
        return _plan_open_file(file, scope, base, fixed_status, record_limit)
    except BaseException:
        file.close()
        raise


def _plan_open_file(
    file: StaticFile, scope: Scope, base: ResponsePlan, fixed_status: bool, record_limit: int
) -> ResponsePlan:
    last_modified = email.utils.formatdate(file.modified, usegmt=True)
    headers = list(base.headers)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", _content_type(file)))
    headers += [("Accept-Ranges", "bytes"), ("Last-Modified", last_modified)]
    status, offset, length = base.status, 0, file.size
    if not fixed_status:
        if _not_modified(scope, file.modified):
            file.close()
            return ResponsePlan(304, [*base.headers, ("Last-Modified", last_modified)], delay=base.delay)
        try:
            byte_range = requested_range(scope, file.size)
        except RangeNotSatisfiableError as error:
            file.close()
            headers = [*_without_content_type(base.headers), ("Content-Range", f"bytes */{file.size}")]
            headers.append(("Content-Type", TEXT_TYPE))
            return ResponsePlan(416, headers, f"{error}\n".encode("latin-1", "replace"), delay=base.delay)
        if byte_range is not None:
            status, (offset, length) = 206, byte_range
            headers.append(("Content-Range", f"bytes {offset}-{offset + length - 1}/{file.size}"))
    if status in (204, 304):
        # These statuses carry no body, so a dynamic status=204 sends the head alone.
        length = 0
    else:
        headers.append(("Content-Length", str(length)))
    if scope["method"] == "HEAD":
        length = 0
    prefix = file.read(offset, min(length, record_limit))
    return StaticPlan(status, headers, prefix, delay=base.delay, file=file, offset=offset, length=length)


def _without_content_type(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() != "content-type"]


def _content_type(file: StaticFile) -> str:
    guessed, encoding = _MIME_TYPES.guess_type(file.name, strict=True)
    if guessed is not None and encoding is None:
        return guessed + "; charset=utf-8" if guessed.startswith("text/") else guessed
    # Go's http.FileServer also sniffs the first 512 bytes when the extension is unknown.
    return sniff_content_type(file.read(0, 512))


def _not_modified(scope: Scope, modified: int) -> bool:
    if scope["method"] not in ("GET", "HEAD") or header_value(scope, b"if-none-match") is not None:
        return False
    value = header_value(scope, b"if-modified-since")
    if value is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return modified <= since.timestamp()


class RangeNotSatisfiableError(InteractshError, ValueError):
    """The ``Range`` header is invalid or lies beyond the end of the file."""


def requested_range(scope: Scope, size: int) -> tuple[int, int] | None:
    """Return ``(offset, length)`` of a single-range request, or ``None`` to send the whole file.

    Raises :class:`RangeNotSatisfiableError` for a byte range that is invalid
    or starts past the end of the file.
    """
    value = header_value(scope, b"range")
    if value is None or header_value(scope, b"if-range") is not None:
        return None
    text = value.decode("latin-1")
    unit, equals, ranges = text.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in ranges:
        return None
    first, dash, last = (part.strip() for part in ranges.partition("-"))
    if not dash or not _is_position(first) or not _is_position(last) or not (first or last):
        raise RangeNotSatisfiableError(f"invalid byte range {text[:64]!r}: use bytes=FIRST-LAST, FIRST- or -SUFFIX")
    if not first:
        length = min(int(last), size)
        if length == 0:
            raise RangeNotSatisfiableError(f"byte range {text[:64]!r} selects no bytes of the {size}-byte file")
        return size - length, length
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or end < start:
        raise RangeNotSatisfiableError(f"byte range {text[:64]!r} lies outside the {size}-byte file")
    return start, end - start + 1


def _is_position(text: str) -> bool:
    return text == "" or (text.isascii() and text.isdigit() and len(text) <= 19)


async def send_static(send: Send, scope: Scope, plan: StaticPlan, headers: Headers) -> None:
    """Send the head, the recorded start of the body, then the rest of the file in chunks.

    Reading stops when the client goes away. A file that shrank while it was
    sent leaves the response short of its Content-Length, so the connection
    is aborted for the client to notice.
    """
    await send({"type": "http.response.start", "status": plan.status, "headers": headers})
    sent = len(plan.body)
    if sent >= plan.length:
        await send({"type": "http.response.body", "body": plan.body[: plan.length]})
        return
    await send({"type": "http.response.body", "body": plan.body, "more_body": True})
    file = plan.file
    while sent < plan.length:
        if file is None or connection_lost(scope):
            return
        size = min(STREAM_CHUNK_SIZE, plan.length - sent)
        chunk = await asyncio.to_thread(file.read, plan.offset + sent, size)
        if not chunk:
            client = scope.get("client")
            log.warning(
                "%s - %s shrank while it was sent: aborting the response after %d of %d bytes",
                client[0] if client else "",
                file.name,
                sent,
                plan.length,
            )
            await _abort_connection(scope)
            return
        sent += len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": sent < plan.length})


async def _abort_connection(scope: Scope) -> None:
    info = request_info(scope)
    transport = info.connection.transport if info is not None else None
    if transport is None or transport.is_closing():
        return
    transport.abort()
    # The connection-lost callback runs on the next loop iteration and marks the response as abandoned.
    await asyncio.sleep(0)
