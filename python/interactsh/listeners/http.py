"""The HTTP listener: the client API and interaction capture on one port.

:func:`build_app` returns the ASGI app. Its starlette router sends the exact
API paths to the API routes and every other request to the capture route.
:func:`start_http` serves the app with uvicorn (httptools) inside the running
event loop, which the other listeners share, so it runs on uvloop when the
caller's loop is uvloop.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import socket
from typing import Any, cast

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from interactsh.config import ServerConfig
from interactsh.listeners.binding import bind_error
from interactsh.listeners.http_api import ApiContext, DeregisterRoute, MetricsRoute, PollRoute, RegisterRoute
from interactsh.listeners.http_capture import Capture
from interactsh.listeners.http_protocol import CaptureProtocol, ConnectionLimiter, ProtocolSettings
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.http")

LISTEN_BACKLOG = 2048


def build_app(config: ServerConfig, recorder: Recorder) -> ASGIApp:
    """Return the ASGI app of the API routes and the capture route."""
    context = ApiContext(config, recorder)
    routes = [
        Route("/register", RegisterRoute(context)),
        Route("/deregister", DeregisterRoute(context)),
        Route("/poll", PollRoute(context)),
    ]
    if config.metrics:
        routes.append(Route("/metrics", MetricsRoute(context)))
    capture = Capture(config, recorder)
    app = Starlette(routes=routes)
    # Upstream's mux has no slash redirects: /register/ is ordinary capture traffic.
    app.router.redirect_slashes = False
    app.router.default = capture
    app.state.capture = capture
    return app


class HttpListener:
    """A running HTTP listener."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket, main_loop: asyncio.Task[None]) -> None:
        self.server = server
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._main_loop = main_loop
        self._closed = False

    async def close(self) -> None:
        """Stop accepting, let open requests finish within the shutdown timeout, then drop the rest."""
        if self._closed:
            return
        self._closed = True
        self.server.should_exit = True
        await self._main_loop
        await self.server.shutdown(sockets=[self._sock])
        for connection in list(self.server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.abort()
        log.debug("HTTP listener on port %d closed", self.port)


async def start_http(config: ServerConfig, app: ASGIApp) -> HttpListener:
    """Bind ``config.listen_ip:config.http_port`` (0: a free port) and serve ``app`` in this loop.

    Raises ``OSError`` naming the address when the port cannot be bound.
    """
    sock = bind_socket(config.listen_ip, config.http_port)
    server = uvicorn_server(config, app, config.http_port)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    await server.on_tick(0)
    main_loop = asyncio.create_task(server.main_loop(), name="interactsh-http-main-loop")
    listener = HttpListener(server, sock, main_loop)
    log.debug("HTTP listener on %s port %d", config.listen_ip, listener.port)
    return listener


def uvicorn_server(config: ServerConfig, app: ASGIApp, port: int) -> uvicorn.Server:
    """Return a uvicorn server for ``app`` with the capture protocol, its limits and its reject hook.

    The caller runs the server's steps itself, because ``Server.serve()`` would
    also take over SIGINT and SIGTERM, which belong to the caller.
    """
    capture = getattr(getattr(app, "state", None), "capture", None)
    settings = ProtocolSettings(
        max_head_size=config.max_request_size,
        head_timeout=config.http_header_timeout,
        limiter=ConnectionLimiter(config.http_max_connections_per_ip),
        reject_hook=capture.record_rejected if isinstance(capture, Capture) else None,
    )
    uvicorn_config = uvicorn.Config(
        cast(Any, app),
        host=config.listen_ip,
        port=port,
        http=cast(Any, functools.partial(CaptureProtocol, settings=settings)),
        ws="none",
        lifespan="off",
        interface="asgi3",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=math.ceil(config.http_shutdown_timeout),
    )
    uvicorn_config.load()
    server = uvicorn.Server(uvicorn_config)
    server.lifespan = uvicorn_config.lifespan_class(uvicorn_config)
    return server


def bind_socket(
    host: str, port: int, service: str = "the HTTP listener", port_flag: str = "-http-port"
) -> socket.socket:
    """Return a listening TCP socket on ``host:port``; raise ``OSError`` naming the address and the fix."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as error:
        raise bind_error(error, service, host, port, port_flag) from error
