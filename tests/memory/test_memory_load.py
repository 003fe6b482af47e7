"""A bounded flood into a server with a small memory limit: it stays under the limit and keeps answering.

The flood sends about twice the limit's worth of captured bytes over HTTP,
plus DNS queries, to sessions of which half are idle (never polled) and half
are kept active by keep-alive registrations. The test asserts behaviour: the
resident size never passes the limit, polls keep working, and the store
counts what it evicted or rejected. It makes no assertion on speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import dns.message
import dns.query
import httpx
import pytest
from interactsh.client import InteractshClient
from serverproc import HOST, RunningServer

StartServer = Callable[..., RunningServer]
MIB = 1024 * 1024
LIMIT_MIB = 128
BODY = b"f" * (48 * 1024)
# Twice the limit's worth of request bodies, sent by WORKERS threads.
HTTP_REQUESTS = 2 * LIMIT_MIB * MIB // len(BODY)
DNS_QUERIES = 1500
WORKERS = 4
SESSIONS = 6
# The store needs room above the start-up footprint, or the test proves nothing.
MAX_IDLE_SHARE = 0.6


def status_bytes(pid: int, name: str) -> int:
    """Return the ``name`` line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``...) in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"/proc/{pid}/status has no {name} line")


def send_http(server: RunningServer, hosts: list[str], count: int) -> int:
    """Send ``count`` captured POST requests spread over ``hosts``; return how many got 200."""
    answered = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for number in range(count):
            response = client.post(f"/flood/{number}", content=BODY, headers={"Host": hosts[number % len(hosts)]})
            answered += response.status_code == 200
    return answered


def send_dns(server: RunningServer, hosts: list[str], count: int) -> int:
    """Send ``count`` DNS queries spread over ``hosts``; return how many got an answer."""
    answered = 0
    for number in range(count):
        query = dns.message.make_query(hosts[number % len(hosts)], "TXT")
        reply = dns.query.udp(query, HOST, port=server.dns_port, timeout=5)
        answered += reply.rcode() == 0
    return answered


def keep_alive(server: RunningServer, clients: list[InteractshClient], stop: threading.Event) -> list[int]:
    """Re-register and poll the active sessions every half second until ``stop``; return the poll statuses."""
    statuses: list[int] = []
    while not stop.wait(0.5):
        for client in clients:
            client.register()
            response = httpx.get(
                f"{server.base_url}/poll", params={"id": client.correlation_id, "secret": client.secret}, timeout=30
            )
            statuses.append(response.status_code)
    return statuses


@pytest.mark.slow
def test_flood_stays_under_limit(start_server: StartServer) -> None:
    server = start_server("-metrics", "-max-memory", str(LIMIT_MIB), "-memory-idle-seconds", "1")
    limit = LIMIT_MIB * MIB
    idle = status_bytes(server.process.pid, "VmRSS")
    assert idle < MAX_IDLE_SHARE * limit, f"idle resident size {idle // MIB} MiB leaves too little of {LIMIT_MIB} MiB"

    clients = [server.client(key_bits=1024) for _ in range(SESSIONS)]
    active = clients[: SESSIONS // 2]
    hosts = [client.payload(server.domain) for client in clients]
    stop = threading.Event()
    with ThreadPoolExecutor(WORKERS + 2) as pool:
        poller = pool.submit(keep_alive, server, active, stop)
        dns_done = pool.submit(send_dns, server, hosts, DNS_QUERIES)
        http_done = [pool.submit(send_http, server, hosts, HTTP_REQUESTS // WORKERS) for _ in range(WORKERS)]
        http_answered = sum(future.result(timeout=100) for future in http_done)
        dns_answered = dns_done.result(timeout=100)
        stop.set()
        statuses = poller.result(timeout=30)
        time.sleep(0.5)

    assert server.alive(), server.logs()[-4000:]
    # VmHWM is the kernel's exact peak of the resident size over the process's life.
    peak = status_bytes(server.process.pid, "VmHWM")
    assert peak <= limit, f"peak resident size {peak / MIB:.1f} MiB passed the {LIMIT_MIB} MiB limit"
    assert http_answered == WORKERS * (HTTP_REQUESTS // WORKERS)
    assert dns_answered == DNS_QUERIES
    assert statuses
    assert set(statuses) == {200}
    for client in clients:
        assert isinstance(client.poll().interactions, list)

    headers = {"Authorization": server.token} if server.token else {}
    document = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10).json()
    memory = document["memory"]
    assert memory["store-bytes"] <= memory["store-budget"]
    assert memory["evicted-items"] + memory["refused-items"] + memory["dropped-items"] > 0
    assert document["recorded"] > 0
