"""The memory figures of ``/metrics`` in both formats, and the server with the optimization off or at critical."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.query
import httpx
import pytest
from interactsh.client import ClientError
from prometheus_client.parser import text_string_to_metric_families
from serverproc import HOST, RunningServer

StartServer = Callable[..., RunningServer]
ENGINES = ("rust", "python")
LEVELS = ("none", "low", "medium", "high", "critical")
UPSTREAM_MEMORY_KEYS = (
    "alloc", "total_alloc", "sys", "lookups", "mallocs", "frees", "heap_allo", "heap_sys", "head_idle",
    "heap_in_use", "heap_released", "heap_objects", "stack_in_use", "stack_sys", "mspan_in_use", "mspan_sys",
    "mcache_in_use", "mcache_sys",
)  # fmt: skip
MEMORY_KEYS = (
    "optimization", "rss", "peak-rss", "limit", "limit-source", "level", "ratio", "store-bytes", "store-budget",
    "store-budget-held",
    "capture-limit", "rejecting-registrations", "evicted-items", "dropped-items", "dropped-shared-items",
    "refused-items", "refused-sessions", "rejected-registrations", "expired-idle-sessions", "released-bytes", "malloc-trims",
    "samples", "transitions", "pool", "gc",
)  # fmt: skip
WAIT_SECONDS = 15.0


def get_metrics(server: RunningServer, **params: str) -> httpx.Response:
    headers = {"Authorization": server.token} if server.token else {}
    return httpx.get(f"{server.base_url}/metrics", params=params, headers=headers, timeout=10)


def prometheus_samples(text: str) -> dict[str, list[Any]]:
    """Return the samples of each metric family, keyed by family name."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def wait_for_log(server: RunningServer, text: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in server.logs():
        assert server.alive(), server.logs()[-4000:]
        assert time.monotonic() < deadline, f"{text!r} not logged within {WAIT_SECONDS} s:\n{server.logs()[-4000:]}"
        time.sleep(0.05)


def interact(server: RunningServer, host: str) -> None:
    """Send one DNS query and one HTTP request for ``host``."""
    query = dns.message.make_query(host, "A")
    dns.query.udp(query, HOST, port=server.dns_port, timeout=5)
    httpx.get(f"{server.base_url}/", headers={"Host": host}, timeout=10)


@pytest.mark.parametrize("engine", ENGINES)
def test_metrics_json_shape(start_server: StartServer, engine: str) -> None:
    server = start_server("-metrics", engine=engine)
    wait_for_log(server, "memory limit")
    response = get_metrics(server)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    document = response.json()
    for key in ("dns", "ftp", "http", "ldap", "smb", "smtp", "sessions", "cache", "cpu", "network", "store"):
        assert key in document, key
    memory = document["memory"]
    for key in UPSTREAM_MEMORY_KEYS + MEMORY_KEYS:
        assert key in memory, key
    assert memory["optimization"] is True
    assert memory["level"] in LEVELS
    assert memory["rss"] > 0
    assert 0 < memory["limit"] <= 1024 * 1024 * 1024
    assert 0 < memory["store-budget"] < memory["limit"]
    assert memory["store-bytes"] <= memory["store-budget"]
    assert set(memory["transitions"]) == set(LEVELS)
    assert len(memory["gc"]["thresholds"]) == 3
    assert memory["gc"]["frozen"] > 0
    assert "pool" not in document["store"]
    if engine == "rust":
        assert memory["pool"]["pooled"] is True
        assert memory["pool"]["classes"]
        assert "chunk-size" in memory["pool"]["classes"][0]
    else:
        assert memory["pool"] == {}


