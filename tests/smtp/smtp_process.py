"""The real server process seen through the same surface as the in-process SMTP harness."""

from __future__ import annotations

from pathlib import Path

from interactsh.client import InteractshClient
from interactsh.tls import TlsProvider
from serverproc import RunningServer
from smtp_harness import DOMAIN


class ProcessClient:
    """A client of the real server process, registered over its HTTP API."""

    def __init__(self, client: InteractshClient) -> None:
        self.client = client
        self.correlation_id = client.correlation_id

    def payload(self) -> str:
        return self.client.payload(DOMAIN)

    def poll(self) -> list[dict[str, object]]:
        return self.client.poll().interactions

    def poll_tlddata(self) -> list[dict[str, object]]:
        return self.client.poll().tlddata


class ProcessTarget:
    """The real server process, seen through the same surface as :class:`SmtpHarness`."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.ports = {name: server.ports[name] for name in ("smtp", "smtps", "smtp-autotls")}

    def new_client(self) -> ProcessClient:
        return ProcessClient(self.server.client())


def tls_provider(certificate: tuple[Path, Path]) -> TlsProvider:
    provider = TlsProvider(str(certificate[0]), str(certificate[1]))
    provider.load()
    return provider
