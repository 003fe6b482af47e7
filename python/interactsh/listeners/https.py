"""The HTTPS listener: the same ASGI app as HTTP, over TLS, with a certificate that can change while it runs.

The listening socket gets a front ``SSLContext`` with no certificate. OpenSSL
runs its SNI callback for every ClientHello, with or without a server name.
The callback switches the connection to the provider's current HTTP context,
so a certificate that :meth:`TlsProvider.load` reloaded (after an ACME
renewal, for example) is served from the next handshake on, without a
restart. That context offers ALPN ``http/1.1`` only, so HTTP/2 is not served.

uvicorn sets ``scope["scheme"]`` to ``https`` for TLS connections, which the
capture route records as ``protocol: https``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from starlette.types import ASGIApp

from interactsh.config import ServerConfig
from interactsh.listeners.http import LISTEN_BACKLOG, HttpListener, bind_socket, uvicorn_server
from interactsh.tls import TlsProvider

log = logging.getLogger("interactsh.http")


def front_context(tls: TlsProvider) -> ssl.SSLContext:
    """Return the listening socket's context, which hands each handshake the provider's current HTTP context."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])

    def select_certificate(
        connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        current = tls.http_context
        if current is not None:
            connection.context = current
        # Without a current context the handshake fails for want of a certificate, which is the right outcome.

    context.sni_callback = select_certificate
    return context


async def start_https(config: ServerConfig, app: ASGIApp, tls: TlsProvider) -> HttpListener:
    """Bind ``config.listen_ip:config.https_port`` (0: a free port) and serve ``app`` over TLS in this loop.

    Raises ``OSError`` naming the address when the port cannot be bound.
    """
    sock = bind_socket(config.listen_ip, config.https_port, "the HTTPS listener", "-https-port")
    server = uvicorn_server(config, app, config.https_port)
    try:
        # With an empty socket list, startup() only prepares the server: the TLS server is created here
        # because uvicorn cannot pass a handshake timeout to loop.create_server().
        await server.startup(sockets=[])
        loop = asyncio.get_running_loop()
        # uvicorn's protocol classes take these keyword arguments, as in Server.startup().
        protocol_class = cast(Callable[..., asyncio.Protocol], server.config.http_protocol_class)

        def create_protocol() -> asyncio.Protocol:
            return protocol_class(
                config=server.config, server_state=server.server_state, app_state=server.lifespan.state, _loop=loop
            )

        # NOTE: the per-address connection cap counts a connection only once its handshake is done, so
        # connections still in the handshake are bounded by the handshake timeout alone.
        tls_server = await loop.create_server(
            create_protocol,
            sock=sock,
            ssl=front_context(tls),
            backlog=LISTEN_BACKLOG,
            ssl_handshake_timeout=config.http_tls_handshake_timeout,
        )
    except BaseException:
        sock.close()
        raise
    server.servers.append(tls_server)
    await server.on_tick(0)
    main_loop = asyncio.create_task(server.main_loop(), name="interactsh-https-main-loop")
    listener = HttpListener(server, sock, main_loop)
    log.debug("HTTPS listener on %s port %d", config.listen_ip, listener.port)
    return listener
