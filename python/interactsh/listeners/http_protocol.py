"""uvicorn's httptools protocol with the limits a public capture server needs.

uvicorn 0.55 with httptools 0.9 (llhttp) sets no cap on the bytes of a request
head, because llhttp buffers a partial header value without limit. It has no
timeout for receiving a head and no cap on connections per client address.
This subclass adds all three.

llhttp itself rejects a request that carries both Content-Length and
Transfer-Encoding, duplicate Content-Length headers and an overflowing chunk
size, but uvicorn then sends 400 without the ASGI app ever seeing the request.
Here a rejected head goes to a hook that records it, and a body that fails to
parse ends the running request so that the app records it. This subclass also
rejects what llhttp accepts but RFC 9112 does not: more than one Host header
(section 3.2), and chunk sizes that no body could reach.

The ASGI app reads two more things through the extension: the bytes of a
chunked body as received, and :meth:`CaptureProtocol.wait_drained`, which
reports whether a response left the server before the connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from interactsh.listeners.http_framing import MAX_CHUNK_SIZE, ChunkSizeGuard, RawBody, head_length, is_chunked

log = logging.getLogger("interactsh.http")

# The ASGI extension, under scope["extensions"], whose "request" entry is the RequestInfo.
EXTENSION_KEY = "interactsh"

# Seconds a rejected connection keeps reading and discarding input so that the client can read the reply.
LINGER_SECONDS = 2.0
REFUSED_MESSAGE = "too many open connections from this address: close some and retry"


@dataclass
class RejectedRequest:
    """A request head that the server rejected with an error status before the ASGI app ran."""

    raw_head: bytes
    client: tuple[str, int] | None
    scheme: str
    status: int
    reason: str
    truncated: bool


RejectHook = Callable[[RejectedRequest], None]


class HeadRejected(Exception):
    """A request head that llhttp parsed but this server rejects with 400; the message is the reason."""


class ConnectionLimiter:
    """Counts open connections per client address against a cap (0 or less: no cap)."""

    def __init__(self, max_per_address: int) -> None:
        self.max_per_address = max_per_address
        self.open: dict[str, int] = {}
        # Addresses already warned about; one is forgotten once all its connections have closed.
        self._warned: set[str] = set()

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; ``False`` when it is at the cap."""
        count = self.open.get(address, 0)
        if 0 < self.max_per_address <= count:
            if address not in self._warned:
                self._warned.add(address)
                log.warning("%s - rejecting HTTP connections over the cap of %d", address, self.max_per_address)
            return False
        self.open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        """Count one connection from ``address`` as closed."""
        count = self.open.get(address, 0) - 1
        if count > 0:
            self.open[address] = count
        else:
            self.open.pop(address, None)
            self._warned.discard(address)


@dataclass(frozen=True)
class ProtocolSettings:
    """Limits and hooks shared by every connection of one listener."""

    max_head_size: int
    head_timeout: float
    limiter: ConnectionLimiter
    reject_hook: RejectHook | None


class RequestInfo:
    """Per-request state that the ASGI app reads beyond the ASGI scope."""

    __slots__ = ("connection", "parse_error", "raw_body", "target")

    def __init__(self, target: bytes, connection: CaptureProtocol) -> None:
        self.target = target
        self.connection = connection
        # llhttp's message when the body could not be parsed; the body then ends early.
        self.parse_error: str | None = None
        # A chunked body as received, when the protocol could tell where the head ended.
        self.raw_body: RawBody | None = None


def request_info(scope: Mapping[str, Any]) -> RequestInfo | None:
    """Return the RequestInfo that CaptureProtocol put into ``scope``, if any."""
    extension = (scope.get("extensions") or {}).get(EXTENSION_KEY) or {}
    info = extension.get("request")
    return info if isinstance(info, RequestInfo) else None


def duration_text(seconds: float) -> str:
    """Return ``seconds`` for a message: ``1 second``, ``0.5 seconds``, ``30 seconds``."""
    return f"{seconds:g} second" if seconds == 1 else f"{seconds:g} seconds"


