"""The DNS listener: UDP and TCP on one port, answering for the configured domains.

TCP follows RFC 7766: a two-octet length prefix frames each message, a
prefix and its message may arrive in any number of segments, and several
queries may arrive in one segment (each gets its reply, in order). A
connection is closed when no complete message has arrived for
``dns_tcp_idle_timeout`` seconds, so half-sent and idle connections do not
pile up. Connections are capped per source address and in total, and a
connection never buffers more than one maximum-size message: reading pauses
while the peer does not read its replies.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
from typing import Any, cast

from interactsh.config import ServerConfig
from interactsh.listeners.binding import bind_error
from interactsh.listeners.connection_limits import OpenConnections
from interactsh.listeners.dns_answer import DnsAnswerer
from interactsh.listeners.dns_handler import DnsHandler
from interactsh.listeners.dns_records import load_custom_records
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.dns")

LENGTH_PREFIX = struct.Struct(">H")
MAX_TCP_FRAME = LENGTH_PREFIX.size + 65_535
INITIAL_TCP_BUFFER = 1024
TCP_WRITE_HIGH_WATER = 256 * 1024
TCP_BACKLOG = 1024
# With -dns-port 0 the UDP port is chosen first; TCP may find it taken.
PORT_ATTEMPTS = 20


def client_address(address: Any) -> str:
    """Return the peer's IP address, with an IPv4-mapped IPv6 address in its IPv4 form."""
    host = str(address[0]) if address else ""
    if host.startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


