"""ASGI reading and writing helpers shared by the API routes and the capture route."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from interactsh.config import ServerConfig
from interactsh.listeners.http_protocol import request_info

Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [
    (b"content-type", b"application/json; charset=utf-8"),
    (b"x-content-type-options", b"nosniff"),
]
# Go's JSON encoder escapes these so that the text is safe inside HTML and JavaScript.
_GO_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def cors_headers(config: ServerConfig) -> list[tuple[str, str]]:
    """Return the CORS headers that every route sends, as upstream's middleware sets them."""
    return [
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
        ("Access-Control-Allow-Origin", config.acao_url),
    ]


def encode_headers(headers: list[tuple[str, str]]) -> Headers:
    """Encode text headers for ASGI; text from :func:`as_text` gets its original bytes back."""
    return [(key.encode("latin-1"), value.encode("utf-8", "surrogateescape")) for key, value in headers]


def go_json(document: Any) -> bytes:
    """Serialise like Go's ``json.Encoder``: compact, HTML-safe escapes, a trailing newline."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":")).translate(_GO_JSON_ESCAPES)
    return (text + "\n").encode("utf-8", "replace")


async def send_response(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """Send a complete response, with a Content-Length unless the status forbids a body."""
    if status in (204, 304):
        framing: Headers = []
        body = b""
    else:
        framing = [(b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": status, "headers": headers + framing})
    await send({"type": "http.response.body", "body": body})


async def send_paced(
    scope: Scope, send: Send, headers: Headers, body: bytes, *, piece: int, stall_timeout: float
) -> bool:
    """Send a 200 response with a Content-Length in body messages of at most ``piece`` bytes.

    uvicorn writes each message only once the transport's buffer has room,
    so the unsent rest of the body stays out of the transport. Over TLS this
    matters: the buffer size that the TLS transport reports covers only the
    TLS layer, which hands all it holds to the TCP transport at once. When
    one message waits more than ``stall_timeout`` seconds (0: no limit)
    because the client stopped reading, the connection is aborted and the
    result is ``False``.
    """
    framing = [(b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": 200, "headers": headers + framing})
    starts = range(0, len(body), piece) if body else range(1)
    for start in starts:
        end = start + piece
        message = {"type": "http.response.body", "body": body[start:end], "more_body": end < len(body)}
        try:
            # uvicorn waits for room before it writes anything, so a cancelled send wrote nothing.
            async with asyncio.timeout(stall_timeout if stall_timeout > 0 else None):
                await send(message)
        except TimeoutError:
            await abort_connection(scope)
            return False
    return True


async def abort_connection(scope: Scope) -> None:
    """Drop the client connection of this request without flushing what it has not sent."""
    info = request_info(scope)
    if info is None or info.connection.transport is None:
        return
    info.connection.transport.abort()
    # The transport reports the loss on the next loop turn. After that, uvicorn treats the client
    # as disconnected, instead of logging an app that returned without finishing its response.
    await asyncio.sleep(0)


def query_params(scope: Scope) -> list[tuple[str, str]]:
    """Return the decoded query parameters in order, as Go's ``URL.Query`` reads them.

    Percent-escapes that are not UTF-8 stay as lone surrogates, so
    :func:`~interactsh.listeners.http_dump.as_bytes` restores their bytes.
    """
    raw = scope.get("query_string", b"")
    if not raw:
        return []
    text = raw.decode("latin-1")
    return urllib.parse.parse_qsl(text, keep_blank_values=True, errors="surrogateescape")


def header_value(scope: Scope, name: bytes) -> bytes | None:
    """Return the first value of the request header ``name`` (lowercase), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def client_address(scope: Scope, config: ServerConfig) -> str:
    """Return the client address of a request: the origin IP header when set and present, else the peer IP."""
    if config.origin_ip_header:
        value = header_value(scope, config.origin_ip_header.lower().encode("latin-1"))
        if value:
            return value.decode("utf-8", "surrogateescape")
    client = scope.get("client")
    return str(client[0]) if client else ""


def connection_lost(scope: Scope) -> bool:
    """Tell whether the client connection of this request is known to be closed."""
    info = request_info(scope)
    return info is not None and info.connection.lost


async def reply_delivered(scope: Scope, stall_timeout: float) -> bool:
    """Wait until the response written so far has left the server; ``False`` if the connection failed first.

    "Left" means handed to the kernel: bytes in the kernel's send buffer can
    still be lost if the client resets the connection. The wait also ends
    with ``False`` when the buffer does not shrink for ``stall_timeout``
    seconds. Without the capture protocol's extension (another ASGI server)
    there is nothing to wait for.
    """
    info = request_info(scope)
    if info is None:
        return True
    return await info.connection.wait_drained(stall_timeout)


@dataclass
class Body:
    """A request body read up to a limit."""

    data: bytes
    size: int
    complete: bool
    timed_out: bool = False
    disconnected: bool = False
    parse_error: str | None = None

    @property
    def truncated(self) -> bool:
        """Tell whether bytes beyond ``data`` arrived and were discarded."""
        return self.size > len(self.data)


async def read_body(scope: Scope, receive: Receive, keep: int, timeout: float, stop_after: int | None = None) -> Body:
    """Read the request body, keeping the first ``keep`` bytes and discarding the rest.

    Reading stops when the body is complete, the client disconnects, the
    whole body has taken longer than ``timeout`` seconds, or more than
    ``stop_after`` bytes have arrived (``None``: read to the end).
    """
    kept = bytearray()
    size = 0
    complete = timed_out = disconnected = False
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                    break
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if len(kept) < keep:
                    kept += chunk[: keep - len(kept)]
                if not message.get("more_body", False):
                    complete = True
                    break
                if stop_after is not None and size > stop_after:
                    break
    except TimeoutError:
        timed_out = True
    info = request_info(scope)
    parse_error = info.parse_error if info is not None else None
    if parse_error is not None:
        complete = False
    return Body(bytes(kept), size, complete, timed_out, disconnected, parse_error)


async def wait_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds`` after the body was read; ``False`` as soon as the client disconnects."""
    if seconds <= 0:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    waiter = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=seconds)
    finally:
        if not waiter.done():
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
    if not done:
        return True
    if waiter.result()["type"] == "http.disconnect":
        return False
    # Any other message means the server does not report disconnects here: wait out the rest.
    await asyncio.sleep(max(deadline - loop.time(), 0))
    return True
