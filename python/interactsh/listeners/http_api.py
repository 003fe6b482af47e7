"""The client API: ``/register``, ``/poll``, ``/deregister`` and ``/metrics``.

Each route is a raw ASGI app so that the poll route controls when its reply
counts as sent. Every route sends upstream's CORS headers and responds to
OPTIONS with 204 before anything else. When a token is configured, a request
whose Authorization header is not exactly the token gets 401 with an empty body.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from interactsh.config import ServerConfig
from interactsh.errors import (
    AlreadyRegisteredError,
    InteractshError,
    InvalidCorrelationIdError,
    SessionNotFoundError,
    StoreFullError,
)
from interactsh.listeners.http_io import (
    JSON_HEADERS,
    Headers,
    client_address,
    cors_headers,
    encode_headers,
    go_json,
    header_value,
    query_params,
    read_body,
    reply_delivered,
    send_paced,
    send_response,
)
from interactsh.listeners.http_metrics import metrics_document
from interactsh.listeners.http_prometheus import PROMETHEUS_CONTENT_TYPE, prometheus_text
from interactsh.listeners.http_protocol import duration_text
from interactsh.listeners.http_ratelimit import RateLimiter
from interactsh.memory import report_of
from interactsh.recording import Recorder
from interactsh.store.base import AES_MODES

log = logging.getLogger("interactsh.http")

NOT_FOUND = "could not get correlation-id from cache"
ALREADY_EXISTS = "correlation-id provided already exists"
# Seconds a client should wait before registering again when the store is full.
STORE_FULL_RETRY_AFTER = 60
# Bytes of a poll reply per write, so that the unsent rest stays countable in the transport's buffer.
POLL_WRITE_PIECE = 64 * 1024


class JsonBodyError(InteractshError, ValueError):
    """The request body is not the JSON object the route expects."""


class ApiContext:
    """State shared by the API routes: configuration, store, counters and rate limits."""

    def __init__(self, config: ServerConfig, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.store = recorder.store
        self.counters = recorder.counters
        self.cors: Headers = encode_headers(cors_headers(config))
        self.json_headers: Headers = self.cors + JSON_HEADERS
        token = config.auth_token
        self.token = token.encode("utf-8") if token else None
        self.register_limiter = RateLimiter(config.http_register_rate)
        self.failure_limiter = RateLimiter(config.http_failure_rate)

    def authorized(self, scope: Scope) -> bool:
        """Tell whether the request may use the API: no token configured, or exactly the token."""
        if self.token is None:
            return True
        return hmac.compare_digest(header_value(scope, b"authorization") or b"", self.token)


class ApiRoute:
    """Base of the API routes: CORS, OPTIONS, authentication and unexpected errors."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self.config = context.config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "OPTIONS":
            await send_response(send, 204, self.context.cors)
            return
        if not self.context.authorized(scope):
            await send_response(send, 401, self.context.cors)
            return
        started = False

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.handle(scope, receive, tracked_send)
        except Exception:
            log.exception("%s - %s %s failed", client_address(scope, self.config), scope["method"], scope["path"])
            if not started:
                await self.send_json(tracked_send, 500, {"error": "internal server error: see the server log"})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one authenticated request that is not OPTIONS."""
        raise NotImplementedError

    async def send_json(self, send: Send, status: int, document: dict[str, Any], extra: Headers | None = None) -> None:
        """Send a JSON reply as upstream's ``jsonBody`` does."""
        await send_response(send, status, self.context.json_headers + (extra or []), go_json(document))

    async def send_error(self, send: Send, status: int, message: str, extra: Headers | None = None) -> None:
        """Send ``{"error": message}``."""
        await self.send_json(send, status, {"error": message}, extra)

    async def send_rate_limited(self, send: Send, limiter: RateLimiter, address: str) -> None:
        """Send 429 with the seconds until ``address`` may try again."""
        seconds = limiter.retry_after(address)
        message = f"too many requests from {address}: retry after {duration_text(seconds)}"
        await self.send_error(send, 429, message, [(b"retry-after", str(seconds).encode("ascii"))])

    async def read_json_fields(
        self, scope: Scope, receive: Receive, send: Send, keys: tuple[str, ...]
    ) -> dict[str, str] | None:
        """Read the body as a JSON object and return the string fields ``keys``.

        On any problem this sends the error reply itself and returns ``None``.
        """
        limit = self.config.max_register_body
        close: Headers = [(b"connection", b"close")]
        if _declared_length(scope) > limit:
            await self.send_error(send, 413, f"request body is over {limit} bytes: send a smaller body", close)
            return None
        body = await read_body(scope, receive, limit, self.config.http_body_timeout, stop_after=limit)
        if body.disconnected:
            return None
        if body.parse_error is not None:
            await self.send_error(
                send, 400, f"could not decode json body: invalid HTTP body: {body.parse_error}", close
            )
            return None
        if body.timed_out:
            seconds = self.config.http_body_timeout
            await self.send_error(send, 408, f"request body not received within {duration_text(seconds)}", close)
            return None
        if body.size > limit:
            await self.send_error(send, 413, f"request body is over {limit} bytes: send a smaller body", close)
            return None
        try:
            return decode_json_fields(body.data, keys)
        except JsonBodyError as error:
            await self.send_error(send, 400, f"could not decode json body: {error}")
            return None


