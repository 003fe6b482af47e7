"""The client API over real sockets: routes, CORS, auth, register, poll, deregister, metrics."""

from __future__ import annotations

import base64
import json
import re
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from http_helpers import DOMAIN, InProcessServer, awaitable_result, poll_items, raw_exchange, request_bytes
from interactsh.client import InteractshClient
from interactsh.config import ServerConfig
from interactsh.listeners.http_api import ApiContext, PollRoute
from interactsh.listeners.http_protocol import EXTENSION_KEY, RequestInfo
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore

JSON_TYPE = "application/json; charset=utf-8"
NOT_FOUND_POLL = b'{"error":"could not get interactions: could not get correlation-id from cache"}\n'
NOT_FOUND_DEREGISTER = b'{"error":"could not remove id: could not get correlation-id from cache"}\n'
ALREADY_EXISTS = b'{"error":"could not set id and public key: correlation-id provided already exists"}\n'
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-credentials": "true",
    "access-control-allow-headers": "Content-Type, Authorization",
}


def register_body(client: InteractshClient, **changes: str) -> bytes:
    body = {"public-key": client.public_key_b64(), "secret-key": client.secret, "correlation-id": client.correlation_id}
    body.update(changes)
    return json.dumps(body).encode()


def hit(server: InProcessServer, client: InteractshClient, path: str = "/") -> httpx.Response:
    return httpx.get(server.base_url + path, headers={"Host": client.payload(DOMAIN)})


# Routing and CORS.


@pytest.mark.parametrize("path", ["/register/", "/registerx", "/Register", "/poll/x", "/metrics"])
def test_near_api_paths_are_captured(http_server, path: str) -> None:
    server = http_server()
    client = server.client()
    response = hit(server, client, path)
    assert response.status_code == 200
    assert response.headers["x-interactsh-version"]
    items = poll_items(client)
    assert [item["raw-request"].split("\r\n")[0] for item in items] == [f"GET {path} HTTP/1.1"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_register_accepts_any_method(http_server, method: str) -> None:
    server = http_server()
    client = server.client(register=False)
    response = httpx.request(method, server.base_url + "/register", content=register_body(client))
    assert response.status_code == 200
    assert response.content == b'{"message":"registration successful"}\n'


@pytest.mark.parametrize("path", ["/register", "/poll", "/deregister", "/"])
def test_cors_headers_on_every_route(http_server, path: str) -> None:
    server = http_server(acao_url="https://app.example")
    response = httpx.get(server.base_url + path)
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-headers"] == "Content-Type, Authorization"


@pytest.mark.parametrize("path", ["/register", "/poll", "/deregister", "/metrics"])
def test_options_on_api_is_204_without_auth(http_server, path: str) -> None:
    server = http_server(token="secret-token", metrics=True)
    response = httpx.options(server.base_url + path)
    assert response.status_code == 204
    assert response.content == b""
    for key, value in CORS.items():
        assert response.headers[key] == value
    assert "content-type" not in response.headers


def test_options_on_capture_is_recorded(http_server) -> None:
    server = http_server()
    client = server.client()
    response = httpx.options(server.base_url + "/x", headers={"Host": client.payload(DOMAIN)})
    assert response.status_code == 204
    assert "server" not in response.headers
    items = poll_items(client)
    assert len(items) == 1
    assert items[0]["raw-request"].startswith("OPTIONS /x HTTP/1.1\r\n")
    assert items[0]["raw-response"].startswith("HTTP/1.1 204 No Content\r\nConnection: close\r\n")


def test_api_response_headers_stay_small(http_server) -> None:
    server = http_server()
    reply = raw_exchange(server.http_port, request_bytes("GET", "/poll?id=x&secret=y", [("Host", "h")]))
    assert reply.status == 400
    assert len(reply.head) < 1024


# Authentication.


@pytest.mark.parametrize("value", [None, "", "Bearer secret-token", "SECRET-TOKEN", "secret-tokeN", "secret-tokenx"])
def test_wrong_token_gets_401_empty(http_server, value: str | None) -> None:
    server = http_server(token="secret-token")
    headers = {} if value is None else {"Authorization": value}
    for path in ("/register", "/poll?id=a&secret=b", "/deregister"):
        response = httpx.post(server.base_url + path, headers=headers, content=b"{}")
        assert response.status_code == 401
        assert response.content == b""
        assert "content-type" not in response.headers
        assert response.headers["access-control-allow-origin"] == "*"


def test_token_exact_match_passes(http_server) -> None:
    server = http_server(token="secret-token")
    client = server.client()
    hit(server, client)
    items = poll_items(client)
    assert len(items) == 1


def test_capture_needs_no_token(http_server) -> None:
    server = http_server(token="secret-token")
    client = server.client()
    response = httpx.get(server.base_url + "/", headers={"Host": client.payload(DOMAIN)})
    assert response.status_code == 200
    assert len(poll_items(client)) == 1


# Registration.


def test_register_reply_headers(http_server) -> None:
    server = http_server()
    client = server.client(register=False)
    response = httpx.post(server.base_url + "/register", content=register_body(client))
    assert response.headers["content-type"] == JSON_TYPE
    assert response.headers["x-content-type-options"] == "nosniff"


def test_register_same_secret_refreshes(http_server) -> None:
    server = http_server()
    client = server.client()
    hit(server, client)
    response = httpx.post(server.base_url + "/register", content=register_body(client))
    assert response.status_code == 200
    assert response.content == b'{"message":"registration successful"}\n'
    assert len(poll_items(client)) == 1, "re-registration with the same secret dropped the queue"


def test_register_other_secret_is_rejected(http_server) -> None:
    server = http_server()
    client = server.client()
    response = httpx.post(server.base_url + "/register", content=register_body(client, **{"secret-key": "other"}))
    assert response.status_code == 400
    assert response.content == ALREADY_EXISTS


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "the request body is empty"),
        (b"{", "Expecting property name"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'{"correlation-id": 5}', "'correlation-id' must be a string, got number"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"\xff\xfe{", "Expecting value"),
    ],
)
def test_register_bad_json(http_server, body: bytes, detail: str) -> None:
    server = http_server()
    response = httpx.post(server.base_url + "/register", content=body)
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("could not decode json body: ")
    assert detail in message
    assert server.counters.sessions == 0


