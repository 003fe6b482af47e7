"""Server wiring: one store, one recorder, the listeners, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from interactsh.acme import CertificateManager, start_acme
from interactsh.config import ServerConfig
from interactsh.listeners.dns import DnsListener, start_dns
from interactsh.listeners.ftp import FtpListener, start_ftp
from interactsh.listeners.http import HttpListener, build_app, start_http
from interactsh.listeners.https import start_https
from interactsh.listeners.ldap import LdapListener, start_ldap
from interactsh.listeners.smb import SmbListener, start_smb
from interactsh.listeners.smtp import SmtpListener, start_smtp
from interactsh.memory import MemoryManager
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store import Store, create_store
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.server")
store_log = logging.getLogger("interactsh.store")

# Maximum pause between removals of expired sessions. Expired ones already read as absent.
MAX_EXPIRY_INTERVAL = 60.0


def open_store(config: ServerConfig) -> Store:
    """Create the configured store engine, falling back to Python without the extension."""
    try:
        return create_store(config.store_engine, config.store_options())
    except ImportError as error:
        store_log.warning("the Rust store could not be loaded (%s); using the Python store instead", error)
        return create_store("python", config.store_options())


class InteractshServer:
    """The listeners of one server process around one shared store."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.store = open_store(config)
        self.recorder = Recorder(config, self.store, self.counters)
        self.memory = MemoryManager(config, self.store, self.recorder.admission)
        self.recorder.memory = self.memory
        self.dns: DnsListener | None = None
        self.http: HttpListener | None = None
        self.https: HttpListener | None = None
        self.acme: CertificateManager | None = None
        self.ldap: LdapListener | None = None
        self.smtp: SmtpListener | None = None
        self.ftp: FtpListener | None = None
        self.smb: SmbListener | None = None
        self.tls = TlsProvider.from_config(config)
        self._expiry_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind every listener; raise ``OSError`` when a port cannot be bound."""
        config = self.config
        log.info("store engine: %s, AES mode %s", type(self.store).__name__, config.aes_mode)
        self.dns = await start_dns(config, self.recorder)
        log.info("DNS listening on %s port %d (UDP and TCP)", config.listen_ip, self.dns.udp_port)
        app = build_app(config, self.recorder)
        self.http = await start_http(config, app)
        log.info("HTTP listening on %s port %d", config.listen_ip, self.http.port)
        # The DNS listener answers the DNS-01 challenges, and ACME must finish before the TLS listeners start.
        self.acme = await start_acme(config, self.tls, self.dns.answerer.acme_txt)
        self.ldap = await start_ldap(config, self.recorder, self.tls)
        log.info("LDAP listening on %s port %d", config.listen_ip, self.ldap.port)
        self.smtp = await start_smtp(config, self.recorder, self.tls)
        for name, port in self.smtp.ports.items():
            log.info("SMTP (%s) listening on %s port %d", name, config.listen_ip, port)
        if config.ftp:
            self.ftp = await start_ftp(config, self.recorder, self.tls)
            for name, port in self.ftp.ports.items():
                log.info("FTP (%s) listening on %s port %d", name, config.listen_ip, port)
        if config.smb:
            self.smb = await start_smb(config, self.recorder)
            log.info("SMB listening on %s port %d", config.listen_ip, self.smb.port)
        if self.tls.enabled:
            self.https = await start_https(config, app, self.tls)
            log.info("HTTPS listening on %s port %d", config.listen_ip, self.https.port)
        else:
            log.info("HTTPS is off: no certificate from -cert/-privkey or ACME")
        # After the listeners, so that the store's budget allows for their footprint.
        await self.memory.start()
        log.info("server ready for domains: %s", ", ".join(config.domains))
        self._expiry_task = asyncio.create_task(self._expire_periodically())

    async def stop(self) -> None:
        """Close every listener and stop background work."""
        await self.memory.stop()
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task
        if self.acme is not None:
            await self.acme.close()
        if self.https is not None:
            await self.https.close()
        if self.smb is not None:
            await self.smb.close()
        if self.ftp is not None:
            await self.ftp.close()
        if self.smtp is not None:
            await self.smtp.close()
        if self.ldap is not None:
            await self.ldap.close()
        if self.http is not None:
            await self.http.close()
        if self.dns is not None:
            await self.dns.close()
        log.info("server stopped")

    async def _expire_periodically(self) -> None:
        ttl = self.config.ttl_seconds
        interval = MAX_EXPIRY_INTERVAL if ttl is None else max(1.0, min(MAX_EXPIRY_INTERVAL, ttl / 10))
        while True:
            await asyncio.sleep(interval)
            removed = self.store.expire()
            if removed:
                store_log.info("expired %d idle sessions", removed)


async def serve(config: ServerConfig) -> None:
    """Run the server until SIGINT or SIGTERM."""
    server = InteractshServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()


def run(config: ServerConfig) -> None:
    """Run :func:`serve` on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
