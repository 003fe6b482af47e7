"""TLS server contexts for every listener that speaks TLS.

Listeners ask the :class:`TlsProvider` for its current context on each new
connection, so a renewed certificate is used without a restart once
:meth:`TlsProvider.load` has run again.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from interactsh.config import ServerConfig
from interactsh.errors import ConfigurationError

log = logging.getLogger("interactsh.tls")


class TlsProvider:
    """The server's current certificate as an ``ssl.SSLContext``, or none."""

    def __init__(self, cert_path: str = "", key_path: str = "") -> None:
        self.cert_path = cert_path
        self.key_path = key_path
        self.context: ssl.SSLContext | None = None
        # The same certificate with ALPN http/1.1, for HTTPS only, because other protocols must not negotiate HTTP.
        self.http_context: ssl.SSLContext | None = None

    @classmethod
    def from_config(cls, config: ServerConfig) -> TlsProvider:
        """Load ``-cert``/``-privkey`` when both are given; raise ``ConfigurationError`` when unreadable."""
        provider = cls(config.cert, config.privkey)
        if config.cert and config.privkey:
            provider.load()
        return provider

    @property
    def enabled(self) -> bool:
        """Tell whether a certificate is loaded."""
        return self.context is not None

    def load(self, cert_path: str | None = None, key_path: str | None = None) -> None:
        """Load (or reload) the certificate chain and key into a fresh context."""
        cert_path = cert_path or self.cert_path
        key_path = key_path or self.key_path
        # The paths are kept only once they load, so a failed reload leaves the working ones.
        context = _new_context(cert_path, key_path)
        http_context = _new_context(cert_path, key_path)
        http_context.set_alpn_protocols(["http/1.1"])
        self.cert_path = cert_path
        self.key_path = key_path
        self.context = context
        self.http_context = http_context
        log.info("loaded certificate %s", Path(self.cert_path).name)


def _new_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(
            f"could not load the certificate {cert_path!r} with key {key_path!r}: {error}; "
            "pass PEM files with -cert and -privkey"
        ) from None
    return context