def test_register_ignores_trailing_data_and_key_case(http_server) -> None:
    server = http_server()
    client = server.client(register=False)
    document = json.loads(register_body(client))
    document["Correlation-ID"] = document.pop("correlation-id")
    response = httpx.post(server.base_url + "/register", content=json.dumps(document).encode() + b" trailing")
    assert response.status_code == 200
    hit(server, client)
    assert len(poll_items(client)) == 1


def test_register_body_cap(http_server) -> None:
    server = http_server(max_register_body=1024)
    client = server.client(register=False)
    padded = register_body(client, padding="x" * 2000)
    response = httpx.post(server.base_url + "/register", content=padded)
    assert response.status_code == 413
    assert response.json()["error"] == "request body is over 1024 bytes: send a smaller body"

    def chunks() -> Any:
        yield padded[:500]
        yield padded[500:]

    streamed = httpx.post(server.base_url + "/register", content=chunks())
    assert streamed.status_code == 413


@pytest.mark.parametrize("mode", ["ctr", "cfb"])
def test_register_aes_mode_override(http_server, mode: str) -> None:
    server = http_server(aes_mode="ctr" if mode == "cfb" else "cfb")
    client = server.client(aes_mode=mode, send_aes_mode=True)
    hit(server, client, "/mode")
    items = poll_items(client)
    assert [item["raw-request"].split("\r\n")[0] for item in items] == ["GET /mode HTTP/1.1"]


def test_register_invalid_aes_mode(http_server) -> None:
    server = http_server()
    client = server.client(register=False)
    response = httpx.post(server.base_url + "/register", content=register_body(client, **{"aes-mode": "gcm"}))
    assert response.status_code == 400
    assert response.json()["error"] == "could not set id and public key: aes-mode 'gcm' is invalid: use ctr or cfb"


def test_register_error_text_is_html_escaped(http_server) -> None:
    server = http_server()
    client = server.client(register=False)
    body = register_body(client, **{"correlation-id": "<script>&"})
    response = httpx.post(server.base_url + "/register", content=body)
    assert response.status_code == 400
    assert b"\\u003cscript\\u003e\\u0026" in response.content
    assert b"<script>" not in response.content


def test_sessions_counter(http_server) -> None:
    server = http_server()
    client = server.client()
    httpx.post(server.base_url + "/register", content=register_body(client, **{"secret-key": "other"}))
    assert server.counters.sessions == 2, "upstream counts every decoded registration attempt"
    wrong = json.dumps({"correlation-id": client.correlation_id, "secret-key": "WRONG"}).encode()
    assert httpx.post(server.base_url + "/deregister", content=wrong).content == NOT_FOUND_DEREGISTER
    assert httpx.post(server.base_url + "/deregister", content=b"not json").status_code == 400
    assert server.counters.sessions == 2, "a failed deregistration moved the sessions gauge"
    client.deregister()
    assert server.counters.sessions == 1


# Polling.


def test_poll_missing_parameters(http_server) -> None:
    server = http_server()
    for query, message in (("", "no id specified for poll"), ("?id=abc", "no secret specified for poll")):
        response = httpx.get(server.base_url + "/poll" + query)
        assert response.status_code == 400
        assert response.content == json.dumps({"error": message}, separators=(",", ":")).encode() + b"\n"