class RegisterRoute(ApiRoute):
    """``/register``: create a session, or refresh it when the secret matches."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = self.context
        address = client_address(scope, self.config)
        if not context.register_limiter.allow(address):
            await self.send_rate_limited(send, context.register_limiter, address)
            return
        fields = await self.read_json_fields(
            scope, receive, send, ("correlation-id", "secret-key", "public-key", "aes-mode")
        )
        if fields is None:
            return
        # Upstream counts every decoded registration attempt, successful or not.
        context.counters.sessions += 1
        mode = fields["aes-mode"] or None
        if mode is not None and mode not in AES_MODES:
            await self.send_error(
                send, 400, f"could not set id and public key: aes-mode {mode!r} is invalid: use ctr or cfb"
            )
            return
        secret_problem = self.secret_problem(fields["secret-key"])
        if secret_problem is not None:
            await self.send_error(send, 400, f"could not set id and public key: {secret_problem}")
            return
        admission = context.recorder.admission
        if admission.reject_registrations and not context.store.contains(fields["correlation-id"]):
            # Refreshing a live session costs no memory, so only new sessions are rejected.
            admission.rejected_registrations += 1
            retry = [(b"retry-after", str(STORE_FULL_RETRY_AFTER).encode("ascii"))]
            message = "could not set id and public key: the server is low on memory and accepts no new sessions"
            await self.send_error(send, 503, f"{message}: retry after {STORE_FULL_RETRY_AFTER} seconds", retry)
            return
        try:
            context.store.register(fields["correlation-id"], fields["secret-key"], fields["public-key"], mode)
        except AlreadyRegisteredError:
            await self.send_error(send, 400, f"could not set id and public key: {ALREADY_EXISTS}")
            return
        except StoreFullError as error:
            retry = [(b"retry-after", str(STORE_FULL_RETRY_AFTER).encode("ascii"))]
            await self.send_error(send, 503, f"could not set id and public key: {error}", retry)
            return
        except (InteractshError, ValueError) as error:
            log.debug("%s - registration rejected: %s", address, error)
            await self.send_error(send, 400, f"could not set id and public key: {error}")
            return
        await self.send_json(send, 200, {"message": "registration successful"})

    def secret_problem(self, secret: str) -> str | None:
        """Return why ``secret`` cannot protect a session, or ``None`` when it can."""
        # Every poll and deregistration must present the secret, so a session without one is unreachable.
        if not secret:
            return "secret-key is missing: send the client secret"
        limit = self.config.max_secret_length
        if len(secret) > limit:
            return f"secret-key is {len(secret)} characters long, over the maximum of {limit}: send a shorter secret"
        return None


class PollRoute(ApiRoute):
    """``/poll``: send the session's next page and remove it only once the reply was handed over."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = self.context
        # Reversed, so that a repeated parameter keeps its first value, as Go's Query().Get does.
        params = dict(reversed(query_params(scope)))
        correlation_id = params.get("id", "")
        secret = params.get("secret", "")
        if not correlation_id:
            await self.send_error(send, 400, "no id specified for poll")
            return
        if not secret:
            await self.send_error(send, 400, "no secret specified for poll")
            return

        address = client_address(scope, self.config)
        if context.failure_limiter.exhausted(address):
            await self.send_rate_limited(send, context.failure_limiter, address)
            return
        try:
            reply = context.store.poll(
                correlation_id, secret, extra=context.token is not None, tlddata=self.config.wildcard
            )
        except (SessionNotFoundError, InvalidCorrelationIdError):
            log.debug("%s - poll for %r failed: unknown id or wrong secret", address, correlation_id[:64])
            context.failure_limiter.allow(address)
            await self.send_error(send, 400, f"could not get interactions: {NOT_FOUND}")
            return

        headers = context.cors + [(b"content-type", b"text/plain; charset=utf-8")]
        try:
            timeout = self.config.http_write_timeout
            sent = await send_paced(scope, send, headers, reply.body, piece=POLL_WRITE_PIECE, stall_timeout=timeout)
        except Exception:
            log.warning(
                "%s - poll reply for %s not sent, its items stay queued", address, correlation_id, exc_info=True
            )
            return
        if scope["method"] == "HEAD":
            # The reply to HEAD carries no body, so it delivered nothing.
            return
        # send() returns once a piece is in the transport's buffer. The items go only after
        # the buffer has emptied into the kernel, so a client that resets the connection
        # while the reply is still being written gets them again from its next poll.
        if not sent or not await reply_delivered(scope, timeout):
            log.debug("%s - poll reply for %s not delivered, its items stay queued", address, correlation_id)
            return
        context.store.commit(reply)