class _UdpProtocol(asyncio.DatagramProtocol):
    """Replies to each datagram with at most one datagram."""

    def __init__(self, handler: DnsHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint hands out these

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.handler.handle(data, client_address(addr), "udp")
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (port unreachable...) land here.
        log.debug("UDP socket error: %s", exc)


class _TcpConnection(asyncio.BufferedProtocol):
    """One TCP connection, reading length-prefixed messages into a bounded buffer."""

    def __init__(self, listener: DnsListener) -> None:
        self.listener = listener
        self.handler = listener.handler
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self._buffer = bytearray(INITIAL_TCP_BUFFER)
        self._start = 0  # the first byte not yet handled
        self._end = 0  # the end of the received bytes
        self._writing_paused = False
        self._last_message = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # a stream server hands out full transports
        self.transport = stream
        self.client_ip = client_address(stream.get_extra_info("peername"))
        if not self.listener.admit(self):
            stream.abort()
            return
        stream.set_write_buffer_limits(high=TCP_WRITE_HIGH_WATER)
        self._last_message = self.listener.loop.time()
        self._schedule_idle_check(self.listener.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.release(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._buffer = bytearray()
        self._start = self._end = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self._handle_messages()

    def eof_received(self) -> bool:
        return False  # close once the replies already written are flushed

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._handle_messages()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _handle_messages(self) -> None:
        """Answer every complete message in the buffer, then make room for the next one."""
        buffer = self._buffer
        while not self._writing_paused and self._end - self._start >= LENGTH_PREFIX.size:
            (length,) = LENGTH_PREFIX.unpack_from(buffer, self._start)
            if length == 0:
                self.handler.counters.dns_malformed += 1
                log.debug("%s: closing DNS TCP connection after a zero-length message", self.client_ip)
                self.abort()
                return
            frame_end = self._start + LENGTH_PREFIX.size + length
            if frame_end > self._end:
                break
            message = bytes(buffer[self._start + LENGTH_PREFIX.size : frame_end])
            self._start = frame_end
            self._last_message = self.listener.loop.time()
            reply = self.handler.handle(message, self.client_ip, "tcp")
            if reply is not None and self.transport is not None and not self.transport.is_closing():
                self.transport.write(LENGTH_PREFIX.pack(len(reply)) + reply)
        self._make_room()

    def _make_room(self) -> None:
        """Make sure the buffer can take the rest of the pending message.

        When it cannot, the pending bytes move to the front of a fresh buffer
        sized for the whole message: the buffer is replaced, not resized in
        place, because the event loop may still hold a view of the old one.
        """
        pending = self._end - self._start
        if pending == 0:
            self._start = self._end = 0
            if len(self._buffer) != INITIAL_TCP_BUFFER:
                self._buffer = bytearray(INITIAL_TCP_BUFFER)
            return
        needed = LENGTH_PREFIX.size
        if pending >= LENGTH_PREFIX.size:
            needed += LENGTH_PREFIX.unpack_from(self._buffer, self._start)[0]
        if self._start + needed <= len(self._buffer):
            return
        fresh = bytearray(max(needed, pending, INITIAL_TCP_BUFFER))
        fresh[:pending] = self._buffer[self._start : self._end]
        self._buffer = fresh
        self._start, self._end = 0, pending

    def _schedule_idle_check(self, delay: float) -> None:
        self._idle_timer = self.listener.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        timeout = self.listener.idle_timeout
        remaining = self._last_message + timeout - self.listener.loop.time()
        if remaining > 0:
            self._schedule_idle_check(remaining)
            return
        log.debug("%s: closing DNS TCP connection idle for %.1f s", self.client_ip, timeout)
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # the peer is not reading, so close() would wait forever
        else:
            self.transport.close()


class DnsListener:
    """The bound UDP endpoint and TCP server; ``udp_port`` and ``tcp_port`` are the same number."""

    def __init__(self, config: ServerConfig, handler: DnsHandler, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.handler = handler
        self.loop = loop
        self.idle_timeout = config.dns_tcp_idle_timeout
        self.udp_port = 0
        self.tcp_port = 0
        self._udp_transport: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.AbstractServer | None = None
        self._connections: OpenConnections[_TcpConnection] = OpenConnections(
            "DNS TCP",
            config.dns_tcp_max_connections,
            config.dns_tcp_max_connections_per_ip,
            "-dns-tcp-max-connections-per-ip",
            log,
        )

    @property
    def answerer(self) -> DnsAnswerer:
        return self.handler.answerer

    @property
    def tcp_connections(self) -> int:
        return len(self._connections)

    def admit(self, connection: _TcpConnection) -> bool:
        """Register a new TCP connection, or return ``False`` when a connection cap is reached."""
        return self._connections.admit(connection, connection.client_ip)

    def release(self, connection: _TcpConnection) -> None:
        self._connections.release(connection)

    async def bind(self) -> None:
        """Bind UDP and TCP on the same port; raise ``OSError`` naming the address when that fails."""
        host, requested = self.config.listen_ip, self.config.dns_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        attempts = PORT_ATTEMPTS if requested == 0 else 1
        for attempt in range(1, attempts + 1):
            udp_socket = _bound_socket(family, socket.SOCK_DGRAM, host, requested)
            port = udp_socket.getsockname()[1]
            try:
                tcp_socket = _bound_socket(family, socket.SOCK_STREAM, host, port)
            except OSError as error:
                udp_socket.close()
                if requested != 0 or error.errno != errno.EADDRINUSE or attempt == attempts:
                    raise
                continue
            break
        handler = self.handler
        try:
            transport, _ = await self.loop.create_datagram_endpoint(lambda: _UdpProtocol(handler), sock=udp_socket)
            self._udp_transport = transport
            self._tcp_server = await self.loop.create_server(
                lambda: _TcpConnection(self), sock=tcp_socket, backlog=TCP_BACKLOG
            )
        except BaseException:
            # Closing a socket twice is harmless, so both are closed whether or not a transport owns them.
            await self.close()
            udp_socket.close()
            tcp_socket.close()
            raise
        self.udp_port = self.tcp_port = port

    async def close(self) -> None:
        """Stop both transports and close every open TCP connection."""
        if self._udp_transport is not None:
            self._udp_transport.close()
            self._udp_transport = None
        server, self._tcp_server = self._tcp_server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.abort()
        if server is not None:
            await server.wait_closed()
        # Let the transports run their connection_lost callbacks.
        await asyncio.sleep(0)


def _bound_socket(family: socket.AddressFamily, kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            # Accept IPv4 too on "::", as the UDP default of Linux does.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if kind == socket.SOCK_STREAM:
            # Only for TCP: on UDP, SO_REUSEADDR would let a second server share the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        protocol = "TCP" if kind == socket.SOCK_STREAM else "UDP"
        raise bind_error(error, f"DNS {protocol}", host, port, "-dns-port") from error
    return sock


async def start_dns(config: ServerConfig, recorder: Recorder) -> DnsListener:
    """Load the custom records, bind UDP and TCP, and return the running listener.

    Raises ``CustomRecordsError`` for an invalid ``-custom-records`` file and
    ``OSError`` when the port cannot be bound.
    """
    records = load_custom_records(config.custom_records)
    handler = DnsHandler(recorder, DnsAnswerer(config, records))
    listener = DnsListener(config, handler, asyncio.get_running_loop())
    await listener.bind()
    return listener