def test_poll_reply_format(http_server) -> None:
    server = http_server()
    client = server.client()
    response = httpx.get(server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.content.endswith(b"}\n")
    document = response.json()
    assert list(document) == ["data", "extra", "aes_key"]
    assert document["data"] is None
    assert document["extra"] is None
    assert len(base64.b64decode(document["aes_key"])) == 256


def test_poll_extra_with_token(http_server) -> None:
    server = http_server(token="t0ken")
    client = server.client()
    response = httpx.get(
        server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}", headers={"Authorization": "t0ken"}
    )
    assert response.json()["extra"] is None
    server.call(lambda: server.store.append_shared("extra", b'{"protocol":"ftp"}'))
    response = httpx.get(
        server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}", headers={"Authorization": "t0ken"}
    )
    assert response.json()["extra"] == ['{"protocol":"ftp"}']


def test_poll_drains_once(http_server) -> None:
    server = http_server()
    client = server.client()
    hit(server, client)
    assert len(poll_items(client)) == 1
    assert poll_items(client) == []


def test_head_poll_keeps_items(http_server) -> None:
    server = http_server()
    client = server.client()
    hit(server, client)
    response = httpx.head(server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}")
    assert response.status_code == 200
    assert len(poll_items(client)) == 1, "a HEAD poll, which carries no body, removed the items"


def _poll_route(server_config: ServerConfig) -> tuple[PollRoute, PythonStore, InteractshClient]:
    store = PythonStore(server_config.store_options())
    context = ApiContext(server_config, Recorder(server_config, store, Counters()))
    client = InteractshClient("http://unused")
    store.register(client.correlation_id, client.secret, client.public_key_b64())
    store.append(client.correlation_id, b'{"protocol":"http"}')
    return PollRoute(context), store, client


def _poll_scope(client: InteractshClient, lost: bool) -> dict[str, Any]:
    async def wait_drained(timeout: float) -> bool:
        return not lost

    connection = SimpleNamespace(lost=lost, wait_drained=wait_drained)
    info = RequestInfo(b"/poll", connection)  # type: ignore[arg-type]
    query = f"id={client.correlation_id}&secret={client.secret}".encode()
    return {
        "type": "http",
        "method": "GET",
        "path": "/poll",
        "query_string": query,
        "headers": [],
        "client": ("127.0.0.1", 1),
        "extensions": {EXTENSION_KEY: {"request": info}},
    }


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_poll_to_a_gone_client_keeps_items() -> None:
    route, store, client = _poll_route(ServerConfig())
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    awaitable_result(route(_poll_scope(client, lost=True), _no_body, send))
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert store.stats().queued_items == 1, "a poll reply to a closed connection removed the items"
    awaitable_result(route(_poll_scope(client, lost=False), _no_body, send))
    assert store.stats().queued_items == 0


def test_poll_failed_send_keeps_items() -> None:
    route, store, client = _poll_route(ServerConfig())

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset by peer")

    awaitable_result(route(_poll_scope(client, lost=False), _no_body, send))
    assert store.stats().queued_items == 1


# Deregistration.


def test_deregister(http_server) -> None:
    server = http_server()
    client = server.client()
    reply = client.deregister()
    assert reply == {"message": "deregistration successful"}
    response = httpx.get(server.base_url + f"/poll?id={client.correlation_id}&secret={client.secret}")
    assert response.content == NOT_FOUND_POLL


def test_deregister_bad_json(http_server) -> None:
    server = http_server()
    response = httpx.post(server.base_url + "/deregister", content=b"{'single': 'quotes'}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("could not decode json body: ")


# Metrics.


def test_metrics_document(http_server) -> None:
    server = http_server(metrics=True)
    client = server.client()
    hit(server, client)
    httpx.get(server.base_url + "/unmatched")
    response = httpx.get(server.base_url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON_TYPE
    assert response.headers["x-content-type-options"] == "nosniff"
    document = response.json()
    assert list(document)[:7] == ["dns", "ftp", "http", "ldap", "smb", "smtp", "sessions"]
    assert document["http"] == 2
    assert document["sessions"] == 1
    assert document["cache"]["hit-count"] == 1
    assert set(document["cache"]) == {
        "hit-count", "miss-count", "load-success-count", "load-error-count", "total-load-time", "eviction-count",
    }  # fmt: skip
    memory = document["memory"]
    assert "heap_allo" in memory
    assert "head_idle" in memory
    assert re.fullmatch(r"[0-9.]+(B|kB|MB|GB)", memory["alloc"])
    assert isinstance(memory["heap_objects"], int)
    assert set(document["cpu"]) == {"user", "system", "idle", "nice", "total"}
    assert document["cpu"]["total"] >= document["cpu"]["idle"]
    assert re.fullmatch(r"[0-9.]+(B|kB|MB|GB|TB)", document["network"]["received"])
    assert document["store"]["sessions"] == 1
    assert document["store"]["queued-items"] == 1


def test_metrics_needs_token(http_server) -> None:
    server = http_server(metrics=True, token="t0ken")
    assert httpx.get(server.base_url + "/metrics").status_code == 401
    assert httpx.get(server.base_url + "/metrics", headers={"Authorization": "t0ken"}).status_code == 200


def test_metrics_off_is_capture(http_server) -> None:
    server = http_server()
    response = httpx.get(server.base_url + "/metrics")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "x-interactsh-version" in response.headers
