"""The FTP command set: aioftp's server with upstream's events and a read-only root.

Every event below adds one plaintext record to the ``extra`` bucket with
``raw-request`` = ``<COMMAND> <params>\\n<description>``, as upstream's
goftp notifier does. The descriptions are upstream's, including its
``delete directory`` wording:

========  ==============================================================
USER      ``<user> logging in``
PASS      ``user <user> logged in with password <password>``
CWD/CDUP  ``changing directory from <a> to <b>``, then ``changed ...``
STOR/APPE ``uploading <path>``, then ``uploaded <path>``
DELE      ``deleting <path>``, then ``deleted <path>``
MKD       ``creating directory <path>``, then ``created directory <path>``
RMD       ``deleting directory <path>``, then ``delete directory <path>``
RETR      ``downloading file <path>``, then ``downloaded file <path>``
========  ==============================================================

The second event of a pair is recorded only when the action succeeded, so
a record never reports a directory change or a transfer that did not
happen. Uploads, deletions, renames and new directories are accepted and
change nothing: upload data is read, counted against a size limit and
discarded. Active mode (PORT, EPRT) is not offered, so the server never
opens connections to addresses a client names.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, cast

import aioftp

from interactsh.config import ServerConfig
from interactsh.errors import InteractshError
from interactsh.interaction import build_record
from interactsh.listeners.ftp_paths import AnyUserManager, ConfinedPathIO
from interactsh.listeners.ftp_session import ConnectionLimits, FtpSession
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.ftp")

WELCOME_MESSAGE = "interactsh-ftp ready"
FEATURES = ("EPSV", "MDTM", "MLST type*;size*;modify*;", "PASV", "REST STREAM", "SIZE", "UTF8")
TLS_FEATURES = ("PBSZ", "PROT")

_Handler = TypeVar("_Handler", bound=Callable[..., Awaitable[Any]])


def _when(*fields: tuple[str, str], **options: Any) -> Callable[[_Handler], _Handler]:
    """Apply aioftp's connection preconditions to a handler of this subclass, keeping its type."""
    conditions = aioftp.ConnectionConditions(*fields, **options)

    def decorate(handler: _Handler) -> _Handler:
        return cast(_Handler, conditions(handler))

    return decorate


def _abortable(handler: _Handler) -> _Handler:
    """Make a transfer reply to ABOR with 426 and 226, as aioftp's own transfers do."""
    return cast(_Handler, aioftp.worker(handler))


_login_required = _when(aioftp.ConnectionConditions.login_required)
_passive_required = _when(
    aioftp.ConnectionConditions.login_required,
    aioftp.ConnectionConditions.passive_server_started,
)
_data_connection_required = _when(
    aioftp.ConnectionConditions.data_connection_made,
    wait=True,
    fail_code="425",
    fail_info="no data connection was made to the passive port",
)


class FtpEvents:
    """Turns FTP events into ``extra`` records and counts them."""

    def __init__(self, recorder: Recorder, max_request_size: int) -> None:
        self.recorder = recorder
        self.max_request_size = max_request_size

    def record(self, connection: aioftp.Connection, description: str, request: tuple[str, str] | None = None) -> None:
        """Store one event of the command in ``request`` (default: the command being run)."""
        verb, params = request or connection.request_line
        # The admission's capture limit shrinks under critical memory pressure.
        limit = min(self.max_request_size, self.recorder.admission.capture_limit)
        raw_request = f"{verb} {params}\n{description}"[:limit]
        record = build_record("ftp", "", "", connection.peer, raw_request=raw_request)
        self.recorder.counters.ftp += 1
        try:
            self.recorder.record_shared("extra", record)
        except InteractshError as error:
            log.warning("%s: could not store the FTP event %s: %s", connection.peer, verb, error)


