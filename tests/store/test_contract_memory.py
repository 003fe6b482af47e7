"""Store contract: the byte budget, eviction of idle sessions, idle expiry and the memory counters.

Each engine estimates its own per-record and per-session overheads, so the
tests measure them on the engine under test (``costs``) and size budgets
from them. Payload bytes are the same in both engines and are asserted as
absolute numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from contract_helpers import OTHER_SECRET, FakeClock, Owner, private_key, records, session_id
from interactsh.errors import StoreFullError
from interactsh.store.base import EVICTION_HEADROOM_DIVISOR, Store, StoreStats

MakeStore = Callable[..., Store]
IDLE = 60.0
SIZE = 100


@dataclass(frozen=True)
class Costs:
    """The engine's budget cost of one test session and of one record's bookkeeping."""

    session: int
    record_overhead: int

    def record(self, size: int = SIZE) -> int:
        return size + self.record_overhead


@pytest.fixture
def costs(make_store: MakeStore, owner: Owner, other_owner: Owner, third_owner: Owner) -> Costs:
    """Measure the overheads on an unbounded store of the engine under test."""
    store = make_store()
    owner.register(store)
    session = store.stats().total_bytes
    other_owner.register(store)
    third_owner.register(store)
    assert store.stats().total_bytes == 3 * session, "sessions with equal id, secret and key lengths cost the same"
    store.append(owner.correlation_id, records(1, SIZE)[0])
    record_overhead = store.stats().total_bytes - 3 * session - SIZE
    assert session > 0
    assert record_overhead >= 0
    return Costs(session, record_overhead)


@pytest.fixture
def third_owner() -> Owner:
    return Owner(session_id(3), private_key(1024))


def expected_total(stats: StoreStats, sessions_held: int, costs: Costs) -> int:
    """Return ``total_bytes`` as the contract defines it from the other counters."""
    items = stats.queued_items + stats.shared_items
    return sessions_held * costs.session + stats.queued_bytes + stats.shared_bytes + items * costs.record_overhead


def fill(store: Store, owner: Owner, count: int, prefix: str) -> list[bytes]:
    sent = records(count, SIZE, prefix=prefix)
    for record in sent:
        assert store.append(owner.correlation_id, record) is True
    return sent


# Accounting


def test_total_bytes_start_at_zero(make_store: MakeStore) -> None:
    stats = make_store().stats()
    assert stats.total_bytes == 0
    assert stats.evicted_items == 0
    assert stats.refused_items == 0
    assert stats.refused_sessions == 0


def test_total_bytes_count_payloads_exactly(make_store: MakeStore, costs: Costs, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    assert store.stats().total_bytes == costs.session
    store.append(owner.correlation_id, records(1, 100)[0])
    after_small = store.stats().total_bytes
    store.append(owner.correlation_id, records(1, 300, prefix="big")[0])
    after_large = store.stats().total_bytes
    assert after_small - costs.session == costs.record(100)
    assert after_large - after_small == costs.record(300)
    store.append_shared("extra", records(1, 250, prefix="shared")[0])
    assert store.stats().total_bytes - after_large == costs.record(250)


def test_total_bytes_follow_removals(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    store = make_store(ttl_seconds=100.0, max_session_items=3, max_shared_items=2)
    owner.register(store)
    other_owner.register(store)
    fill(store, owner, 5, "a")
    fill(store, other_owner, 2, "b")
    for record in records(3, 80, prefix="s"):
        store.append_shared("tlddata", record)
    assert store.stats().total_bytes == expected_total(store.stats(), 2, costs)
    owner.take(store)
    assert store.stats().total_bytes == expected_total(store.stats(), 2, costs)
    clock.advance(100)
    assert store.expire() == 2
    stats = store.stats()
    assert stats.total_bytes == expected_total(stats, 0, costs)
    assert stats.total_bytes == 160 + 2 * costs.record_overhead
    owner.register(store)
    store.deregister(owner.correlation_id, owner.secret)
    assert store.stats().total_bytes == 160 + 2 * costs.record_overhead


# Budget on appends


def test_append_over_budget_raises(make_store: MakeStore, costs: Costs, owner: Owner) -> None:
    store = make_store(max_total_bytes=costs.session + 3 * costs.record())
    owner.register(store)
    sent = fill(store, owner, 3, "kept")
    before = store.stats()
    with pytest.raises(StoreFullError, match="budget"):
        store.append(owner.correlation_id, records(1, SIZE, prefix="late")[0])
    after = store.stats()
    assert after.refused_items == 1
    assert after.queued_items == before.queued_items
    assert after.total_bytes == before.total_bytes
    assert owner.drain(store) == sent


def test_store_full_is_memory_error(make_store: MakeStore, costs: Costs, owner: Owner) -> None:
    store = make_store(max_total_bytes=costs.session)
    owner.register(store)
    with pytest.raises(MemoryError):
        store.append(owner.correlation_id, b"{}")


def test_append_evicts_idle_session(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    budget = 2 * costs.session + 4 * costs.record()
    store = make_store(max_total_bytes=budget, idle_eviction_seconds=IDLE)
    owner.register(store)
    other_owner.register(store)
    old = fill(store, owner, 3, "old")
    clock.advance(IDLE)
    other_owner.poll(store)
    fill(store, other_owner, 1, "new")
    late = fill(store, other_owner, 1, "late")
    # Eviction goes down to the budget minus the write's cost minus the headroom.
    target = budget - costs.record() - budget // EVICTION_HEADROOM_DIVISOR
    excess = 2 * costs.session + 4 * costs.record() - target
    evicted = math.ceil(excess / costs.record())
    stats = store.stats()
    assert stats.evicted_items == evicted
    assert stats.refused_items == 0
    assert stats.total_bytes <= budget
    assert owner.drain(store) == old[evicted:]
    assert other_owner.drain(store)[-1] == late[0]


def test_record_larger_than_budget_evicts_nothing(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    budget = 2 * costs.session + 3 * costs.record()
    store = make_store(max_total_bytes=budget, idle_eviction_seconds=IDLE)
    owner.register(store)
    other_owner.register(store)
    old = fill(store, owner, 2, "old")
    clock.advance(IDLE)
    other_owner.poll(store)
    with pytest.raises(StoreFullError, match="whole budget"):
        store.append(other_owner.correlation_id, records(1, budget, prefix="huge")[0])
    assert store.stats().evicted_items == 0
    assert store.stats().refused_items == 1
    assert owner.drain(store) == old


def test_session_caps_make_room(make_store: MakeStore, costs: Costs, owner: Owner) -> None:
    store = make_store(max_total_bytes=costs.session + 3 * costs.record(), max_session_items=3)
    owner.register(store)
    sent = fill(store, owner, 5, "r")
    stats = store.stats()
    assert stats.refused_items == 0
    assert stats.dropped_items == 2
    assert owner.drain(store) == sent[2:]


def test_unbounded_store_never_rejects(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_total_bytes=None)
    owner.register(store)
    fill(store, owner, 50, "r")
    assert store.stats().refused_items == 0
    assert store.stats().evicted_items == 0


# Budget on shared buckets


def test_shared_append_over_budget_raises(make_store: MakeStore, costs: Costs) -> None:
    store = make_store(max_total_bytes=2 * costs.record())
    kept = records(2, SIZE, prefix="s")
    for record in kept:
        store.append_shared("extra", record)
    with pytest.raises(StoreFullError):
        store.append_shared("extra", records(1, SIZE, prefix="late")[0])
    stats = store.stats()
    assert stats.refused_items == 1
    assert stats.shared_items == 2
    assert stats.dropped_shared_items == 0


def test_shared_cap_makes_room(make_store: MakeStore, costs: Costs) -> None:
    store = make_store(max_total_bytes=2 * costs.record(), max_shared_items=2)
    for record in records(4, SIZE, prefix="s"):
        store.append_shared("tlddata", record)
    stats = store.stats()
    assert stats.refused_items == 0
    assert stats.dropped_shared_items == 2
    assert stats.shared_items == 2


def test_shared_byte_cap_drops_oldest(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_shared_bytes=250)
    sent = records(3, SIZE, prefix="s")
    for record in sent:
        store.append_shared("extra", record)
    stats = store.stats()
    assert stats.dropped_shared_items == 1
    assert stats.shared_items == 2
    assert stats.shared_bytes == 200
    owner.register(store)
    assert owner.take(store, extra=True).extra == sent[1:]


def test_shared_record_over_byte_cap_dropped(make_store: MakeStore) -> None:
    store = make_store(max_shared_bytes=250)
    store.append_shared("extra", records(1, SIZE)[0])
    store.append_shared("extra", records(1, 251, prefix="big")[0])
    stats = store.stats()
    assert stats.dropped_shared_items == 1
    assert stats.shared_items == 1
    assert stats.shared_bytes == SIZE


# Budget on registrations


def test_register_over_budget_raises(make_store: MakeStore, costs: Costs, owner: Owner, other_owner: Owner) -> None:
    store = make_store(max_total_bytes=costs.session)
    assert owner.register(store) is True
    with pytest.raises(StoreFullError):
        other_owner.register(store)
    stats = store.stats()
    assert stats.refused_sessions == 1
    assert stats.refused_items == 0
    assert stats.total_bytes == costs.session
    assert not store.contains(other_owner.correlation_id)
    assert len(store) == 1


def test_refresh_never_rejected(make_store: MakeStore, costs: Costs, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    fill(store, owner, 3, "r")
    store.set_budget(1)
    assert owner.register(store) is False
    assert store.stats().refused_sessions == 0


def test_register_evicts_idle_records(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    store = make_store(max_total_bytes=2 * costs.session + 2 * costs.record(), idle_eviction_seconds=IDLE)
    owner.register(store)
    old = fill(store, owner, 3, "old")
    clock.advance(IDLE)
    assert other_owner.register(store) is True
    stats = store.stats()
    assert stats.evicted_items >= 1
    assert stats.total_bytes <= 2 * costs.session + 2 * costs.record()
    assert owner.drain(store) == old[stats.evicted_items :]


def test_expired_session_frees_budget(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    store = make_store(max_total_bytes=costs.session, ttl_seconds=100.0)
    owner.register(store)
    clock.advance(100)
    store.expire()
    assert other_owner.register(store) is True


# set_budget


def test_set_budget_evicts_nothing_itself(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    other_owner.register(store)
    old = fill(store, owner, 4, "old")
    clock.advance(IDLE)
    other_owner.poll(store)
    before = store.stats().total_bytes
    store.set_budget(2 * costs.session + 2 * costs.record())
    assert store.stats().total_bytes == before
    assert store.stats().evicted_items == 0
    fill(store, other_owner, 1, "new")
    assert store.stats().evicted_items >= 3
    assert store.stats().total_bytes <= 2 * costs.session + 2 * costs.record()
    store.set_budget(None)
    fill(store, other_owner, 10, "more")
    assert store.stats().refused_items == 0
    assert len(owner.drain(store)) == len(old) - store.stats().evicted_items


@pytest.mark.parametrize("budget", [0, -1])
def test_set_budget_rejects_below_one(make_store: MakeStore, budget: int) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="max_total_bytes"):
        store.set_budget(budget)


# evict


def test_evict_oldest_first_across_sessions(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    other_owner.register(store)
    sent_a = records(3, SIZE, prefix="a")
    sent_b = records(3, SIZE, prefix="b")
    for record_a, record_b in zip(sent_a, sent_b, strict=True):
        store.append(owner.correlation_id, record_a)
        store.append(other_owner.correlation_id, record_b)
    clock.advance(IDLE)
    target = store.stats().total_bytes - 3 * costs.record()
    assert store.evict(target) == 3
    assert store.stats().evicted_items == 3
    assert store.stats().total_bytes == target
    assert owner.drain(store) == sent_a[2:]
    assert other_owner.drain(store) == sent_b[1:]


def test_evict_spares_active_sessions(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner
) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    other_owner.register(store)
    active = fill(store, other_owner, 3, "active")
    fill(store, owner, 2, "idle")
    clock.advance(IDLE)
    other_owner.poll(store)
    assert store.evict(0) == 2
    stats = store.stats()
    assert stats.queued_items == 3
    assert stats.total_bytes == 2 * costs.session + 3 * costs.record()
    assert owner.drain(store) == []
    assert other_owner.drain(store) == active


def test_evict_stops_at_target(make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    sent = fill(store, owner, 4, "r")
    clock.advance(IDLE)
    total = store.stats().total_bytes
    assert store.evict(total) == 0
    assert store.evict(total - 1) == 1
    assert store.evict(0) == 3
    assert store.evict(0) == 0
    assert store.stats().evicted_items == 4
    assert store.stats().total_bytes == costs.session
    assert owner.drain(store) == []
    assert sent


def test_evict_rejects_negative_target(make_store: MakeStore) -> None:
    with pytest.raises(ValueError, match="negative"):
        make_store().evict(-1)


def test_eviction_before_commit(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    fill(store, owner, 3, "old")
    reply, opened = owner.poll(store)
    assert len(opened.data) == 3
    clock.advance(IDLE)
    assert store.evict(0) == 3
    later = fill(store, owner, 2, "later")
    store.commit(reply)
    stats = store.stats()
    assert stats.queued_items == 2
    assert stats.queued_bytes == 2 * SIZE
    assert owner.drain(store) == later


# Idleness


def test_idle_boundary(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    fill(store, owner, 1, "r")
    clock.advance(IDLE - 1)
    assert store.evict(0) == 0
    clock.advance(1)
    assert store.evict(0) == 1


def test_inbound_records_do_not_count_as_activity(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    clock.advance(IDLE - 1)
    fill(store, owner, 2, "r")
    clock.advance(1)
    assert store.evict(0) == 2


def test_failed_poll_is_not_activity(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=IDLE)
    owner.register(store)
    fill(store, owner, 1, "r")
    clock.advance(IDLE - 1)
    with pytest.raises(LookupError):
        store.poll(owner.correlation_id, OTHER_SECRET)
    clock.advance(1)
    assert store.evict(0) == 1


@pytest.mark.parametrize("strategy", ["sliding", "fixed"])
@pytest.mark.parametrize("action", ["poll", "register"])
def test_owner_activity_resets_idleness(
    make_store: MakeStore, clock: FakeClock, owner: Owner, strategy: str, action: str
) -> None:
    store = make_store(idle_eviction_seconds=IDLE, eviction_strategy=strategy)
    owner.register(store)
    clock.advance(IDLE - 1)
    if action == "poll":
        owner.poll(store)
    else:
        owner.register(store)
    fill(store, owner, 1, "r")
    clock.advance(IDLE - 1)
    assert store.evict(0) == 0
    clock.advance(1)
    assert store.evict(0) == 1


def test_expired_session_is_idle(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=IDLE, ttl_seconds=30.0)
    owner.register(store)
    fill(store, owner, 2, "r")
    clock.advance(30)
    assert store.evict(0) == 2


def test_idle_seconds_zero(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(idle_eviction_seconds=0.0)
    owner.register(store)
    fill(store, owner, 2, "r")
    assert store.evict(0) == 2


# expire_idle


def test_expire_idle_removes_idle_sessions(
    make_store: MakeStore, clock: FakeClock, costs: Costs, owner: Owner, other_owner: Owner, third_owner: Owner
) -> None:
    store = make_store()
    owner.register(store)
    other_owner.register(store)
    third_owner.register(store)
    fill(store, owner, 2, "a")
    clock.advance(30)
    other_owner.poll(store)
    clock.advance(1)
    third_owner.poll(store)
    clock.advance(29)
    assert store.expire_idle(30) == 2
    assert not store.contains(owner.correlation_id)
    assert not store.contains(other_owner.correlation_id)
    assert store.contains(third_owner.correlation_id)
    stats = store.stats()
    assert stats.expired_sessions == 2
    assert stats.sessions == 1
    assert stats.queued_items == 0
    assert stats.total_bytes == costs.session
    with pytest.raises(LookupError):
        owner.poll(store)


def test_expire_idle_removes_expired(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store(ttl_seconds=10.0)
    owner.register(store)
    clock.advance(10)
    assert store.expire_idle(3600) == 1
    assert store.stats().expired_sessions == 1
    assert store.stats().total_bytes == 0


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_expire_idle_rejects_bad_seconds(make_store: MakeStore, seconds: float) -> None:
    with pytest.raises(ValueError, match="idle_seconds"):
        make_store().expire_idle(seconds)


def test_reregistered_after_idle_expiry_starts_empty(make_store: MakeStore, clock: FakeClock, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    fill(store, owner, 2, "old")
    clock.advance(5)
    assert store.expire_idle(5) == 1
    assert owner.register(store) is True
    assert owner.drain(store) == []


# Options and shrink


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_total_bytes", 0),
        ("idle_eviction_seconds", -1.0),
        ("idle_eviction_seconds", math.nan),
        ("max_shared_bytes", 0),
    ],
)
def test_invalid_memory_options(make_store: MakeStore, name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        make_store(**{name: value})


@pytest.mark.parametrize("pooled", [True, False])
def test_pooled_option_round_trip(make_store: MakeStore, owner: Owner, pooled: bool) -> None:
    store = make_store(pooled=pooled)
    owner.register(store)
    sent = records(3, 70_000, prefix="big") + records(3, 200)
    for record in sent:
        store.append(owner.correlation_id, record)
    assert owner.drain(store) == sent
    assert store.stats().queued_bytes == 0


def test_shrink_returns_bytes(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    fill(store, owner, 10, "r")
    owner.drain(store)
    released = store.shrink()
    assert released >= 0
    assert store.shrink() == 0, "a second shrink finds nothing left to release"
    fill(store, owner, 2, "again")
    assert len(owner.drain(store)) == 2
