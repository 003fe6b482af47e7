"""Throughput of the two store engines on the same inputs, through the Python interface.

Run with ``python -m pytest benches/test_store_bench.py --benchmark-only``
and pass ``--benchmark-json FILE`` to feed ``benches/ratios.py``. On a shared
machine add ``--benchmark-timer time.process_time``, so that rounds count the
process's CPU time and not the time other processes ran. Each benchmark runs
once per engine, in a group named after the operation, so pytest-benchmark
prints the engines side by side.

The batch benchmarks time 1,000 operations per round on 1,000 distinct
typical records (DNS and HTTP alternating, see ``records.py``). Untimed setup
empties or fills the session between rounds, so every round starts from the
same state. Checks inside the timed functions only compare integers and raise
on a wrong count. They never compare times.
"""

from __future__ import annotations

import itertools
import resource
import statistics
from collections.abc import Callable, Iterator

import pytest
from interactsh.store import Store, StoreOptions, create_store
from pytest_benchmark.fixture import BenchmarkFixture
from records import SECRET, RecordFactory, correlation_id, public_key_b64, unique_id

ENGINES = ("python", "rust")
BATCH = 1_000
ROUNDS = 200
# Untimed polls after a poll benchmark that count the minor page faults of one poll.
FAULT_SAMPLES = 10
# Record sizes of the poll sweep, around the typical records (about 1 KB): it separates the
# cost per record from the cost per byte.
SWEEP_SIZES = (64, 8192)
WARMUP_ROUNDS = 5
# Register numbers sessions from here, away from the batch benchmarks' session.
_REGISTER_FIRST_NUMBER = 1_000_000


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The store engine under test, once per engine."""
    return str(request.param)


@pytest.fixture(scope="module")
def batch() -> list[bytes]:
    """1,000 distinct typical records for one session, DNS and HTTP alternating."""
    factories = (RecordFactory("dns"), RecordFactory("http"))
    cid = correlation_id(1)
    return [factories[number % 2].build(unique_id(cid, number)) for number in range(BATCH)]


def padded_records(size: int) -> list[bytes]:
    """Return 1,000 distinct JSON records of exactly ``size`` bytes."""
    records = []
    for number in range(BATCH):
        head = b'{"protocol":"http","unique-id":"%d","pad":"' % number
        records.append(head + b"x" * (size - len(head) - 2) + b'"}')
    return records


def open_store(engine: str) -> Store:
    """Create an engine whose limits fit a whole batch in one session and in one poll page."""
    options = StoreOptions(max_session_items=2 * BATCH, max_page_items=2 * BATCH, max_page_bytes=64 * 1024 * 1024)
    return create_store(engine, options)


def registered_store(engine: str) -> tuple[Store, str]:
    """Create a store with the batch session registered; return it and the session's id."""
    store = open_store(engine)
    cid = correlation_id(1)
    store.register(cid, SECRET, public_key_b64())
    return store, cid


def drain(store: Store, cid: str) -> None:
    """Poll and commit until the session's queue is empty."""
    while True:
        reply = store.poll(cid, SECRET)
        store.commit(reply)
        if reply.data_count == 0:
            return


def fill(store: Store, cid: str, records: list[bytes]) -> None:
    """Queue ``records`` and raise when one was not stored."""
    for record in records:
        if not store.append(cid, record):
            raise RuntimeError(f"append to session {cid} failed: the session is not registered")


def poll_all(store: Store, cid: str, expected: int) -> None:
    """Poll and commit one page; raise when it did not carry ``expected`` items."""
    reply = store.poll(cid, SECRET)
    store.commit(reply)
    if reply.data_count != expected:
        raise RuntimeError(f"poll of session {cid} returned {reply.data_count} items, expected {expected}")


def poll_page_faults(store: Store, cid: str, records: list[bytes]) -> float:
    """Return the median count of minor page faults during one poll and commit of ``records``.

    A reply body of a megabyte or more comes from freshly mapped memory
    unless the allocator keeps it, and touching it costs one fault per page.
    """
    counts = []
    for _ in range(FAULT_SAMPLES):
        fill(store, cid, records)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        poll_all(store, cid, len(records))
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(counts)


def setup_with(action: Callable[[], None]) -> Callable[[], tuple[tuple[()], dict[str, object]]]:
    """Wrap ``action`` as a pytest-benchmark setup that passes no arguments."""

    def setup() -> tuple[tuple[()], dict[str, object]]:
        action()
        return (), {}

    return setup


def run_rounds(benchmark: BenchmarkFixture, target: Callable[[], None], setup: Callable[[], None]) -> None:
    """Time ``target`` once per round, after an untimed ``setup``."""
    # pytest-benchmark 5.3 leaves pedantic() without annotations.
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        target, setup=setup_with(setup), rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1
    )


@pytest.mark.benchmark(group="register")
def test_register(benchmark: BenchmarkFixture, engine: str) -> None:
    """One registration of a new session with a 2048-bit key: AES key generation and RSA-OAEP wrap."""
    store = open_store(engine)
    public_key = public_key_b64()
    numbers: Iterator[int] = itertools.count(_REGISTER_FIRST_NUMBER)

    def register() -> None:
        cid = correlation_id(next(numbers))
        if not store.register(cid, SECRET, public_key):
            raise RuntimeError(f"register of new session {cid} returned False")

    benchmark(register)


@pytest.mark.benchmark(group="append-1000")
def test_append_batch(benchmark: BenchmarkFixture, engine: str, batch: list[bytes]) -> None:
    """1,000 appends to one session that starts each round empty."""
    store, cid = registered_store(engine)
    run_rounds(benchmark, lambda: fill(store, cid, batch), lambda: drain(store, cid))
    assert store.stats().queued_items == BATCH


@pytest.mark.benchmark(group="poll-commit-1000")
def test_poll_commit_batch(benchmark: BenchmarkFixture, engine: str, batch: list[bytes]) -> None:
    """One poll of 1,000 queued records (encrypt, base64, JSON body) and its commit."""
    store, cid = registered_store(engine)
    run_rounds(benchmark, lambda: poll_all(store, cid, BATCH), lambda: fill(store, cid, batch))
    assert store.stats().queued_items == 0
    benchmark.extra_info["minor_faults_per_poll"] = poll_page_faults(store, cid, batch)


@pytest.mark.benchmark(group="append-poll-1000")
def test_append_poll_cycle(benchmark: BenchmarkFixture, engine: str, batch: list[bytes]) -> None:
    """1,000 appends, then one poll of all of them and its commit."""
    store, cid = registered_store(engine)

    def cycle() -> None:
        fill(store, cid, batch)
        poll_all(store, cid, BATCH)

    run_rounds(benchmark, cycle, lambda: None)
    assert store.stats().queued_items == 0


@pytest.mark.parametrize("size", SWEEP_SIZES, ids=[f"{size}B" for size in SWEEP_SIZES])
def test_poll_commit_sizes(benchmark: BenchmarkFixture, engine: str, size: int) -> None:
    """One poll of 1,000 queued records of ``size`` bytes and its commit."""
    benchmark.group = f"poll-commit-1000x{size}B"
    records = padded_records(size)
    store, cid = registered_store(engine)
    run_rounds(benchmark, lambda: poll_all(store, cid, BATCH), lambda: fill(store, cid, records))
    assert store.stats().queued_items == 0
    benchmark.extra_info["minor_faults_per_poll"] = poll_page_faults(store, cid, records)
