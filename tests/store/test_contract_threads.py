"""Store contract for engines that may be called from several threads at once.

The Rust engine releases the GIL while it registers and polls, so threads
really run inside it together. The Python engine serves one asyncio loop and makes no
claim of thread safety, so these tests skip it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from contract_helpers import Owner, private_key, records, session_id
from interactsh.errors import AlreadyRegisteredError
from interactsh.store.base import Store, StoreOptions

THREADS = 4
RECORDS_PER_THREAD = 300
OPTIONS = StoreOptions(max_page_items=40)


@pytest.fixture
def thread_safe_class(store_class: type[Store], request: pytest.FixtureRequest) -> type[Store]:
    """The class of an engine that promises thread safety."""
    if request.node.callspec.params["store_class"] == "python":
        pytest.skip("the python engine runs on one asyncio loop and is not meant to be thread-safe")
    return store_class


def test_threads_lose_no_records(thread_safe_class: type[Store]) -> None:
    threaded_store = thread_safe_class(OPTIONS)
    owners = [Owner(session_id(number), private_key(1024)) for number in range(THREADS)]
    for owner in owners:
        owner.register(threaded_store)
    start = threading.Barrier(THREADS)

    def work(owner: Owner) -> list[bytes]:
        start.wait()
        received: list[bytes] = []
        for number, record in enumerate(records(RECORDS_PER_THREAD, prefix=owner.correlation_id)):
            assert threaded_store.append(owner.correlation_id, record)
            if number % 25 == 0:
                received += owner.take(threaded_store).data
        return received + owner.drain(threaded_store)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, owners))
    for owner, received in zip(owners, results, strict=True):
        assert received == records(RECORDS_PER_THREAD, prefix=owner.correlation_id)
    assert threaded_store.stats().queued_items == 0


def test_threads_share_buckets(thread_safe_class: type[Store]) -> None:
    threaded_store = thread_safe_class(OPTIONS)
    owners = [Owner(session_id(number), private_key(1024)) for number in range(THREADS)]
    for owner in owners:
        owner.register(threaded_store)
    sent = records(RECORDS_PER_THREAD, prefix="shared")
    start = threading.Barrier(THREADS + 1)
    written = threading.Event()

    def write() -> None:
        start.wait()
        for record in sent:
            threaded_store.append_shared("extra", record)
        written.set()

    def read(owner: Owner) -> list[bytes]:
        start.wait()
        received: list[bytes] = []
        # Stop at the first empty page that began after the writer finished.
        # The size check stops a store that repeats records forever.
        while len(received) <= 2 * len(sent):
            finished = written.is_set()
            batch = owner.take(threaded_store, extra=True).extra or []
            if not batch and finished:
                break
            received += batch
        return received

    with ThreadPoolExecutor(THREADS + 1) as pool:
        writer = pool.submit(write)
        readers = [pool.submit(read, owner) for owner in owners]
        writer.result(timeout=60)
        for reader in readers:
            assert reader.result(timeout=60) == sent


def test_concurrent_register_one_winner(thread_safe_class: type[Store]) -> None:
    threaded_store = thread_safe_class(OPTIONS)
    owners = [Owner(session_id(7), private_key(1024), secret=f"secret-{number}") for number in range(8)]
    start = threading.Barrier(len(owners))

    def register(owner: Owner) -> bool | None:
        start.wait()
        try:
            return owner.register(threaded_store)
        except AlreadyRegisteredError:
            return None

    with ThreadPoolExecutor(len(owners)) as pool:
        outcomes = list(pool.map(register, owners))
    assert outcomes.count(True) == 1
    assert outcomes.count(None) == len(owners) - 1
    winner = owners[outcomes.index(True)]
    assert winner.take(threaded_store).data == []
    assert len(threaded_store) == 1
