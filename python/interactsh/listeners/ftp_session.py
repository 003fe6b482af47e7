"""One FTP control connection: read a command, run it, send its replies.

This loop replaces aioftp's own per-connection dispatcher, which reads the
next command while earlier ones still run, queues replies without bound and
logs a traceback whenever a client disconnects without ``QUIT``
(aioftp 0.28). Here
commands run one at a time and the next line is read only after the replies
of the previous one were written, so a client that never reads its replies
stops being read instead of filling memory. Transfers still run beside the
loop as aioftp's worker tasks, so ``ABOR`` and ``NOOP`` work during them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import aioftp

if TYPE_CHECKING:
    from interactsh.listeners.ftp_server import FtpServer

log = logging.getLogger("interactsh.ftp")

# Commands that keep a REST offset set by the command before them.
_TRANSFER_VERBS = frozenset({"retr", "stor", "appe"})


class ConnectionLimits:
    """Counts open control connections, in total and per client address.

    One instance is shared by the FTP and FTPS servers so that the limits
    cover both ports together.
    """

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def acquire(self, host: str) -> bool:
        """Count one more connection from ``host``; ``False`` when a limit is reached."""
        if self.total >= self.max_total or self.per_ip[host] >= self.max_per_ip:
            return False
        self.total += 1
        self.per_ip[host] += 1
        return True

    def release(self, host: str) -> None:
        self.total -= 1
        self.per_ip[host] -= 1
        if self.per_ip[host] <= 0:
            del self.per_ip[host]


def format_address(host: str, port: int) -> str:
    """Return ``ip:port``, with brackets around an IPv6 address as Go prints it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class FtpSession:
    """The command loop and the reply writer of one control connection."""

    def __init__(self, server: FtpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("", 0)
        local = writer.get_extra_info("sockname") or ("", 0)
        self.host, self.port = str(peer[0]), int(peer[1])
        self.peer = format_address(self.host, self.port)
        self.stream = aioftp.ThrottleStreamIO(
            reader,
            writer,
            throttles={"server_global": server.throttle},
            read_timeout=server.idle_timeout,
            write_timeout=server.socket_timeout,
        )
        self.replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.write_failed = False
        self.watched_workers: set[asyncio.Task[Any]] = set()
        self.connection = self._new_connection(str(local[0]))

    def _new_connection(self, local_host: str) -> aioftp.Connection:
        """Build the state object that aioftp's command handlers expect."""
        server = self.server
        connection = aioftp.Connection(
            client_host=self.host,
            client_port=self.port,
            server_host=local_host,
            passive_server_port=0,
            server_port=server.server_port,
            command_connection=self.stream,
            socket_timeout=server.socket_timeout,
            idle_timeout=server.idle_timeout,
            wait_future_timeout=server.wait_future_timeout,
            block_size=server.block_size,
            path_io_factory=server.path_io_factory,
            path_timeout=server.path_timeout,
            extra_workers=set(),
            response=lambda *args: self.replies.put_nowait(args),
            acquired=False,
            restart_offset=0,
            _dispatcher=asyncio.current_task(),
            peer=self.peer,
        )
        connection.path_io = server.path_io_factory(timeout=server.path_timeout, connection=connection)
        return connection

    async def run(self) -> None:
        """Serve the connection until QUIT, EOF, a timeout or a limit.

        Errors end this connection only and are logged. Cancellation propagates.
        """
        limits = self.server.limits
        if not limits.acquire(self.host):
            log.warning("%s: connection rejected, too many FTP connections", self.peer)
            await self._reject()
            return
        log.debug("%s: connection opened", self.peer)
        writer_task = asyncio.create_task(self._write_replies())
        flush = True
        try:
            self.connection.response("220", self.server.welcome_message)
            await self._serve_commands()
        except asyncio.CancelledError:
            flush = False
            raise
        except Exception:
            # A bug in a command must cost one connection, never the listener.
            log.exception("%s: FTP connection failed", self.peer)
        finally:
            limits.release(self.host)
            await self._close(writer_task, flush)
            log.debug("%s: connection closed", self.peer)

    async def _reject(self) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            await self.stream.write(b"421 too many connections, try again later\r\n")
        self.stream.close()

    async def _serve_commands(self) -> None:
        while not self.write_failed:
            request = await self._read_command()
            if request is None:
                return
            verb, params = request
            keep_open = await self._execute(verb, params)
            self._watch_workers()
            await self.replies.join()
            if not keep_open:
                return

    async def _read_command(self) -> tuple[str, str] | None:
        """Return the next ``(verb, params)``, or ``None`` when the connection must end."""
        try:
            line = await self.stream.readline()
        except TimeoutError:
            log.debug("%s: idle for %.0f s, closing", self.peer, self.server.idle_timeout)
            self.connection.response("421", "idle timeout, closing the control connection")
            return None
        except ValueError:
            log.info("%s: command line longer than %d bytes, closing", self.peer, self.server.max_line_length)
            self.connection.response("500", f"command line longer than {self.server.max_line_length} bytes")
            return None
        except (OSError, asyncio.IncompleteReadError) as error:
            log.debug("%s: read failed: %s", self.peer, error)
            return None
        if not line:
            return None
        text = line.decode("utf-8", "surrogateescape").rstrip("\r\n")
        verb, _, params = text.partition(" ")
        return verb, params.strip()

    async def _execute(self, verb: str, params: str) -> bool:
        """Run one command; return ``False`` when the connection must close."""
        name = verb.lower()
        handler = self.server.commands_mapping.get(name)
        if handler is None:
            self.connection.response("502", f"command {verb[:32]!r} is not implemented")
            return True
        self.connection.request_line = (verb, params)
        if name not in _TRANSFER_VERBS:
            self.connection.restart_offset = 0
        try:
            return bool(await handler(self.connection, params))
        except aioftp.PathIOError as error:
            log.info("%s: %s failed on the file system: %s", self.peer, verb, _path_error_text(error))
            self.connection.response("451", "local file system error, the command was not completed")
        return True

    def _watch_workers(self) -> None:
        for task in self.connection.extra_workers - self.watched_workers:
            self.watched_workers.add(task)
            task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[Any]) -> None:
        self.connection.extra_workers.discard(task)
        self.watched_workers.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if isinstance(error, aioftp.PathIOError):
            detail = _path_error_text(error)
        else:
            detail = f"{type(error).__name__}: {error}"
        log.info("%s: transfer failed: %s", self.peer, detail)
        self.connection.response("451", "transfer failed, data connection closed")

    async def _write_replies(self) -> None:
        """Write queued replies in order; after a failed write, discard the rest."""
        while True:
            reply = await self.replies.get()
            try:
                if not self.write_failed:
                    await self.server.write_response(self.stream, *reply)
            except (OSError, TimeoutError) as error:
                self.write_failed = True
                log.debug("%s: write failed: %s", self.peer, error or type(error).__name__)
            except Exception:
                self.write_failed = True
                log.exception("%s: could not write the reply %r", self.peer, reply[:1])
            finally:
                self.replies.task_done()

    async def _close(self, writer_task: asyncio.Task[None], flush: bool) -> None:
        """Stop transfers, send the last replies unless cancelled, and close every socket."""
        connection = self.connection
        workers = list(connection.extra_workers)
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        if flush:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.replies.join(), timeout=self.server.socket_timeout)
        writer_task.cancel()
        await asyncio.gather(writer_task, return_exceptions=True)
        if connection.future.passive_server.done():
            connection.passive_server.close()
        if connection.future.data_connection.done():
            connection.data_connection.close()
        self.stream.close()


def _path_error_text(error: aioftp.PathIOError) -> str:
    reason = error.reason
    if reason is not None and reason[1] is not None:
        return f"{type(reason[1]).__name__}: {reason[1]}"
    return str(error)
