"""The LDAP listener: an asyncio protocol over the bounded BER reader.

Every operation gets upstream interactsh's reply (see ``ldap_replies``).
``ldap_recording`` decides what is recorded: one interaction per correlation
id found in the bind DN or search base DN, every operation in the token
bucket with ``-ldap``, and, when auth is on, binds and searches without an id
in the token bucket as unattributed contacts. ``ldap://<id>.<domain>/<id>``
gives full attribution. ``ldap://<id>.<domain>/a``, the usual JNDI payload,
puts the id only in DNS, so its LDAP contact is recorded unattributed.

Bounds: a connection buffers at most one message of ``ldap_max_message_size``
octets plus one received segment, and stops reading while the peer does not
read its replies. It is closed after ``ldap_idle_timeout`` seconds without a
complete message. Connections are capped per source address and in total. A
connection whose first octet is not 0x30 (a TLS ClientHello, an HTTP request)
is closed at once and counted as ``ldap_nonldap``. A malformed message gets
the notice of disconnection (RFC 4511 section 4.4.1) and the connection is
closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from interactsh.config import ServerConfig
from interactsh.listeners.ber import BerError, MessageReader, NotLdapError
from interactsh.listeners.connection_limits import OpenConnections
from interactsh.listeners.ldap_ops import (
    OID_START_TLS,
    ExtendedRequest,
    UnbindRequest,
    decode_message,
    describe,
    dn_to_scan,
)
from interactsh.listeners.ldap_recording import LdapRecorder
from interactsh.listeners.ldap_replies import notice_of_disconnection, replies_for, start_tls_response
from interactsh.recording import Recorder
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.ldap")

WRITE_HIGH_WATER = 256 * 1024
# How many leading octets of a non-LDAP connection the -ldap log keeps.
PROBE_PREFIX_SIZE = 16


def format_peer(address: Any) -> str:
    """Return ``ip:port`` as Go prints a TCP address: IPv6 in brackets, IPv4-mapped as IPv4."""
    if not address:
        return ""
    host, port = str(address[0]), address[1]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return f"{host}:{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return f"[{host}]:{port}"
        host = str(ip.ipv4_mapped)
    return f"{host}:{port}"


def describe_probe(prefix: bytes) -> str:
    """Name what a non-LDAP first segment most likely is."""
    if prefix[:1] == b"\x16":
        return "TLS handshake"
    if prefix[:1].isalpha():
        return "text (HTTP or another line protocol)"
    return "unknown"


class LdapListener:
    """The bound LDAP server and its open connections."""

    def __init__(self, config: ServerConfig, recorder: Recorder, tls: TlsProvider) -> None:
        self.config = config
        self.counters = recorder.counters
        self.records = LdapRecorder(recorder)
        self.tls = tls
        self.loop = asyncio.get_running_loop()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._connections: OpenConnections[LdapConnection] = OpenConnections(
            "LDAP",
            config.ldap_max_connections,
            config.ldap_max_connections_per_ip,
            "-ldap-max-connections-per-ip",
            log,
        )

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connections(self) -> list[LdapConnection]:
        """Return the open connections."""
        return list(self._connections)

    async def bind(self) -> None:
        """Listen on ``-listen-ip`` and ``-ldap-port``; raise ``OSError`` when the port cannot be bound."""
        self._server = await self.loop.create_server(
            lambda: LdapConnection(self), self.config.listen_ip, self.config.ldap_port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def admit(self, connection: LdapConnection) -> bool:
        """Register a connection, or return ``False`` when a connection cap is reached."""
        return self._connections.admit(connection, connection.ip)

    def release(self, connection: LdapConnection) -> None:
        """Forget a closed connection."""
        self._connections.release(connection)

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.abort()
        if server is not None:
            await server.wait_closed()
        # Let the transports run their connection_lost callbacks.
        await asyncio.sleep(0)


class LdapConnection(asyncio.Protocol):
    """One LDAP session: frames messages, replies to them in order and records them."""

    def __init__(self, listener: LdapListener) -> None:
        self.listener = listener
        self.config = listener.config
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.ip = ""
        self._reader = MessageReader(listener.config.ldap_max_message_size)
        self._pending: deque[bytes] = deque()
        self._first_octets = b""
        self._writing_paused = False
        self._upgrade_task: asyncio.Task[None] | None = None
        self._closing = False
        self._lost = False
        self._last_message = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def buffered(self) -> int:
        """Octets buffered for this connection: an incomplete message, queued messages and unsent replies."""
        queued = sum(len(data) for data in self._pending)
        unsent = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return self._reader.buffered + queued + unsent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server passes a Transport, though uvloop's does not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = format_peer(transport.get_extra_info("peername"))
        self.ip = self.peer.rsplit(":", 1)[0].strip("[]")
        if not self.listener.admit(self):
            self._closing = True
            self.transport.abort()
            return
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._last_message = self.listener.loop.time()
        self._schedule_idle_check(self.config.ldap_idle_timeout)
        log.debug("%s: LDAP connection opened", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.release(self)
        self._closing = True
        self._lost = True
        self._pending.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._upgrade_task is not None and not self._upgrade_task.done():
            self._upgrade_task.cancel()
        log.debug("%s: LDAP connection closed%s", self.peer, f" ({exc})" if exc else "")

    def data_received(self, data: bytes) -> None:
        if not self._closing:
            self._guarded(self._receive, data)

    def eof_received(self) -> bool:
        return False  # close once the replies already written are flushed

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._guarded(self._process_pending)

    def abort(self) -> None:
        """Close the connection at once, dropping unsent replies."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as error:  # one bad connection must never stop the listener
            log.error(
                "%s: failed to handle LDAP data (%s: %s); closing the connection",
                self.peer,
                type(error).__name__,
                error,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            self.abort()

    def _receive(self, data: bytes) -> None:
        if len(self._first_octets) < PROBE_PREFIX_SIZE:
            self._first_octets += data[: PROBE_PREFIX_SIZE - len(self._first_octets)]
        self._pending.extend(self._reader.feed(data))
        self._process_pending()

    def _process_pending(self) -> None:
        """Handle queued messages until none is left or replies must wait, then act on a framing error."""
        while self._pending and not (self._writing_paused or self._closing or self._upgrade_task is not None):
            self._last_message = self.listener.loop.time()
            self._handle(self._pending.popleft())
        error = self._reader.error
        if error is None or self._pending or self._closing:
            return
        if isinstance(error, NotLdapError) and self._reader.messages_read == 0:
            self._reject_probe(self._first_octets)
        else:
            self._disconnect(str(error))

    def _handle(self, data: bytes) -> None:
        try:
            message = decode_message(data)
            operation = message.operation
            if isinstance(operation, ExtendedRequest) and operation.name == OID_START_TLS:
                self.listener.counters.ldap += 1
                self._start_tls(message.message_id)
                return
            text, truncated = describe(operation, self.listener.records.recorder.admission.capture_limit)
        except BerError as error:
            self._disconnect(f"invalid LDAP message: {error}")
            return
        log.debug("%s: LDAP %s (message ID %d)", self.peer, text.partition("\n")[0], message.message_id)
        if isinstance(operation, UnbindRequest):
            self._close_gracefully()
            return
        self.listener.counters.ldap += 1
        self.listener.records.record_operation(self.peer, dn_to_scan(operation), text, truncated)
        self._write(b"".join(replies_for(message)))

    def _start_tls(self, message_id: int) -> None:
        context = self.listener.tls.context
        if context is None:
            self._write(start_tls_response(message_id, available=False))
            self._record_start_tls("StartTLS unavailable: no certificate is configured")
            return
        if self._pending or self._reader.buffered:
            # RFC 4511 section 4.14.1: nothing may follow StartTLS before its response.
            self._disconnect("data followed the StartTLS request before its response")
            return
        self._write(start_tls_response(message_id, available=True))
        # The ClientHello must reach the TLS layer, not this protocol, so reading waits for start_tls.
        if self.transport is not None:
            self.transport.pause_reading()
        self._upgrade_task = self.listener.loop.create_task(self._upgrade(context))

    async def _upgrade(self, context: ssl.SSLContext) -> None:
        transport = self.transport
        assert transport is not None
        try:
            upgraded = await self.listener.loop.start_tls(
                transport, self, context, server_side=True, ssl_handshake_timeout=self.config.ldap_idle_timeout
            )
        except asyncio.CancelledError:
            transport.abort()
            raise
        except Exception as error:  # noqa: BLE001  # the task has no caller, so every handshake failure ends here
            log.debug("%s: LDAP StartTLS handshake failed: %s", self.peer, error)
            self._guarded(self._record_start_tls, f"StartTLS Handshake error {error}")
            self.abort()
            return
        if upgraded is None:  # the connection closed during the handshake
            return
        self.transport = upgraded
        self._upgrade_task = None
        log.debug("%s: LDAP StartTLS handshake done", self.peer)
        self._guarded(self._record_start_tls, "StartTLS OK")
        self._guarded(self._process_pending)

    def _record_start_tls(self, result: str) -> None:
        if self.config.ldap:
            self.listener.records.record_shared(self.peer, f"Type=StartTLS\nResult={result}\n")

    def _reject_probe(self, prefix: bytes) -> None:
        kind = describe_probe(prefix)
        self.listener.counters.ldap_nonldap += 1
        log.debug("%s: closing non-LDAP connection (%s, first octets %s)", self.peer, kind, prefix.hex(" "))
        if self.config.ldap:
            text = f"Type=NonLDAP\nProbe={kind}\nFirstBytes={prefix.hex(' ')}\n"
            self.listener.records.record_shared(self.peer, text)
        self.abort()

    def _disconnect(self, reason: str) -> None:
        """Send the notice of disconnection and close, as RFC 4511 section 4.1.1 recommends for a broken session."""
        log.debug("%s: closing LDAP connection: %s", self.peer, reason)
        self._write(notice_of_disconnection(reason))
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        self._closing = True
        self._pending.clear()
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _schedule_idle_check(self, delay: float) -> None:
        self._idle_timer = self.listener.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self.transport is None or self._lost:
            return
        timeout = self.config.ldap_idle_timeout
        remaining = self._last_message + timeout - self.listener.loop.time()
        if remaining > 0:
            self._schedule_idle_check(remaining)
            return
        log.debug("%s: closing LDAP connection without a complete message for %.1f s", self.peer, timeout)
        if self._closing or self.transport.get_write_buffer_size():
            # The peer does not read its replies, so a graceful close would wait forever.
            self.abort()
        else:
            self._close_gracefully()


async def start_ldap(config: ServerConfig, recorder: Recorder, tls: TlsProvider) -> LdapListener:
    """Bind the LDAP listener and return it once it accepts connections."""
    listener = LdapListener(config, recorder, tls)
    await listener.bind()
    return listener
