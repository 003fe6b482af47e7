"""The HTTPS listener in-process: a reloaded certificate is served from the next handshake on."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from certfiles import write_self_signed
from cryptography import x509
from interactsh.config import ServerConfig
from interactsh.errors import ConfigurationError
from interactsh.listeners.https import start_https
from interactsh.tls import TlsProvider
from starlette.types import Receive, Scope, Send

HOST = "127.0.0.1"


async def scheme_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reply with the request's ASGI scheme."""
    body = str(scope["scheme"]).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def served_certificate(port: int, context: ssl.SSLContext) -> x509.Certificate:
    _, writer = await asyncio.open_connection(HOST, port, ssl=context, server_hostname="oast.test")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


async def fetch(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port, ssl=context, server_hostname="oast.test")
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: oast.test\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


def run_on(loop_kind: str, scenario: Coroutine[Any, Any, None]) -> None:
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(scenario)
    else:
        asyncio.run(scenario)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_reloaded_certificate_served(loop_kind: str, tmp_path: Path) -> None:
    first_cert, first_key, first = write_self_signed(tmp_path, ["oast.test"], "first")
    second_cert, second_key, second = write_self_signed(tmp_path, ["oast.test"], "second")
    tls = TlsProvider(str(first_cert), str(first_key))
    tls.load()
    # The client trusts both certificates, so each handshake verifies whichever is served.
    context = ssl.create_default_context(cafile=str(first_cert))
    context.load_verify_locations(cafile=str(second_cert))
    config = ServerConfig(https_port=0)

    async def scenario() -> None:
        listener = await start_https(config, scheme_app, tls)
        try:
            assert await served_certificate(listener.port, context) == first
            tls.load(str(second_cert), str(second_key))
            assert await served_certificate(listener.port, context) == second
            # A failed reload leaves the last good certificate in place.
            with pytest.raises(ConfigurationError):
                tls.load(str(tmp_path / "missing.pem"), str(second_key))
            assert await served_certificate(listener.port, context) == second
            reply = await fetch(listener.port, context)
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
            assert reply.endswith(b"\r\n\r\nhttps")
        finally:
            await listener.close()

    run_on(loop_kind, scenario())


def test_https_port_in_use_reported(tmp_path: Path) -> None:
    cert, key, _ = write_self_signed(tmp_path, ["oast.test"])
    tls = TlsProvider(str(cert), str(key))
    tls.load()

    async def scenario() -> None:
        listener = await start_https(ServerConfig(https_port=0), scheme_app, tls)
        try:
            with pytest.raises(OSError, match=f"port {listener.port}.*-https-port"):
                await start_https(ServerConfig(https_port=listener.port), scheme_app, tls)
        finally:
            await listener.close()

    asyncio.run(scenario())
