"""Register, interact over DNS and HTTP, poll and decrypt, against the real process."""

from __future__ import annotations

import asyncio
import os
import urllib.request

import dns.message
import dns.query
import dns.rdatatype
import pytest
from interactsh_mcp.client import InteractshClient as McpClient

from serverproc import HOST, RunningServer

ENGINES = ["rust", "python"]


def resolve(server: RunningServer, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, HOST, port=server.dns_port, timeout=5)


def fetch(server: RunningServer, host: str, path: str = "/") -> bytes:
    request = urllib.request.Request(f"{server.base_url}{path}", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def interact(server: RunningServer, payload: str) -> None:
    assert resolve(server, payload).answer, "the A query for the payload got no answer"
    assert resolve(server, payload, "TXT", tcp=True).rcode() == 0
    fetch(server, payload, "/probe")


def check_interactions(items: list[dict[str, object]], payload: str) -> None:
    unique_id = payload.split(".")[0]
    by_protocol = sorted((str(item["protocol"]), str(item.get("q-type", ""))) for item in items)
    assert by_protocol == [("dns", "A"), ("dns", "TXT"), ("http", "")]
    for item in items:
        assert item["unique-id"] == unique_id
        assert item["full-id"] == unique_id
        assert item["remote-address"] == HOST
    http_item = next(item for item in items if item["protocol"] == "http")
    assert str(http_item["raw-request"]).startswith("GET /probe HTTP/1.1\r\n")


@pytest.mark.parametrize("engine", ENGINES)
def test_interactsh_mcp_round_trip(start_server, engine: str) -> None:
    server = start_server(engine=engine)

    async def scenario() -> list[dict[str, object]]:
        client = McpClient(server=f"{HOST}:{server.http_port}", scheme="http", token=None)
        await client.register()
        payload = client.generate_payload().split(".")[0] + "." + server.domain
        await asyncio.to_thread(interact, server, payload)
        interactions = await client.poll()
        again = await client.poll()
        assert again == [], "a second poll returned items that the first one delivered"
        await client.aclose()
        check_interactions([item.raw for item in interactions], payload)
        return [item.raw for item in interactions]

    asyncio.run(scenario())
    if os.environ.get("CI") and engine == "rust":
        assert "store engine: RustStore" in server.logs()


@pytest.mark.parametrize("engine", ENGINES)
def test_own_client_cfb_round_trip(start_server, engine: str) -> None:
    server = start_server("-aes-mode", "cfb", engine=engine)
    client = server.client(aes_mode="cfb")
    payload = client.payload(server.domain)
    interact(server, payload)
    result = client.poll()
    check_interactions(result.interactions, payload)
    assert result.raw["extra"] is None
    assert "tlddata" not in result.raw


def test_aes_mode_chosen_per_session(start_server) -> None:
    server = start_server()
    ctr_client = server.client()
    cfb_client = server.client(aes_mode="cfb", send_aes_mode=True)
    for client in (ctr_client, cfb_client):
        payload = client.payload(server.domain)
        interact(server, payload)
        check_interactions(client.poll().interactions, payload)


def test_deregister_then_poll_fails(server: RunningServer) -> None:
    client = server.client()
    assert client.deregister() == {"message": "deregistration successful"}
    with pytest.raises(Exception) as caught:
        client.poll()
    assert getattr(caught.value, "status", None) == 400
