"""TLS certificates from an ACME CA (Let's Encrypt by default), validated with DNS-01.

One certificate covers ``*.D`` and ``D`` for every configured domain ``D``.
The CA checks a TXT record at ``_acme-challenge.D``, which this server's own
DNS listener answers, so the domains must be delegated to this server (NS
records) and its DNS must be reachable on port 53.

ACME runs when neither ``-cert``/``-privkey`` nor ``-skip-acme`` is given. It
is also skipped when the listeners bind a loopback address (the embedded
defaults do) and the ACME server is not on this machine, because no public CA
can reach a loopback server. A failure is logged as an error and the server
runs without TLS, as upstream does.

A stored certificate that covers the names and has not expired is reused at
start. A background task checks every ``-acme-check-interval`` seconds (a
day by default) and renews the certificate once fewer than
``-acme-renew-before`` days (30 by default) remain. The renewed certificate
reaches every TLS listener through :meth:`TlsProvider.load` without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
from pathlib import Path
from urllib.parse import urlsplit

from interactsh.acme_order import AcmeOrder, AcmeSettings, TxtRecords
from interactsh.acme_storage import AcmeStorage, StoredCertificate
from interactsh.config import ServerConfig
from interactsh.errors import AcmeError, ConfigurationError
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.acme")


def certificate_names(domains: list[str]) -> list[str]:
    """Return ``*.D`` and ``D`` for each domain, lower case, without repeats."""
    names: list[str] = []
    for domain in domains:
        apex = domain.lower().rstrip(".")
        for name in (f"*.{apex}", apex):
            if name not in names:
                names.append(name)
    return names


def skip_reason(config: ServerConfig) -> str | None:
    """Return why ACME does not run with this configuration, or ``None`` when it runs."""
    if config.cert and config.privkey:
        return "-cert and -privkey are given"
    if config.skip_acme:
        return "-skip-acme is set"
    if _is_loopback(config.listen_ip) and not _is_local_url(config.acme_directory):
        host = urlsplit(config.acme_directory).hostname
        return (
            f"-listen-ip {config.listen_ip} is a loopback address, which the ACME server {host} cannot reach; "
            "pass a public -listen-ip to use ACME, or -skip-acme to silence this message"
        )
    return None


def acme_settings(config: ServerConfig) -> AcmeSettings:
    """Return the ACME options of ``config``, with the default contact ``admin@<first domain>``."""
    return AcmeSettings(
        directory_url=config.acme_directory,
        ca_bundle=config.acme_ca_bundle,
        email=config.acme_email or f"admin@{config.domains[0].lower().rstrip('.')}",
        order_timeout=config.acme_order_timeout,
        request_timeout=config.acme_request_timeout,
    )


class CertificateManager:
    """Obtains, stores, loads and renews the ACME certificate of one server."""

    def __init__(self, config: ServerConfig, tls: TlsProvider, txt_records: TxtRecords) -> None:
        self.config = config
        self.tls = tls
        self.names = certificate_names(config.domains)
        self.settings = acme_settings(config)
        self.storage = AcmeStorage(Path(config.acme_dir), config.acme_directory, config.domains[0])
        self.txt_records = txt_records
        self.renew_before = datetime.timedelta(days=config.acme_renew_before)
        self.current: StoredCertificate | None = None
        self._renewal_task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Load the stored certificate or obtain a new one, then start renewing; return whether TLS is on.

        Failures are logged instead of raised, and the server then runs without TLS.
        """
        try:
            stored = self.storage.read_certificate()
            if stored is not None and stored.covers(self.names) and stored.remaining() > datetime.timedelta(0):
                self._install(stored)
                log.info("using the stored certificate %s, valid until %s", stored.certificate_path, _day(stored))
            else:
                await self._obtain()
        except AcmeError as error:
            log.error("could not obtain a TLS certificate for %s: %s; TLS services stay off", self._names_text(), error)
            return False
        except Exception:
            # The acme package may raise types it does not document when a CA misbehaves; the server still runs.
            log.exception("could not obtain a TLS certificate for %s; TLS services stay off", self._names_text())
            return False
        self._renewal_task = asyncio.create_task(self._renew_periodically(), name="interactsh-acme-renewal")
        return True

    async def close(self) -> None:
        """Stop the renewal task, withdrawing the TXT records of an order in progress."""
        task, self._renewal_task = self._renewal_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def renewal_due(self, now: datetime.datetime | None = None) -> bool:
        """Tell whether the current certificate has fewer than ``-acme-renew-before`` days left."""
        return self.current is None or self.current.remaining(now) < self.renew_before

    async def renew(self) -> bool:
        """Renew the certificate when it is due; return whether a new one was installed.

        Failures are logged, and the current certificate stays in use.
        """
        if not self.renewal_due():
            return False
        try:
            await self._obtain()
        except AcmeError as error:
            log.error(
                "could not renew the TLS certificate for %s: %s; %s", self._names_text(), error, self._expiry_text()
            )
            return False
        except Exception:
            # As in start(): a misbehaving CA must not end the renewal task.
            log.exception("could not renew the TLS certificate for %s; %s", self._names_text(), self._expiry_text())
            return False
        return True

    async def _renew_periodically(self) -> None:
        # A stored certificate that is already due is renewed at once. After that there is one check per
        # interval, also after a failure, so a failing CA gets at most one order per interval.
        delay = 0.0 if self.renewal_due() else self.config.acme_check_interval
        while True:
            await asyncio.sleep(delay)
            delay = self.config.acme_check_interval
            await self.renew()

    async def _obtain(self) -> None:
        account_key = self.storage.account_key()
        if self.current is None:
            log.info("requesting a certificate for %s from %s", self._names_text(), self.settings.directory_url)
        else:
            log.info(
                "renewing the certificate for %s, valid until %s, from %s",
                self._names_text(),
                _day(self.current),
                self.settings.directory_url,
            )
        issued = await AcmeOrder(self.settings, account_key, self.txt_records).obtain(self.names)
        stored = self.storage.write_certificate(issued.fullchain_pem, issued.private_key_pem)
        self._install(stored)
        log.info(
            "obtained a certificate for %s, serial %x, valid until %s", self._names_text(), stored.serial, _day(stored)
        )

    def _install(self, stored: StoredCertificate) -> None:
        try:
            self.tls.load(str(stored.certificate_path), str(stored.private_key_path))
        except ConfigurationError as error:
            raise AcmeError(f"the stored certificate could not be loaded: {error}") from None
        self.current = stored

    def _names_text(self) -> str:
        return ", ".join(self.names)

    def _expiry_text(self) -> str:
        if self.current is None:
            return "no certificate is in use"
        return f"the current certificate stays in use until it expires on {_day(self.current)}"


async def start_acme(config: ServerConfig, tls: TlsProvider, txt_records: TxtRecords) -> CertificateManager | None:
    """Obtain a certificate when ACME applies; return the running manager, or ``None`` when skipped or failed."""
    reason = skip_reason(config)
    if reason is not None:
        log.info("ACME is off: %s", reason)
        return None
    manager = CertificateManager(config, tls, txt_records)
    if not await manager.start():
        return None
    return manager


def _day(stored: StoredCertificate) -> str:
    return stored.not_after.strftime("%Y-%m-%d %H:%M UTC")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _is_local_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or _is_loopback(host)