def error_response(status: int, phrase: str, message: str) -> bytes:
    """Return a complete plain-text HTTP/1.1 response that closes the connection."""
    body = message.encode("utf-8", "replace") + b"\n"
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class CaptureProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a head size cap, a head timeout and a per-address connection cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        settings: ProtocolSettings,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.settings = settings
        self.lost = False
        self._refused = False
        self._address: str | None = None
        # Bytes of the head being received; while awaiting a head, each chunk is kept for a reject record.
        self._awaiting_head = True
        self._head_chunks: list[bytes] = []
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._began_in_feed = False
        self._ended_in_feed = False
        self._failed = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self.request_info: RequestInfo | None = None
        # The exception that closed the connection; None after a clean close.
        self.lost_error: Exception | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._chunk_guard = ChunkSizeGuard()
        self._raw_body: RawBody | None = None
        # Whether _head_chunks begins where the current request begins, with no pipelined predecessor.
        self._head_starts_chunks = True

    # Connection life cycle.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if address is not None and not self.settings.limiter.acquire(address):
            self._refused = self._failed = True
            transport.write(error_response(503, "Service Unavailable", REFUSED_MESSAGE))
            self._linger(transport)
            log.debug("%s - rejected a connection over the per-address cap", address)
            return
        self._address = address
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        if self._refused:
            return
        self.lost = True
        self.lost_error = exc
        self._wake_drain_waiters()
        self._cancel_head_timer()
        if self._address is not None:
            self.settings.limiter.release(self._address)
            self._address = None
        super().connection_lost(exc)

    # Reading.

    def data_received(self, data: bytes) -> None:
        if self._failed or self.parser is None:
            return
        self._unset_keepalive_if_required()
        limit = self.settings.max_head_size
        while data:
            if not self._awaiting_head:
                self._feed(data)
                return
            self._arm_head_timer()
            room = max(limit - self._head_size, 0)
            part, data = data[:room], data[room:]
            if part:
                self._head_chunks.append(part)
                self._head_size += len(part)
                if not self._feed(part):
                    return
            if self._awaiting_head and data:
                self._reject_head(431, "Request Header Fields Too Large", f"request head is over {limit} bytes", True)
                return

    def _feed(self, data: bytes) -> bool:
        """Feed ``data`` to llhttp; ``False`` when the connection stops reading."""
        self._began_in_feed = self._ended_in_feed = False
        if self._raw_body is not None:
            self._raw_body.add(data)
        self._chunk_guard.start_piece()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._on_upgrade()
            return False
        except httptools.HttpParserError as error:
            # An exception raised in a callback arrives as the context of llhttp's callback error.
            cause = error.__context__
            self._on_parse_error(str(cause) if isinstance(cause, HeadRejected) else str(error) or type(error).__name__)
            return False
        if self._ended_in_feed and self._awaiting_head:
            # A pipelined request may have begun inside this chunk, so the chunk is kept for a
            # reject record. The head size count restarts with the next chunk.
            self._head_chunks = [data] if self._began_in_feed else []
            self._head_starts_chunks = not self._began_in_feed
            self._head_size = 0
        oversized = self._chunk_guard.finish_piece(data)
        if oversized is not None:
            size = oversized.decode("ascii")
            self._on_parse_error(f"chunk size {size} is over the maximum of {MAX_CHUNK_SIZE:X} (15 hex digits)")
            return False
        return True

    def _on_upgrade(self) -> None:
        # This server has no WebSocket or h2c implementation: the upgrade request is served
        # as plain HTTP, llhttp parses nothing after it, and the connection closes after the response.
        self._failed = True
        log.debug("%s - closing after an upgrade request", self._address)
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.close()
            return
        cycle.keep_alive = False
        self.flow.pause_reading()

    def _on_parse_error(self, message: str) -> None:
        self._failed = True
        if self._awaiting_head:
            self._reject_head(400, "Bad Request", f"invalid HTTP request: {message}", False)
            return
        # The head was valid and the ASGI app is running, so end its body and let it respond and record.
        if self.request_info is not None:
            self.request_info.parse_error = message
        cycle = self.cycle
        cycle.keep_alive = False
        self.flow.pause_reading()
        if cycle.response_complete:
            self.transport.close()
            return
        cycle.more_body = False
        cycle.message_event.set()

    def _reject_head(self, status: int, phrase: str, reason: str, truncated: bool) -> None:
        self._failed = True
        self._cancel_head_timer()
        raw_head = b"".join(self._head_chunks)
        self._head_chunks = []
        hook = self.settings.reject_hook
        if hook is not None and raw_head.strip():
            rejected = RejectedRequest(raw_head, self.client, self.scheme or "http", status, reason, truncated)
            try:
                hook(rejected)
            except Exception:
                log.exception("%s - could not record a rejected request", self._address)
        log.debug("%s - rejected a request with %d: %s", self._address, status, reason)
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still being written on this connection; it closes the connection when done.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        if not self.transport.is_closing():
            self.transport.write(error_response(status, phrase, reason))
            self._linger(self.transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        # Closing a socket with unread input makes the kernel reset the connection and drop the
        # reply, so a client still sending would never read it. Half-close instead and discard
        # input (data_received ignores it after a failure) until the client closes or time is up.
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, transport.close)

    # Head timeout.

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and self.settings.head_timeout > 0:
            self._head_timer = self.loop.call_later(self.settings.head_timeout, self._on_head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.transport is None or self.transport.is_closing() or not self._awaiting_head:
            return
        if not b"".join(self._head_chunks).strip():
            # Only empty lines arrived: close without a response, after the running one if any.
            self._failed = True
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.keep_alive = False
            else:
                self.transport.close()
            return
        timeout = self.settings.head_timeout
        self._reject_head(408, "Request Timeout", f"request head not received within {duration_text(timeout)}", False)

    # Writing.

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._drain_waiters and self.transport.get_write_buffer_size() == 0:
            self._wake_drain_waiters()

    async def wait_drained(self, stall_timeout: float) -> bool:
        """Wait until the transport has passed every byte written so far to the kernel.

        Returns ``True`` once the buffer is empty, or once the connection has
        closed cleanly after emptying it. Returns ``False`` when the
        connection fails first, or when the buffer does not shrink for
        ``stall_timeout`` seconds (0: no limit).

        NOTE: over TLS the buffer is the TLS layer's: up to the TCP transport's
        high-water mark (64 KiB by default) and what was written last may
        still wait below it.
        """
        transport = self.transport
        if not self.lost and transport.get_write_buffer_size() > 0:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            # With both marks at 0 the transport pauses the protocol now and resumes it only once
            # the buffer is empty, so resume_writing marks the moment the last byte left.
            transport.set_write_buffer_limits(high=0, low=0)
            try:
                if not await self._await_progress(waiter, stall_timeout):
                    return False
            finally:
                self._drain_waiters.remove(waiter)
                if not self._drain_waiters and not self.lost:
                    transport.set_write_buffer_limits()
        # A write that failed inside send() closes the transport at once and reports the
        # error with connection_lost on the next loop turn, so that turn must pass first.
        await asyncio.sleep(0)
        return self.lost_error is None and (self.lost or transport.get_write_buffer_size() == 0)

    async def _await_progress(self, waiter: asyncio.Future[None], stall_timeout: float) -> bool:
        # False when the buffer kept its size, or grew, for a whole stall_timeout.
        while not waiter.done():
            before = self.transport.get_write_buffer_size()
            done, _ = await asyncio.wait({waiter}, timeout=stall_timeout if stall_timeout > 0 else None)
            if not done and not self.lost and self.transport.get_write_buffer_size() >= before:
                return False
        return True

    def _wake_drain_waiters(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # llhttp callbacks.

    def on_headers_complete(self) -> None:
        hosts = sum(1 for name, _ in self.headers if name == b"host")
        if hosts > 1:
            # RFC 9112, section 3.2: a request with more than one Host field line gets 400.
            raise HeadRejected(f"the request has {hosts} Host headers: send exactly one")
        info = RequestInfo(self.url, self)
        self.scope["extensions"] = {EXTENSION_KEY: {"request": info}}
        if is_chunked(self.headers):
            self._start_raw_body(info)
        super().on_headers_complete()
        self.request_info = info
        self._awaiting_head = False
        self._cancel_head_timer()
        self._head_chunks = []
        self._head_size = 0

    def _start_raw_body(self, info: RequestInfo) -> None:
        # The head ends inside the chunk being fed, which is the last of _head_chunks. Where
        # a pipelined request left its tail in the chunks, the start is unknown: keep nothing.
        if not self._head_starts_chunks:
            return
        head = b"".join(self._head_chunks)
        end = head_length(head)
        if end is None:
            return
        raw = RawBody(self.settings.max_head_size)
        raw.add(head[end:])
        info.raw_body = self._raw_body = raw

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began_in_feed = True
        self._chunk_guard.message_begin()

    def on_body(self, body: bytes) -> None:
        self._chunk_guard.body(len(body))
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._chunk_guard.chunk_header()

    def on_chunk_complete(self) -> None:
        self._chunk_guard.chunk_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._raw_body = None
        self._awaiting_head = True
        self._began_in_feed = False
        self._ended_in_feed = True