@pytest.mark.parametrize("engine", ENGINES)
def test_metrics_prometheus_shape(start_server: StartServer, engine: str) -> None:
    server = start_server("-metrics", engine=engine)
    wait_for_log(server, "memory limit")
    client = server.client(key_bits=1024)
    interact(server, client.payload(server.domain))
    response = get_metrics(server, format="prometheus")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = prometheus_samples(response.text)
    requests = {sample.labels["protocol"]: sample.value for sample in samples["interactsh_requests"]}
    assert requests["dns"] >= 1
    assert requests["http"] >= 1
    document = get_metrics(server).json()
    memory = document["memory"]
    assert samples["interactsh_memory_limit_bytes"][0].value == memory["limit"]
    assert samples["interactsh_store_budget_bytes"][0].value == memory["store-budget"]
    assert samples["interactsh_memory_pressure_level"][0].value == LEVELS.index(memory["level"])
    assert samples["interactsh_memory_resident_bytes"][0].value > 0
    assert samples["interactsh_memory_optimization"][0].value == 1
    thresholds = {sample.labels["generation"]: sample.value for sample in samples["interactsh_python_gc_threshold"]}
    assert thresholds == {str(index): value for index, value in enumerate(memory["gc"]["thresholds"])}
    transitions = {sample.labels["level"] for sample in samples["interactsh_memory_pressure_transitions"]}
    assert transitions == set(LEVELS)
    for name in ("interactsh_store_bytes", "interactsh_store_evicted_items", "interactsh_store_refused_items"):
        assert name in samples, name
    assert samples["interactsh_store_queued_items"][0].value == document["store"]["queued-items"]
    if engine == "rust":
        sizes = [sample.labels["chunk_size"] for sample in samples["interactsh_pool_class_pages"]]
        assert sizes
        assert samples["interactsh_pool_payloads"][0].value >= 2
    else:
        assert "interactsh_pool_class_pages" not in samples


def test_metrics_format_invalid(start_server: StartServer) -> None:
    server = start_server("-metrics")
    response = get_metrics(server, format="xml")
    assert response.status_code == 400
    assert "use json or prometheus" in response.json()["error"]


def test_prometheus_requires_token(start_server: StartServer) -> None:
    server = start_server("-metrics", "-token", "metrics-token")
    response = httpx.get(f"{server.base_url}/metrics", params={"format": "prometheus"}, timeout=10)
    assert response.status_code == 401
    assert response.content == b""
    server.token = "metrics-token"
    assert get_metrics(server, format="prometheus").status_code == 200


@pytest.mark.parametrize("engine", ENGINES)
def test_disabled_optimization_works(start_server: StartServer, engine: str) -> None:
    server = start_server("-disable-memory-optimization", "-metrics", engine=engine)
    wait_for_log(server, "memory optimization is off")
    client = server.client(key_bits=1024)
    interact(server, client.payload(server.domain))
    protocols = sorted(item["protocol"] for item in client.poll().interactions)
    assert protocols == ["dns", "http"]
    memory = get_metrics(server).json()["memory"]
    assert memory["optimization"] is False
    assert memory["limit"] is None
    assert memory["store-budget"] is None
    assert memory["level"] == "none"
    assert memory["samples"] == 0
    if engine == "rust":
        assert memory["pool"]["pooled"] is False
    client.deregister()


def test_critical_rejects_registrations(start_server: StartServer) -> None:
    # Far below the footprint of any Python process with these libraries, so the first sample is critical.
    server = start_server("-metrics", "-max-memory", "16", "-max-request-size-critical", "512")
    wait_for_log(server, "memory pressure rose from none to critical")
    with pytest.raises(ClientError) as caught:
        server.client(key_bits=1024)
    assert caught.value.status == 503
    assert b"low on memory" in caught.value.body
    response = httpx.get(f"{server.base_url}/", headers={"Host": f"x.{server.domain}"}, timeout=10)
    assert response.status_code == 200
    memory = get_metrics(server).json()["memory"]
    assert memory["level"] == "critical"
    assert memory["rejecting-registrations"] is True
    assert memory["rejected-registrations"] == 1
    assert memory["capture-limit"] == 512
    assert server.logs().count("memory pressure rose from none to critical") == 1
    assert "raise -max-memory" in server.logs()
