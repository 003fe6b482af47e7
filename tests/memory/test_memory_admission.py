"""Admission under critical pressure, through the real HTTP listener on a loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
from interactsh.config import ServerConfig
from interactsh.listeners.http import build_app, start_http
from interactsh.metrics import Counters
from interactsh.recording import Recorder
from interactsh.store.python_store import PythonStore
from memory_helpers import public_key_b64

FIRST_ID = "c" * 20
SECOND_ID = "d" * 20
SECRET = "0b9a7c2e-5d6e-4f70-8192-a3b4c5d6e7f8"


def register_body(correlation_id: str) -> bytes:
    document = {"correlation-id": correlation_id, "secret-key": SECRET, "public-key": public_key_b64()}
    return json.dumps(document).encode()


def serve(recorder: Recorder, check: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    """Run ``check`` against the HTTP listener of ``recorder`` on a free loopback port."""

    async def run() -> None:
        listener = await start_http(recorder.config, build_app(recorder.config, recorder))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.port}", timeout=10) as client:
                await check(client)
        finally:
            await listener.close()

    asyncio.run(run())


def make_recorder(**fields: object) -> Recorder:
    config = ServerConfig(http_port=0, **fields)  # type: ignore[arg-type]
    return Recorder(config, PythonStore(config.store_options()), Counters())


def test_rejects_new_registrations() -> None:
    recorder = make_recorder()
    recorder.admission.reject_registrations = True

    async def check(client: httpx.AsyncClient) -> None:
        response = await client.post("/register", content=register_body(FIRST_ID))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "60"
        assert "low on memory" in response.json()["error"]

    serve(recorder, check)
    assert recorder.admission.rejected_registrations == 1
    assert not recorder.store.contains(FIRST_ID)


def test_refresh_still_accepted() -> None:
    recorder = make_recorder()

    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.post("/register", content=register_body(FIRST_ID))).status_code == 200
        recorder.admission.reject_registrations = True
        refreshed = await client.post("/register", content=register_body(FIRST_ID))
        assert refreshed.status_code == 200
        assert refreshed.json() == {"message": "registration successful"}
        rejected = await client.post("/register", content=register_body(SECOND_ID))
        assert rejected.status_code == 503
        recorder.admission.reject_registrations = False
        assert (await client.post("/register", content=register_body(SECOND_ID))).status_code == 200

    serve(recorder, check)
    assert recorder.admission.rejected_registrations == 1


def test_capture_limit_read_per_request() -> None:
    recorder = make_recorder(max_request_size=4096)

    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.post("/register", content=register_body(FIRST_ID))).status_code == 200
        host = {"host": f"{FIRST_ID}{'n' * 13}.oast.test"}
        await client.post("/full", content=b"a" * 3000, headers=host)
        recorder.admission.capture_limit = 1000
        await client.post("/cut", content=b"b" * 3000, headers=host)

    serve(recorder, check)
    reply = recorder.store.poll(FIRST_ID, SECRET)
    assert reply.data_count == 2
    stats = recorder.store.stats()
    # The second body was cut to 1000 bytes, so the two records differ by about 2000 bytes.
    assert 3000 + 1000 < stats.queued_bytes < 2 * 3000


def test_full_store_answers_capture() -> None:
    recorder = make_recorder()

    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.post("/register", content=register_body(FIRST_ID))).status_code == 200
        recorder.store.set_budget(recorder.store.stats().total_bytes + 1)
        response = await client.get("/", headers={"host": f"{FIRST_ID}{'n' * 13}.oast.test"})
        assert response.status_code == 200

    serve(recorder, check)
    assert recorder.store.stats().refused_items == 1
    assert recorder.counters.http == 1