class DeregisterRoute(ApiRoute):
    """``/deregister``: remove a session when the secret matches."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = self.context
        address = client_address(scope, self.config)
        if context.failure_limiter.exhausted(address):
            await self.send_rate_limited(send, context.failure_limiter, address)
            return
        fields = await self.read_json_fields(scope, receive, send, ("correlation-id", "secret-key"))
        if fields is None:
            return
        try:
            context.store.deregister(fields["correlation-id"], fields["secret-key"])
        except (SessionNotFoundError, InvalidCorrelationIdError):
            log.debug(
                "%s - deregistration of %r failed: unknown id or wrong secret", address, fields["correlation-id"][:64]
            )
            # Unlike upstream, a failed deregistration leaves the sessions gauge alone,
            # so a client without the secret cannot move it.
            context.failure_limiter.allow(address)
            await self.send_error(send, 400, f"could not remove id: {NOT_FOUND}")
            return
        context.counters.sessions -= 1
        await self.send_json(send, 200, {"message": "deregistration successful"})


class MetricsRoute(ApiRoute):
    """``/metrics``: upstream's counters and runtime figures, plus the store's and memory statistics.

    ``?format=prometheus`` returns the same figures in the Prometheus text format.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = self.context
        output_format = dict(reversed(query_params(scope))).get("format", "json")
        if output_format not in ("json", "prometheus"):
            await self.send_error(send, 400, f"format {output_format[:64]!r} is invalid: use json or prometheus")
            return
        stats = context.store.stats()
        memory = report_of(context.recorder)
        if output_format == "json":
            await self.send_json(send, 200, metrics_document(context.counters, stats, memory))
            return
        headers = context.cors + [(b"content-type", PROMETHEUS_CONTENT_TYPE.encode("ascii"))]
        await send_response(send, 200, headers, prometheus_text(context.counters, stats, memory))


def decode_json_fields(data: bytes, keys: tuple[str, ...]) -> dict[str, str]:
    """Decode a JSON object and return the string values of ``keys`` ("" when missing or null).

    Like Go's decoder, this reads the first JSON value and ignores what
    follows it, and falls back to a case-insensitive key match.
    """
    text = data.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise JsonBodyError("the request body is empty")
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as error:
        raise JsonBodyError(str(error)) from None
    except RecursionError:
        raise JsonBodyError("the JSON value is nested too deeply") from None
    if not isinstance(value, dict):
        raise JsonBodyError(f"expected a JSON object, got {_json_type(value)}")
    folded = {key.lower(): item for key, item in value.items()}
    fields: dict[str, str] = {}
    for key in keys:
        item = value[key] if key in value else folded.get(key)
        if item is None:
            fields[key] = ""
        elif isinstance(item, str):
            fields[key] = item
        else:
            raise JsonBodyError(f"{key!r} must be a string, got {_json_type(item)}")
    return fields


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string" if isinstance(value, str) else "null"


def _declared_length(scope: Scope) -> int:
    value = header_value(scope, b"content-length")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
