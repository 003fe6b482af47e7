"""Register secrets and rate-limit wording over real sockets."""

from __future__ import annotations

import json

import httpx
import pytest
from http_helpers import HOST
from interactsh.client import InteractshClient

MISSING_SECRET = "could not set id and public key: secret-key is missing: send the client secret"


def register_document(client: InteractshClient, secret: str | None) -> dict[str, str | None]:
    document: dict[str, str | None] = {
        "correlation-id": client.correlation_id,
        "public-key": client.public_key_b64(),
        "secret-key": secret,
    }
    if secret == "<absent>":
        del document["secret-key"]
    return document


@pytest.mark.parametrize("secret", ["<absent>", None, ""], ids=["absent", "null", "empty"])
def test_register_without_secret_is_rejected(http_server, secret: str | None) -> None:
    server = http_server()
    client = server.client(register=False)
    response = httpx.post(server.base_url + "/register", content=json.dumps(register_document(client, secret)))
    assert response.status_code == 400
    assert response.json() == {"error": MISSING_SECRET}
    assert server.store.stats().sessions == 0, "a session that no poll could reach was created"


def test_register_secret_length_cap(http_server) -> None:
    server = http_server(max_secret_length=40)
    client = server.client(register=False)
    too_long = httpx.post(server.base_url + "/register", content=json.dumps(register_document(client, "s" * 41)))
    assert too_long.status_code == 400
    expected = "could not set id and public key: secret-key is 41 characters long, over the maximum of 40"
    assert too_long.json() == {"error": expected + ": send a shorter secret"}
    assert server.store.stats().sessions == 0
    at_cap = httpx.post(server.base_url + "/register", content=json.dumps(register_document(client, "s" * 40)))
    assert at_cap.status_code == 200


def test_default_secret_cap_fits_uuid_clients(http_server) -> None:
    server = http_server()
    client = server.client()
    assert server.config.max_secret_length == 256
    assert len(client.secret) == 36
    assert server.store.stats().sessions == 1


def test_retry_after_one_second_is_singular(http_server) -> None:
    server = http_server(http_register_rate=60)
    response = httpx.post(server.base_url + "/register", content=b"{}")
    for _ in range(200):
        if response.status_code == 429:
            break
        assert response.status_code == 400
        response = httpx.post(server.base_url + "/register", content=b"{}")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"error": f"too many requests from {HOST}: retry after 1 second"}
