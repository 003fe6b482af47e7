"""One SMTP connection: aiosmtpd's ``SMTP`` protocol with this server's rules.

aiosmtpd supplies the stream plumbing, the idle timer, the STARTTLS switch
(which discards plaintext pipelined before the handshake and resets the
session, as RFC 3207 section 4.2 requires) and the AUTH mechanisms. This
subclass replaces the command loop and the envelope verbs, because aiosmtpd
rejects the lenient ``RCPT`` forms senders use, keeps reading an endless
command line instead of closing, and drops a message that passes ``SIZE``
instead of keeping its beginning.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import ssl
import time
from asyncio import sslproto
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Session

from interactsh.config import ServerConfig
from interactsh.listeners.smtp_address import parse_path, parse_path_argument
from interactsh.listeners.smtp_data import MessageReader
from interactsh.listeners.smtp_transaction import Peer, Transaction
from interactsh.recording import Recorder
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.smtp")

IDENT = "interactsh ESMTP Service ready"
_MAX_ECHOED_CHARACTERS = 64


class Reply:
    """Reply lines, with RFC 3463 enhanced status codes."""

    SERVICE_CLOSING = "221 2.0.0 {domain} interactsh ESMTP Service closing transmission channel"
    TLS_READY = "220 2.0.0 Ready to start TLS"
    OK = "250 2.0.0 Ok"
    SENDER_OK = "250 2.1.0 Ok"
    RECIPIENT_OK = "250 2.1.5 Ok"
    QUEUED = "250 2.0.0 Ok: queued"
    CANNOT_VERIFY = "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"
    START_INPUT = "354 Start mail input; end with <CR><LF>.<CR><LF>"
    TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
    TOO_MANY_UNKNOWN = "421 4.7.0 Too many unrecognized commands, closing connection"
    LOCAL_ERROR = "451 4.3.0 Local error in processing"
    TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
    TLS_UNAVAILABLE = "454 4.7.0 TLS not available"
    UNRECOGNIZED = "500 5.5.2 Syntax error, command unrecognized"
    LINE_TOO_LONG = "500 5.5.2 Line too long"
    SYNTAX = "501 5.5.4 Syntax: {usage}"
    NOT_IMPLEMENTED = "502 5.5.1 Command not implemented"
    HELO_FIRST = "503 5.5.1 Error: send HELO or EHLO first"
    MAIL_FIRST = "503 5.5.1 Error: need MAIL command"
    RCPT_FIRST = "503 5.5.1 Error: need RCPT command"
    TLS_ACTIVE = "503 5.5.1 Error: TLS already active"
    SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"


@dataclass(eq=False)
class SmtpShared:
    """State that every connection of one listener shares."""

    config: ServerConfig
    recorder: Recorder
    tls: TlsProvider
    connections: set[InteractshSMTP] = field(default_factory=set)
    per_ip: Counter[str] = field(default_factory=Counter)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def add(self, connection: InteractshSMTP, ip: str) -> bool:
        """Register a connection; ``False`` when it is over the total or per-address connection cap."""
        self.connections.add(connection)
        self.idle.clear()
        self.per_ip[ip] += 1
        config = self.config
        return (
            len(self.connections) <= config.smtp_max_connections
            and self.per_ip[ip] <= config.smtp_max_connections_per_ip
        )

    def remove(self, connection: InteractshSMTP, ip: str) -> None:
        """Forget a closed connection."""
        self.connections.discard(connection)
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]
        if not self.connections:
            self.idle.set()


class QuietSession(Session):
    """aiosmtpd's session without its deprecation warning on every AUTH."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.greeting: str | None = None
        self.user_name: Any = None

    @property
    def login_data(self) -> Any:
        return self.user_name

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self.user_name = value


def accept_any_credentials(*_: Any) -> AuthResult:
    """Accept every AUTH, as upstream does, so that a sender configured with credentials still delivers."""
    return AuthResult(success=True)


class _NoHooks:
    """aiosmtpd handler with no hooks: every verb is implemented by the protocol itself."""