class FtpServer(aioftp.Server):
    """One FTP or FTPS port; the command handlers record upstream's events."""

    def __init__(
        self,
        config: ServerConfig,
        events: FtpEvents,
        root: Path,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(
            users=AnyUserManager(root),
            socket_timeout=config.ftp_transfer_timeout,
            idle_timeout=config.ftp_idle_timeout,
            wait_future_timeout=config.ftp_transfer_timeout,
            path_io_factory=ConfinedPathIO,
            ssl=ssl_context,
            welcome_message=WELCOME_MESSAGE,
        )
        self.events = events
        self.limits = limits
        self.max_line_length = config.ftp_max_line_length
        self.max_upload_size = config.ftp_max_upload_size
        self.sessions: set[asyncio.Task[Any]] = set()
        self.commands_mapping.update(
            {
                "eprt": self.port,
                "feat": self.feat,
                "mdtm": self.mdtm,
                "nlst": self.nlst,
                "noop": self.noop,
                "opts": self.opts,
                "port": self.port,
                "size": self.size,
            }
        )

    async def dispatcher(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.sessions.add(task)
        try:
            await FtpSession(self, reader, writer).run()
        except asyncio.CancelledError:
            # Only close() cancels sessions. The task ends normally because
            # asyncio 3.11 logs an error for a cancelled connection callback.
            pass
        finally:
            if task is not None:
                self.sessions.discard(task)

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        self.server.close()
        sessions = list(self.sessions)
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        await self.server.wait_closed()

    async def write_line(self, stream: aioftp.StreamIO, line: str) -> None:
        # Replies may echo client text: CR and LF inside it must not end the
        # reply line, and undecodable bytes go back as they came.
        clean = line.replace("\r", " ").replace("\n", " ")
        await stream.write((clean + "\r\n").encode("utf-8", "surrogateescape"))

    # Login

    async def user(self, connection: aioftp.Connection, rest: str) -> bool:
        connection.login_name = rest
        self.events.record(connection, f"{rest} logging in")
        return bool(await super().user(connection, rest))

    @_when(aioftp.ConnectionConditions.user_required)
    async def pass_(self, connection: aioftp.Connection, rest: str) -> bool:
        if connection.future.logged.done():
            connection.response("503", "already logged in")
            return True
        connection.logged = True
        self.events.record(connection, f"user {connection.login_name} logged in with password {rest}")
        connection.response("230", "login successful")
        return True

    # Directories

    @_login_required
    async def cwd(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        real_path, virtual_path = self.get_paths(connection, rest)
        change = f"directory from {connection.current_directory} to {virtual_path}"
        self.events.record(connection, f"changing {change}")
        if not await connection.path_io.is_dir(real_path):
            connection.response("550", f"{virtual_path}: no such directory")
            return True
        connection.current_directory = virtual_path
        self.events.record(connection, f"changed {change}")
        connection.response("250", f"directory changed to {virtual_path}")
        return True

    async def cdup(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        return bool(await self.cwd(connection, ".."))

    @_login_required
    async def mkd(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        virtual_path = self._virtual_path(connection, rest)
        if virtual_path is None:
            return True
        self.events.record(connection, f"creating directory {virtual_path}")
        self.events.record(connection, f"created directory {virtual_path}")
        quoted = str(virtual_path).replace('"', '""')
        connection.response("257", f'"{quoted}" created')
        return True

    @_login_required
    async def rmd(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        virtual_path = self._virtual_path(connection, rest)
        if virtual_path is None:
            return True
        self.events.record(connection, f"deleting directory {virtual_path}")
        self.events.record(connection, f"delete directory {virtual_path}")
        connection.response("250", f"{virtual_path} removed")
        return True

    # Files that clients may change: accepted, recorded, left as they were

    @_login_required
    async def dele(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        virtual_path = self._virtual_path(connection, rest)
        if virtual_path is None:
            return True
        self.events.record(connection, f"deleting {virtual_path}")
        self.events.record(connection, f"deleted {virtual_path}")
        connection.response("250", f"{virtual_path} deleted")
        return True

    @_login_required
    async def rnfr(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        virtual_path = self._virtual_path(connection, rest)
        if virtual_path is None:
            return True
        connection.rename_from = virtual_path
        connection.response("350", "ready for RNTO")
        return True

    @_when(aioftp.ConnectionConditions.login_required, aioftp.ConnectionConditions.rename_from_required)
    async def rnto(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        virtual_path = self._virtual_path(connection, rest)
        if virtual_path is None:
            return True
        del connection.rename_from
        connection.response("250", f"renamed to {virtual_path}")
        return True

    @_passive_required
    async def stor(self, connection: aioftp.Connection, rest: str | PurePosixPath, mode: str = "wb") -> bool:
        virtual_path = self._virtual_path(connection, rest)
        if virtual_path is None:
            return True
        request = connection.request_line
        self.events.record(connection, f"uploading {virtual_path}")

        @_data_connection_required
        @_abortable
        async def receive(server: FtpServer, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
            if await server.discard_upload(connection):
                server.events.record(connection, f"uploaded {virtual_path}", request)
                connection.response("226", "transfer complete")
            return True

        self._start_worker(connection, receive(self, connection, rest))
        connection.response("150", "ready to receive data")
        return True

    async def appe(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        return bool(await self.stor(connection, rest, "ab"))

    async def discard_upload(self, connection: aioftp.Connection) -> bool:
        """Read the upload and drop it; ``False`` when it exceeded the size limit."""
        stream = connection.data_connection
        del connection.data_connection
        received = 0
        async with stream:
            async for block in stream.iter_by_block(connection.block_size):
                received += len(block)
                if received > self.max_upload_size:
                    log.info("%s: upload over %d bytes aborted", connection.peer, self.max_upload_size)
                    connection.response("552", f"upload exceeds the {self.max_upload_size}-byte limit, aborted")
                    return False
        return True

    # Downloads and listings of the real directory

    @_passive_required
    async def retr(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        if self._virtual_path(connection, rest) is None:
            return True
        real_path, virtual_path = self.get_paths(connection, rest)
        request = connection.request_line
        self.events.record(connection, f"downloading file {virtual_path}")
        if not await connection.path_io.is_file(real_path):
            connection.response("550", f"{virtual_path}: no such file")
            return True

        @_data_connection_required
        @_abortable
        async def send(server: FtpServer, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
            await server.send_file(connection, real_path)
            server.events.record(connection, f"downloaded file {virtual_path}", request)
            connection.response("226", "transfer complete")
            return True

        self._start_worker(connection, send(self, connection, rest))
        connection.response("150", "sending the file")
        return True

    async def send_file(self, connection: aioftp.Connection, real_path: Path) -> None:
        """Copy the file to the data connection, from the REST offset on."""
        stream = connection.data_connection
        del connection.data_connection
        async with connection.path_io.open(real_path, mode="rb") as file, stream:
            if connection.restart_offset:
                await file.seek(connection.restart_offset)
            async for block in file.iter_by_block(connection.block_size):
                await stream.write(block)

    async def list(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        return bool(await super().list(connection, _without_list_options(str(rest))))

    @_passive_required
    async def nlst(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        real_path, virtual_path = self.get_paths(connection, _without_list_options(str(rest)))
        if not await connection.path_io.exists(real_path):
            connection.response("550", f"{virtual_path}: no such file or directory")
            return True

        @_data_connection_required
        @_abortable
        async def send_names(server: FtpServer, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
            stream = connection.data_connection
            del connection.data_connection
            async with stream:
                async for path in connection.path_io.list(real_path):
                    await stream.write(path.name.encode("utf-8", "surrogateescape") + b"\r\n")
            connection.response("226", "listing complete")
            return True

        self._start_worker(connection, send_names(self, connection, rest))
        connection.response("150", "sending the name list")
        return True

    @_login_required
    async def size(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        stat = await self._file_stat(connection, rest)
        if stat is not None:
            connection.response("213", str(stat.st_size))
        return True

    @_login_required
    async def mdtm(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        stat = await self._file_stat(connection, rest)
        if stat is not None:
            connection.response("213", time.strftime("%Y%m%d%H%M%S", time.gmtime(stat.st_mtime)))
        return True

    # Passive mode: the data port accepts only the control connection's host

    @_login_required
    async def pasv(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        if not await self._open_passive_port(connection):
            return True
        for sock in connection.passive_server.sockets:
            if sock.family == socket.AF_INET:
                host, port = sock.getsockname()[:2]
                break
        else:
            connection.response("522", "PASV needs IPv4, use EPSV")
            return True
        numbers = [*host.split("."), str(port >> 8), str(port & 0xFF)]
        connection.response("227", f"entering passive mode ({','.join(numbers)})")
        return True

    @_login_required
    async def epsv(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        argument = str(rest).strip().upper()
        if argument == "ALL":
            connection.response("200", "EPSV ALL accepted")
            return True
        if argument not in ("", "1", "2"):
            connection.response("522", "network protocol not supported, use (1,2)")
            return True
        if not await self._open_passive_port(connection):
            return True
        port = connection.passive_server.sockets[0].getsockname()[1]
        connection.response("229", f"entering extended passive mode (|||{port}|)")
        return True

    async def port(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        connection.response("502", "active mode is not supported, use PASV or EPSV")
        return True

    async def _open_passive_port(self, connection: aioftp.Connection) -> bool:
        """Start the connection's passive listener once; drop an unused data connection."""
        if connection.future.data_connection.done():
            connection.data_connection.close()
            del connection.data_connection
        if connection.future.passive_server.done():
            return True
        try:
            connection.passive_server = await self._start_passive_server(connection, self._accept_data(connection))
        except OSError as error:
            log.warning("%s: could not open a passive data port: %s", connection.peer, error)
            connection.response("425", "could not open a passive data port, try again later")
            return False
        return True

    def _accept_data(self, connection: aioftp.Connection) -> Any:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername") or ("", 0)
            if not _same_host(str(peer[0]), connection.client_host):
                log.warning("%s: data connection from %s rejected: another host", connection.peer, peer[0])
                writer.close()
                return
            if connection.future.data_connection.done():
                writer.close()
                return
            connection.data_connection = aioftp.ThrottleStreamIO(
                reader,
                writer,
                throttles=connection.command_connection.throttles,
                timeout=connection.socket_timeout,
            )

        return accept

    # Small commands

    async def noop(self, connection: aioftp.Connection, rest: str) -> bool:
        connection.response("200", "ok")
        return True

    async def feat(self, connection: aioftp.Connection, rest: str) -> bool:
        features = sorted(FEATURES + TLS_FEATURES) if self.ssl is not None else list(FEATURES)
        connection.response("211", ["Features:", *features, "End"], True)
        return True

    async def opts(self, connection: aioftp.Connection, rest: str) -> bool:
        if rest.strip().upper() in ("UTF8 ON", "UTF-8 ON"):
            connection.response("200", "UTF-8 is always on")
        else:
            connection.response("501", f"option {rest[:32]!r} is not supported")
        return True

    # Helpers

    def _virtual_path(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> PurePosixPath | None:
        """Return the virtual path a command names; reply 501 and return ``None`` when it names none."""
        if not str(rest):
            verb = connection.request_line[0]
            connection.response("501", f"{verb} needs a path argument")
            return None
        return self.get_paths(connection, rest)[1]

    async def _file_stat(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> Any:
        if self._virtual_path(connection, rest) is None:
            return None
        real_path, virtual_path = self.get_paths(connection, rest)
        if not await connection.path_io.is_file(real_path):
            connection.response("550", f"{virtual_path}: no such file")
            return None
        return await connection.path_io.stat(real_path)

    @staticmethod
    def _start_worker(connection: aioftp.Connection, coroutine: Any) -> None:
        connection.extra_workers.add(asyncio.create_task(coroutine))


def _without_list_options(argument: str) -> str:
    """Drop ``ls``-style options such as ``-la`` that clients put before the path."""
    words = argument.split(" ")
    while words and words[0].startswith("-"):
        words.pop(0)
    return " ".join(words)


def _same_host(first: str, second: str) -> bool:
    """Compare two addresses, treating an IPv4-mapped IPv6 address as its IPv4 form."""
    try:
        return _unmapped(first) == _unmapped(second)
    except ValueError:
        return first == second


def _unmapped(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
