"""The SMTP listener: aiosmtpd's protocol on the server's own event loop.

Ports: ``-smtp-port`` and ``-smtps-port`` speak plain SMTP and offer STARTTLS
when a certificate is loaded. ``-smtp-autotls-port`` is implicit TLS and is
only bound when a certificate is loaded. The certificate is read for each new
connection, so a renewed one applies without a restart.

When an interaction is recorded:

* An SMTP transaction runs from ``MAIL`` to its end: the end of ``DATA``,
  ``RSET``, a new ``MAIL``, ``HELO``/``EHLO``, ``STARTTLS``, ``QUIT``, or the
  connection dropping or timing out, whichever comes first.
* Each ``RCPT`` (and ``VRFY``) domain is searched for registered ids, over
  every window of every label, case-insensitively. A transaction becomes
  exactly one interaction per correlation id it matched, recorded when it
  ends, so an address-verification callout that never sends ``DATA`` is
  recorded too.
* The record's ``raw-request`` is upstream's synthetic ``Received:`` header
  plus the message when ``DATA`` completed. Otherwise it is the envelope
  transcript: the ``HELO``/``EHLO`` line and the client's command lines of
  the transaction, parameters included. With a message, the transcript is
  kept in ``smtp-envelope``. ``tls``, ``truncated`` and ``nonstandard-syntax``
  are added when true.
* ``VRFY`` answers 252. Outside a transaction a matching ``VRFY`` is
  recorded at once; inside one it joins the transaction.
* With ``-wildcard``, every recipient (and ``VRFY`` argument) under a
  configured domain also becomes one ``tlddata`` record whose ids are
  ``@<domain part>``.

NOTE: a client that stops after ``RCPT`` without closing is recorded only
when the idle timeout (``smtp_idle_timeout``) closes the connection.

Limits: command lines over ``smtp_max_line_length`` get ``500`` and the
connection is closed; a message keeps its first ``max_request_size`` bytes
and the rest is read and discarded up to the terminator, then a message over
``smtp_max_message_size`` gets ``552`` (it is still recorded, marked
truncated). ``SIZE`` is advertised and a ``MAIL ... SIZE=`` over it gets
``552`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from interactsh.config import ServerConfig
from interactsh.listeners.smtp_protocol import InteractshSMTP, SmtpShared
from interactsh.recording import Recorder
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.smtp")

# How long close() lets open connections finish their transactions.
CLOSE_TIMEOUT = 5.0


class SmtpListener:
    """The bound SMTP servers and their open connections."""

    def __init__(self, servers: dict[str, asyncio.Server], shared: SmtpShared) -> None:
        self.servers = servers
        self.shared = shared
        self.ports: dict[str, int] = {name: _bound_port(server) for name, server in servers.items()}

    async def close(self) -> None:
        """Stop accepting, close every connection (recording open transactions) and wait for them."""
        for server in self.servers.values():
            server.close()
        for connection in list(self.shared.connections):
            connection.close()
        if self.shared.connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.shared.idle.wait(), CLOSE_TIMEOUT)
        for connection in list(self.shared.connections):
            abort = getattr(connection.transport, "abort", None)
            if abort is not None:
                abort()
        for server in self.servers.values():
            await server.wait_closed()


async def start_smtp(config: ServerConfig, recorder: Recorder, tls: TlsProvider) -> SmtpListener:
    """Bind the SMTP ports; raise ``OSError`` naming the port when one cannot be bound."""
    loop = asyncio.get_running_loop()
    shared = SmtpShared(config, recorder, tls)
    plan = [("smtp", "-smtp-port", config.smtp_port, False), ("smtps", "-smtps-port", config.smtps_port, False)]
    if tls.context is not None:
        plan.append(("smtp-autotls", "-smtp-autotls-port", config.smtp_autotls_port, True))
    servers: dict[str, asyncio.Server] = {}
    try:
        for name, flag, port, implicit_tls in plan:
            factory = functools.partial(InteractshSMTP, shared, implicit_tls=implicit_tls, loop=loop)
            try:
                servers[name] = await loop.create_server(factory, config.listen_ip, port)
            except OSError as error:
                raise OSError(
                    error.errno,
                    f"could not listen for SMTP on {config.listen_ip} port {port}: {error.strerror}; "
                    f"choose another port with {flag}",
                ) from None
    except BaseException:
        for server in servers.values():
            server.close()
        raise
    listener = SmtpListener(servers, shared)
    log.debug("SMTP ports: %s", listener.ports)
    return listener


def _bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
