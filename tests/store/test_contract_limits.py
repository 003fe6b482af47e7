"""Store contract: per-session caps, TTL and expiry, and the stats counters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from contract_helpers import OTHER_SECRET, SECRET, FakeClock, Owner, records
from interactsh.errors import SessionNotFoundError
from interactsh.store.base import Store, StoreStats

MakeStore = Callable[..., Store]
TTL = 100.0


# Per-session caps


def test_item_cap_drops_oldest(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_session_items=3)
    owner.register(store)
    sent = records(5)
    for record in sent:
        assert store.append(owner.correlation_id, record) is True
    stats = store.stats()
    assert stats.dropped_items == 2
    assert stats.queued_items == 3
    assert stats.queued_bytes == sum(len(record) for record in sent[2:])
    assert owner.drain(store) == sent[2:]


def test_byte_cap_drops_oldest(make_store: MakeStore, owner: Owner) -> None:
    sent = records(5, 100)
    store = make_store(max_session_bytes=350)
    owner.register(store)
    for record in sent:
        assert store.append(owner.correlation_id, record) is True
    stats = store.stats()
    assert stats.dropped_items == 2
    assert stats.queued_bytes == 300
    assert owner.drain(store) == sent[2:]


def test_byte_cap_inclusive(make_store: MakeStore, owner: Owner) -> None:
    sent = records(3, 100)
    store = make_store(max_session_bytes=300)
    owner.register(store)
    for record in sent:
        store.append(owner.correlation_id, record)
    assert store.stats().dropped_items == 0
    assert owner.drain(store) == sent


def test_oversized_record_dropped_itself(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_session_bytes=300)
    owner.register(store)
    kept = records(2, 100, prefix="kept")
    for record in kept:
        store.append(owner.correlation_id, record)
    oversized = records(1, 301, prefix="big")[0]
    assert store.append(owner.correlation_id, oversized) is True
    stats = store.stats()
    assert stats.dropped_items == 1
    assert stats.queued_items == 2
    assert stats.queued_bytes == 200
    assert owner.drain(store) == kept


def test_caps_are_per_session(make_store: MakeStore, owner: Owner, other_owner: Owner) -> None:
    store = make_store(max_session_items=2)
    owner.register(store)
    other_owner.register(store)
    for record in records(4, prefix="a"):
        store.append(owner.correlation_id, record)
    for record in records(2, prefix="b"):
        store.append(other_owner.correlation_id, record)
    assert store.stats().dropped_items == 2
    assert owner.drain(store) == records(4, prefix="a")[2:]
    assert other_owner.drain(store) == records(2, prefix="b")


def test_cap_drops_between_poll_and_commit(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_session_items=3)
    owner.register(store)
    sent = records(6)
    for record in sent[:3]:
        store.append(owner.correlation_id, record)
    reply, _ = owner.poll(store)
    for record in sent[3:5]:
        store.append(owner.correlation_id, record)
    store.commit(reply)
    store.append(owner.correlation_id, sent[5])
    assert owner.drain(store) == sent[3:]


# TTL


def test_sliding_refreshed_by_poll(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    clock.advance(90)
    owner.poll(store)
    clock.advance(99)
    assert store.contains(owner.correlation_id)
    clock.advance(2)
    assert not store.contains(owner.correlation_id)


def test_sliding_refreshed_by_register(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    clock.advance(90)
    assert owner.register(store) is False
    clock.advance(99)
    assert store.contains(owner.correlation_id)
    clock.advance(2)
    assert not store.contains(owner.correlation_id)


def test_sliding_not_refreshed_by_append(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    for _ in range(9):
        clock.advance(10)
        assert store.append(owner.correlation_id, b'{"n":1}')
        assert store.contains(owner.correlation_id)
    clock.advance(11)
    assert not store.contains(owner.correlation_id)
    assert store.append(owner.correlation_id, b'{"n":2}') is False


def test_wrong_secret_does_not_refresh(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    clock.advance(90)
    with pytest.raises(SessionNotFoundError):
        store.poll(owner.correlation_id, OTHER_SECRET)
    with pytest.raises(SessionNotFoundError):
        store.deregister(owner.correlation_id, OTHER_SECRET)
    with pytest.raises(ValueError):
        store.register(owner.correlation_id, OTHER_SECRET, owner.public_key)
    clock.advance(11)
    assert not store.contains(owner.correlation_id)


def test_fixed_ignores_refresh(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL, eviction_strategy="fixed")
    owner.register(store)
    clock.advance(50)
    owner.poll(store)
    assert owner.register(store) is False
    clock.advance(49)
    assert store.contains(owner.correlation_id)
    clock.advance(2)
    assert not store.contains(owner.correlation_id)
    assert store.expire() == 1


def test_no_ttl_never_expires(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=None)
    owner.register(store)
    store.append(owner.correlation_id, b'{"n":1}')
    clock.advance(10.0**9)
    assert store.contains(owner.correlation_id)
    assert store.expire() == 0
    assert len(store) == 1
    assert owner.drain(store) == [b'{"n":1}']


def test_expired_absent_before_expire(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    store.append(owner.correlation_id, b'{"n":1}')
    clock.advance(TTL + 1)
    assert not store.contains(owner.correlation_id)
    assert store.append(owner.correlation_id, b'{"n":2}') is False
    assert len(store) == 0
    assert store.stats().sessions == 0
    with pytest.raises(SessionNotFoundError):
        store.poll(owner.correlation_id, SECRET)
    with pytest.raises(SessionNotFoundError):
        store.deregister(owner.correlation_id, SECRET)
    assert store.expire() == 1
    assert store.expire() == 0
    stats = store.stats()
    assert stats.expired_sessions == 1
    assert stats.queued_items == 0
    assert stats.queued_bytes == 0


def test_register_after_expiry_starts_fresh(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    old_key = owner.poll(store)[1].document["aes_key"]
    store.append(owner.correlation_id, b'{"old":1}')
    clock.advance(TTL + 1)
    assert owner.register(store) is True
    opened = owner.take(store)
    assert opened.document["aes_key"] != old_key
    assert opened.data == []
    assert store.contains(owner.correlation_id)
    assert store.expire() == 0
    assert store.stats().queued_items == 0


def test_other_secret_after_expiry(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    clock.advance(TTL + 1)
    assert store.register(owner.correlation_id, OTHER_SECRET, owner.public_key) is True
    with pytest.raises(SessionNotFoundError):
        store.poll(owner.correlation_id, SECRET)
    store.poll(owner.correlation_id, OTHER_SECRET)


def test_expire_counts_only_expired(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owners = [Owner(f"{number:020d}", owner.private_key) for number in range(5)]
    for client in owners[:3]:
        client.register(store)
    clock.advance(60)
    for client in owners[3:]:
        client.register(store)
    owners[0].poll(store)
    clock.advance(50)
    assert len(store) == 3
    assert store.expire() == 2
    assert {client.correlation_id for client in owners if store.contains(client.correlation_id)} == {
        owners[0].correlation_id,
        owners[3].correlation_id,
        owners[4].correlation_id,
    }
    clock.advance(100)
    assert store.expire() == 3
    assert store.stats().expired_sessions == 5
    assert len(store) == 0


def test_expire_forgets_shared_consumer(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL)
    owner.register(store)
    store.append_shared("extra", b'{"e":1}')
    assert owner.take(store, extra=True).extra == [b'{"e":1}']
    clock.advance(TTL + 1)
    assert store.expire() == 1
    owner.register(store)
    assert owner.take(store, extra=True).extra == [b'{"e":1}']


# Stats


def test_stats_start_at_zero(make_store: MakeStore) -> None:
    stats = make_store().stats()
    assert without_memory_gauges(stats) == StoreStats()
    assert stats.total_bytes == 0


def test_stats_values(make_store: MakeStore, clock: FakeClock, owner: Owner, other_owner: Owner) -> None:
    store = make_store(ttl_seconds=TTL, max_session_items=2, max_shared_items=2)
    owner.register(store)
    other_owner.register(store)
    sent = records(3, 50)
    for record in sent:
        store.append(owner.correlation_id, record)
    store.append(other_owner.correlation_id, b'{"n":1}')
    shared = records(3, 60)
    store.append_shared("extra", shared[0])
    store.append_shared("tlddata", shared[1])
    store.append_shared("tlddata", shared[2])
    store.append_shared("tlddata", shared[2])
    assert without_memory_gauges(store.stats()) == StoreStats(
        sessions=2,
        queued_items=3,
        queued_bytes=100 + len(b'{"n":1}'),
        shared_items=3,
        shared_bytes=180,
        dropped_items=1,
        dropped_shared_items=1,
        expired_sessions=0,
    )
    owner.take(store, extra=True, tlddata=True)
    stats = store.stats()
    assert stats.queued_items == 1
    assert stats.queued_bytes == len(b'{"n":1}')
    assert stats.shared_items == 3, "reading a shared bucket does not remove its records"
    clock.advance(60)
    other_owner.poll(store)
    clock.advance(50)
    assert store.expire() == 1
    assert without_memory_gauges(store.stats()) == StoreStats(
        sessions=1,
        queued_items=1,
        queued_bytes=len(b'{"n":1}'),
        shared_items=3,
        shared_bytes=180,
        dropped_items=1,
        dropped_shared_items=1,
        expired_sessions=1,
    )
    store.deregister(other_owner.correlation_id, SECRET)
    stats = store.stats()
    assert stats.sessions == 0
    assert stats.queued_items == 0
    assert stats.queued_bytes == 0
    assert stats.dropped_items == 1


def without_memory_gauges(stats: StoreStats) -> StoreStats:
    """Return ``stats`` without the gauges whose overheads differ between engines."""
    return replace(stats, total_bytes=0, pool={})


def test_len_counts_live_sessions(make_store: MakeStore, owner: Owner, other_owner: Owner) -> None:
    store = make_store()
    assert len(store) == 0
    owner.register(store)
    owner.register(store)
    assert len(store) == 1
    other_owner.register(store)
    assert len(store) == 2
    store.deregister(owner.correlation_id, SECRET)
    assert len(store) == 1
