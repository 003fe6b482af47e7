"""Helpers of the SMB tests: the listener in this process, an ``extra`` reader and an SMB client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from impacket.smbconnection import SessionError, SMBConnection  # type: ignore[import-untyped]
from interactsh.config import ServerConfig
from interactsh.listeners.smb import SmbListener, start_smb
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.base import Store
from interactsh.store.python_store import PythonStore

HOST = "127.0.0.1"
TIMEOUT = 10.0
# How long a test waits for the log reader to deliver lines the worker wrote.
RECORD_WAIT = 20.0
CONSUMER_ID = "smbreader00000000000"
CONSUMER_SECRET = "0c7e5a2b-8f14-4d39-9a6e-b1c2d3e4f5a6"
_keys: list[rsa.RSAPrivateKey] = []


def consumer_public_key() -> str:
    """Return one RSA public key, as a registration sends it, for every test of the session."""
    if not _keys:
        _keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    der = (
        _keys[0].public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
    return base64.b64encode(pem).decode("ascii")


@dataclass
class SmbHarness:
    """A running SMB listener, its store and recorder, and a registered ``extra`` consumer."""

    listener: SmbListener
    store: Store
    recorder: Recorder
    received: list[dict[str, Any]]

    def read(self) -> list[dict[str, Any]]:
        """Add the consumer's unread ``extra`` records to ``received`` and return all of them."""
        reply = self.store.poll(CONSUMER_ID, CONSUMER_SECRET, extra=True)
        self.store.commit(reply)
        self.received += [json.loads(item) for item in json.loads(reply.body)["extra"] or []]
        return self.received

    def requests(self) -> list[str]:
        return [str(record.get("raw-request", "")) for record in self.read()]

    async def wait_for(self, condition: Callable[[list[str]], bool]) -> list[str]:
        """Poll until ``condition`` holds for the raw requests; fail after ``RECORD_WAIT`` seconds."""
        deadline = time.monotonic() + RECORD_WAIT
        while not condition(requests := self.requests()):
            assert time.monotonic() < deadline, f"condition not met within {RECORD_WAIT} s; records: {requests}"
            await asyncio.sleep(0.05)
        return requests


def smb_config(**overrides: Any) -> ServerConfig:
    """Return a configuration with SMB on a free port and a fast log reader."""
    options: dict[str, Any] = {"smb": True, "token": "b" * 64, "smb_port": 0, "smb_poll_interval": 0.05}
    options.update(overrides)
    return ServerConfig(**options)


@asynccontextmanager
async def running_smb(config: ServerConfig) -> AsyncIterator[SmbHarness]:
    """Start the SMB listener with a Python store; close it on exit."""
    store = PythonStore(config.store_options())
    store.register(CONSUMER_ID, CONSUMER_SECRET, consumer_public_key())
    recorder = Recorder(config, store, Counters())
    listener = await start_smb(config, recorder)
    try:
        yield SmbHarness(listener, store, recorder, [])
    finally:
        await listener.close()


def smb_login(port: int, *, list_shares: bool = False) -> None:
    """Log in as CORP\\alice with NTLM, as a Windows client sends its hash, then disconnect.

    ``list_shares`` also asks for the share list, which the server refuses.
    """
    connection = SMBConnection(HOST, HOST, sess_port=port, timeout=TIMEOUT)
    try:
        connection.login("alice", "Passw0rd", domain="CORP")
        if list_shares:
            with contextlib.suppress(SessionError):
                connection.listShares()
    finally:
        connection.close()
