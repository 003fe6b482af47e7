"""FTP and implicit-TLS FTPS listeners that record every login and file event.

Library choice: aioftp rather than pyftpdlib. aioftp is an asyncio server,
so it runs in the server's own event loop and hands records to the store
without crossing threads, and it takes an ``ssl.SSLContext`` for the
listening socket, which is exactly implicit TLS. pyftpdlib runs its own
I/O loop, so it would need a thread and a hand-off to this loop, and it
offers only explicit TLS: its ``TLS_FTPHandler`` implements AUTH TLS with
pyOpenSSL. aioftp's per-connection loop is replaced (see ``ftp_session``)
to bound memory and keep disconnects quiet.

Both ports serve one read-only root, ``-ftp-dir`` or a fresh temporary
directory that is removed on close. The events and their records are listed
in ``ftp_server``.
"""

from __future__ import annotations

import errno
import logging
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

from interactsh.config import ServerConfig
from interactsh.listeners.ftp_server import FtpEvents, FtpServer
from interactsh.listeners.ftp_session import ConnectionLimits
from interactsh.recording import Recorder
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.ftp")


class FtpListener:
    """The running FTP port and, when a certificate is loaded, the FTPS port."""

    def __init__(self, root: Path, owns_root: bool) -> None:
        self.root = root
        self.ports: dict[str, int] = {}
        self._owns_root = owns_root
        self._servers: list[FtpServer] = []

    async def listen(self, name: str, server: FtpServer, host: str, port: int, **options: Any) -> None:
        """Bind ``server`` and remember its port under ``name``; raise ``OSError`` when it cannot bind."""
        try:
            await server.start(host, port, **options)
        except OSError as error:
            raise OSError(
                error.errno,
                f"could not listen for {name.upper()} on {host} port {port}: {error.strerror or error}; "
                f"choose a free port with -{name}-port",
            ) from None
        self._servers.append(server)
        self.ports[name] = server.address[1]

    async def close(self) -> None:
        """Stop both ports, end their connections and remove a temporary root."""
        for server in self._servers:
            await server.close()
        self._servers.clear()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)
            self._owns_root = False


async def start_ftp(config: ServerConfig, recorder: Recorder, tls: TlsProvider) -> FtpListener:
    """Start FTP on ``config.ftp_port`` and implicit FTPS on ``config.ftps_port`` when TLS is on."""
    root, owns_root = prepare_root(config.ftp_dir)
    listener = FtpListener(root, owns_root)
    events = FtpEvents(recorder, config.max_request_size)
    limits = ConnectionLimits(config.ftp_max_connections, config.ftp_max_connections_per_ip)
    try:
        plain = FtpServer(config, events, root, limits, None)
        await listener.listen("ftp", plain, config.listen_ip, config.ftp_port, limit=config.ftp_max_line_length)
        if tls.context is not None:
            secure = FtpServer(config, events, root, limits, following_context(tls))
            await listener.listen(
                "ftps",
                secure,
                config.listen_ip,
                config.ftps_port,
                limit=config.ftp_max_line_length,
                ssl_handshake_timeout=config.ftp_transfer_timeout,
            )
    except BaseException:
        await listener.close()
        raise
    log.info("FTP serves %s read-only", root)
    return listener


def prepare_root(ftp_dir: str) -> tuple[Path, bool]:
    """Return the resolved root directory and whether it is a temporary one to remove."""
    if not ftp_dir:
        return Path(tempfile.mkdtemp(prefix="interactsh-ftp-")).resolve(), True
    root = Path(ftp_dir).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"-ftp-dir {ftp_dir!r} is not a directory: create it, or leave -ftp-dir empty for a temporary one",
        )
    return root.resolve(), False


def following_context(tls: TlsProvider) -> ssl.SSLContext:
    """Return a server context that hands each handshake to ``tls.context`` as it is then.

    asyncio fixes a listener's context when the listener starts. OpenSSL
    calls the server-name callback on every handshake, with or without SNI,
    and the callback may switch the connection to another context, so a
    certificate that ``TlsProvider.load`` renewed is used without a restart.
    """
    front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    front.minimum_version = ssl.TLSVersion.TLSv1_2

    def use_current(connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        current = tls.context
        if current is not None:
            connection.context = current

    front.sni_callback = use_current
    return front