class InteractshSMTP(SMTP):
    """One SMTP connection of the interactsh listener."""

    def __init__(self, shared: SmtpShared, *, implicit_tls: bool, loop: asyncio.AbstractEventLoop) -> None:
        config = shared.config
        self.shared = shared
        self.implicit_tls = implicit_tls
        self.server_name = config.domains[0]
        self.transaction: Transaction | None = None
        self.line = ""
        self.ip = "unknown"
        self.registered = False
        self.over_limit = False
        self.lost = False
        self.closing = False
        self.unknown_commands = 0
        self.tls_waiter: asyncio.Future[None] | None = None
        # SMTP.__init__ reads this to size its StreamReader, which bounds
        # every command line and every chunk of a message.
        self.line_length_limit = config.smtp_max_line_length
        super().__init__(
            _NoHooks(),
            data_size_limit=config.smtp_max_message_size,
            enable_SMTPUTF8=True,
            hostname=self.server_name,
            ident=IDENT,
            tls_context=None if implicit_tls else shared.tls.context,
            timeout=config.smtp_idle_timeout,
            auth_require_tls=False,
            authenticator=accept_any_credentials,
            loop=loop,
        )

    def _create_session(self) -> Session:
        return QuietSession(self.loop)

    # Connection life cycle.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if not first:
            return
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self.registered = True
        self.over_limit = not self.shared.add(self, self.ip)
        log.debug("%s connected", self.ip)
        if self.implicit_tls and not self.over_limit:
            # Switch before the loop can deliver any byte of the ClientHello
            # to the plaintext reader.
            context = self.shared.tls.context
            if context is None:
                self.over_limit = True
            else:
                self.tls_waiter = self._switch_to_tls(context)

    def connection_lost(self, error: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self._end_transaction()
        if self.registered:
            self.shared.remove(self, self.ip)
        log.debug("%s disconnected", self.ip)
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        # aiosmtpd cancels the command loop here, which drops commands that
        # arrived together with the end of the stream ("printf ... | nc").
        # Feeding EOF lets the loop reply to them first and then close.
        self._reader.feed_eof()
        return self.session is None or self.session.ssl is None

    def _timeout_cb(self) -> None:
        log.debug("%s idle for %.0f s, closing", self.ip, self._timeout_duration)
        self.close()

    def close(self) -> None:
        """Close the connection; the transaction ends in ``connection_lost``."""
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _set_rset_state(self) -> None:
        # Called on HELO, EHLO, RSET and the TLS switch: each ends the transaction.
        self._end_transaction()
        super()._set_rset_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated

    # TLS.

    def _switch_to_tls(self, context: ssl.SSLContext) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = self.loop.create_future()
        tls_protocol = sslproto.SSLProtocol(
            self.loop,
            self,
            context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=math.ceil(self.shared.config.smtp_idle_timeout),
        )
        self._tls_protocol = tls_protocol
        self._original_transport = self.transport
        assert self._original_transport is not None
        self._original_transport.set_protocol(tls_protocol)
        self.transport = tls_protocol._app_transport
        tls_protocol.connection_made(self._original_transport)
        return waiter

    async def _finish_tls(self, waiter: asyncio.Future[None]) -> bool:
        failure: BaseException | str
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - every handshake failure ends the connection alike
            failure = error
        else:
            # A connection closed during the handshake also wakes the waiter
            # without an error; only the TLS session that connection_made
            # installed proves the handshake finished.
            if self.session is not None and self.session.ssl is not None:
                return True
            failure = "connection closed"
        # The SSL protocol reports no connection loss before the handshake
        # finished, so the connection is torn down here.
        log.debug("%s TLS handshake failed: %s", self.ip, failure)
        self.close()
        if self._original_transport is not None:
            self._original_transport.close()
        self.connection_lost(failure if isinstance(failure, Exception) else None)
        return False

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True, log_client_response: bool = False
    ) -> Any:
        """Send an AUTH challenge and read the reply, closing on a reply line over the limit."""
        try:
            # The client's reply carries credentials: it is never logged.
            return await super().challenge_auth(challenge, encode_to_b64, log_client_response=False)
        except ValueError:
            # StreamReader.readline raises ValueError for a line over its limit.
            await self.push(Reply.LINE_TOO_LONG)
            self.close()
            return MISSING

    async def auth_CRAM__MD5(self, _: object, args: list[str]) -> AuthResult:
        """Run CRAM-MD5 (RFC 2195) and accept whatever digest comes back."""
        challenge = f"<{secrets.randbelow(10**12)}.{int(time.time())}@{self.server_name}>"
        response = await self.challenge_auth(challenge)
        return AuthResult(success=response is not MISSING)

    # The command loop.

    async def _handle_client(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, TimeoutError) as error:
            log.debug("%s connection failed: %s", self.ip, error)
            self.close()
        except Exception:
            log.exception("SMTP session with %s failed", self.ip)
            self.close()

    async def _serve(self) -> None:
        if self.over_limit:
            if not self.implicit_tls:
                await self.push(Reply.TOO_MANY_CONNECTIONS)
            log.debug("%s rejected: too many SMTP connections", self.ip)
            self.close()
            return
        if self.tls_waiter is not None and not await self._finish_tls(self.tls_waiter):
            return
        await self.push(f"220 {self.server_name} {IDENT}")
        while not self.closing:
            line, ended = await self._read_command()
            if line is not None:
                await self._dispatch(line)
            if ended:
                self.close()

    async def _read_command(self) -> tuple[bytes | None, bool]:
        """Return the next command line and whether the input ended after it."""
        try:
            return await self._reader.readuntil(b"\n"), False
        except asyncio.LimitOverrunError:
            log.debug("%s sent a command line over %d bytes, closing", self.ip, self.line_length_limit)
            await self.push(Reply.LINE_TOO_LONG)
            return None, True
        except asyncio.IncompleteReadError as error:
            return (error.partial or None), True

    async def _dispatch(self, raw_line: bytes) -> None:
        self._reset_timeout()
        text = raw_line.rstrip(b"\r\n")
        verb_bytes, _, argument_bytes = text.partition(b" ")
        verb = verb_bytes.decode("ascii", "replace").upper()
        self.line = text.decode("utf-8", "surrogateescape")
        argument = argument_bytes.strip().decode("utf-8", "surrogateescape")
        log.debug("%s >> %r", self.ip, "AUTH ..." if verb == "AUTH" else self.line)
        method = self._smtp_methods.get(verb)
        if method is None:
            await self._unknown_command()
            return
        try:
            await method(argument)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            log.exception("SMTP %s from %s failed", verb, self.ip)
            await self.push(Reply.LOCAL_ERROR)

    async def _unknown_command(self) -> None:
        self.unknown_commands += 1
        if self.unknown_commands >= self.shared.config.smtp_max_unknown_commands:
            await self.push(Reply.TOO_MANY_UNKNOWN)
            self.close()
            return
        await self.push(Reply.UNRECOGNIZED)

    # Transactions.

    def _peer(self) -> Peer:
        """Return the record fields of the client side, from the current session."""
        session = self.session
        helo = session.host_name if session is not None and session.host_name else "unknown"
        tls = session is not None and session.ssl is not None
        return Peer(self.ip, _printable(helo, 255), tls)

    def _new_transaction(self, mail_from: str | None) -> Transaction:
        greeting = self.session.greeting if isinstance(self.session, QuietSession) else None
        transaction = Transaction(greeting, mail_from, self.shared.recorder.admission.capture_limit)
        transaction.add_line(self.line)
        return transaction

    def _end_transaction(self, *, accepted: bool = False) -> None:
        transaction, self.transaction = self.transaction, None
        if transaction is not None:
            self._record(transaction, accepted=accepted)

    def _record(self, transaction: Transaction, *, accepted: bool) -> None:
        try:
            recorded = transaction.record(self.shared.recorder, self._peer(), self.server_name)
        except Exception:
            log.exception("could not record the SMTP transaction from %s", self.ip)
            return
        if accepted or recorded:
            self.shared.recorder.counters.smtp += 1

    # Verbs. aiosmtpd dispatches "smtp_<VERB>" methods, and self.line is the
    # whole command line, kept for the transcript.

    async def smtp_HELO(self, arg: str) -> None:
        await self._greet(arg, extended=False)

    async def smtp_EHLO(self, arg: str) -> None:
        await self._greet(arg, extended=True)

    async def _greet(self, arg: str, *, extended: bool) -> None:
        if not arg:
            await self.push(Reply.SYNTAX.format(usage=("EHLO" if extended else "HELO") + " hostname"))
            return
        self._set_rset_state()
        session = self.session
        assert isinstance(session, QuietSession)
        session.host_name = arg
        session.extended_smtp = extended
        session.greeting = self.line
        greets = f"{self.server_name} greets {_printable(arg, _MAX_ECHOED_CHARACTERS)}"
        if not extended:
            await self.push(f"250 {greets}")
            return
        lines = [greets, f"SIZE {self.data_size_limit}", "8BITMIME", "SMTPUTF8", "PIPELINING"]
        if self.tls_context is not None and session.ssl is None:
            lines.append("STARTTLS")
        lines.append("AUTH " + " ".join(sorted(self._auth_methods)))
        lines.append("ENHANCEDSTATUSCODES")
        await self.push("\r\n".join(f"250-{line}" for line in lines[:-1]) + f"\r\n250 {lines[-1]}")

    async def smtp_MAIL(self, arg: str) -> None:
        if self.session is None or not self.session.host_name:
            await self.push(Reply.HELO_FIRST)
            return
        path = parse_path_argument(arg, "FROM")
        if path is None:
            await self.push(Reply.SYNTAX.format(usage="MAIL FROM:<address>"))
            return
        declared = _declared_size(path.parameters)
        if declared is None:
            await self.push(Reply.SYNTAX.format(usage="SIZE=<number of octets>"))
            return
        if self.data_size_limit is not None and declared > self.data_size_limit:
            await self.push(Reply.SIZE_EXCEEDED)
            return
        self._end_transaction()
        self.transaction = self._new_transaction(path.address)
        self.transaction.nonstandard = path.nonstandard
        await self.push(Reply.SENDER_OK)

    async def smtp_RCPT(self, arg: str) -> None:
        transaction = self.transaction
        if transaction is None:
            await self.push(Reply.MAIL_FIRST)
            return
        path = parse_path_argument(arg, "TO")
        if path is None or not path.address:
            await self.push(Reply.SYNTAX.format(usage="RCPT TO:<address>"))
            return
        if len(transaction.recipients) >= self.shared.config.smtp_max_recipients:
            await self.push(Reply.TOO_MANY_RECIPIENTS)
            return
        if path.nonstandard:
            log.debug("%s used nonstandard RCPT syntax: %r", self.ip, self.line)
        transaction.add_line(self.line)
        transaction.add_path(path, self.shared.recorder, recipient=True)
        await self.push(Reply.RECIPIENT_OK)

    async def smtp_DATA(self, arg: str) -> None:
        transaction = self.transaction
        if transaction is None:
            await self.push(Reply.MAIL_FIRST)
            return
        if not transaction.recipients:
            await self.push(Reply.RCPT_FIRST)
            return
        transaction.add_line(self.line)
        await self.push(Reply.START_INPUT)
        reader = MessageReader(self.shared.recorder.admission.capture_limit)
        message = await reader.read(self._reader, self._reset_timeout)
        transaction.message = message
        if not message.complete:
            self.close()
            return
        if self.data_size_limit is not None and message.size > self.data_size_limit:
            reply = Reply.SIZE_EXCEEDED
        elif message.longest_line > self.line_length_limit:
            reply = Reply.LINE_TOO_LONG
        else:
            reply = Reply.QUEUED
        self._end_transaction(accepted=reply is Reply.QUEUED)
        await self.push(reply)

    async def smtp_RSET(self, arg: str) -> None:
        self._set_rset_state()
        await self.push(Reply.OK)

    async def smtp_NOOP(self, arg: str) -> None:
        await self.push(Reply.OK)

    async def smtp_QUIT(self, arg: str) -> None:
        self._end_transaction()
        await self.push(Reply.SERVICE_CLOSING.format(domain=self.server_name))
        self.close()

    async def smtp_VRFY(self, arg: str) -> None:
        if not arg:
            await self.push(Reply.SYNTAX.format(usage="VRFY <address>"))
            return
        # "VRFY Some Name <user@host>" names the mailbox in brackets.
        bracket = arg.find("<")
        path = parse_path(arg[bracket:] if bracket > 0 else arg)
        transaction = self.transaction
        if transaction is not None:
            transaction.add_line(self.line)
            transaction.add_path(path, self.shared.recorder, recipient=False)
        else:
            # Outside a transaction there is nothing to wait for.
            probe = self._new_transaction(None)
            probe.add_path(path, self.shared.recorder, recipient=False)
            self._record(probe, accepted=False)
        await self.push(Reply.CANNOT_VERIFY)

    async def smtp_EXPN(self, arg: str) -> None:
        await self.push(Reply.NOT_IMPLEMENTED)

    async def smtp_HELP(self, arg: str) -> None:
        await self.push(Reply.NOT_IMPLEMENTED)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            await self.push(Reply.SYNTAX.format(usage="STARTTLS"))
            return
        if self.session is not None and self.session.ssl is not None:
            await self.push(Reply.TLS_ACTIVE)
            return
        if self.tls_context is None:
            await self.push(Reply.TLS_UNAVAILABLE)
            return
        self._end_transaction()
        await self.push(Reply.TLS_READY)
        await self._finish_tls(self._switch_to_tls(self.tls_context))


def _declared_size(parameters: str) -> int | None:
    """Return the ``SIZE=`` value of MAIL parameters (0 when absent), or ``None`` when it is not a number."""
    for parameter in parameters.split():
        key, _, value = parameter.partition("=")
        if key.upper() != "SIZE":
            continue
        if not (value.isascii() and value.isdigit()):
            return None
        # Longer than any 64-bit size, so certainly over the limit.
        return int(value) if len(value) <= 20 else 10**21
    return 0


def _printable(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters, with anything but printable ASCII replaced by ``?``."""
    return "".join(char if " " <= char <= "~" else "?" for char in text[:limit])
