"""Store contract, property-based: random writes, polls, clock moves and evictions under a budget.

After every step ``total_bytes`` stays within the budget, a rejected write
changes nothing but may evict, and no record is delivered twice or out of
order. At the end every accepted record is accounted for exactly once: it was
delivered, is still queued, was evicted or was dropped by a cap.
"""

from __future__ import annotations

import pytest
from contract_helpers import Owner, make_clock, private_key, session_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interactsh.errors import StoreFullError
from interactsh.store.base import Store, StoreOptions, StoreStats

OWNER_COUNT = 3
OPTIONS = StoreOptions(
    idle_eviction_seconds=30.0,
    max_session_items=6,
    max_shared_items=4,
    max_page_items=3,
    ttl_seconds=None,
)
# Room above the sessions' own cost: a handful of records of up to 400 bytes.
ROOM = 2500

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, OWNER_COUNT - 1), st.integers(0, 400)),
        st.tuples(st.just("shared"), st.just(0), st.integers(0, 400)),
        st.tuples(st.just("poll"), st.integers(0, OWNER_COUNT - 1), st.just(0)),
        st.tuples(st.just("advance"), st.just(0), st.integers(0, 40)),
        st.tuples(st.just("evict"), st.just(0), st.integers(0, 100)),
    ),
    max_size=60,
)


class BudgetRun:
    """One example: the store, its owners and the records each owner has received."""

    def __init__(self, store_class: type[Store]) -> None:
        self.clock = make_clock()
        self.store = store_class(OPTIONS, clock=self.clock)
        self.owners = [Owner(session_id(number), private_key(1024)) for number in range(OWNER_COUNT)]
        for owner in self.owners:
            owner.register(self.store)
        self.budget = self.store.stats().total_bytes + ROOM
        self.store.set_budget(self.budget)
        self.accepted = 0
        self.delivered = 0
        self.last_received = [0] * OWNER_COUNT
        self.counter = 0

    def run(self, operation: str, first: int, second: int) -> None:
        if operation == "append":
            self.append(first, second)
        elif operation == "shared":
            self.append_shared(second)
        elif operation == "poll":
            self.take(first)
        elif operation == "advance":
            self.clock.advance(second)
        else:
            self.evict(second)
        assert self.store.stats().total_bytes <= self.budget, "the store went over its budget"

    def record(self, owner: int, pad: int) -> bytes:
        self.counter += 1
        return b'{"owner":%d,"n":%d,"pad":"%s"}' % (owner, self.counter, b"p" * pad)

    def append(self, owner: int, pad: int) -> None:
        before = self.store.stats()
        try:
            assert self.store.append(self.owners[owner].correlation_id, self.record(owner, pad))
        except StoreFullError:
            self.check_rejected(before)
        else:
            self.accepted += 1

    def append_shared(self, pad: int) -> None:
        before = self.store.stats()
        try:
            self.store.append_shared("extra", self.record(-1, pad))
        except StoreFullError:
            self.check_rejected(before)

    def check_rejected(self, before: StoreStats) -> None:
        after = self.store.stats()
        assert after.refused_items == before.refused_items + 1
        assert after.total_bytes <= before.total_bytes, "a rejected write added bytes"
        assert after.dropped_items == before.dropped_items, "a rejected write dropped records"

    def evict(self, percent: int) -> None:
        before = self.store.stats()
        target = before.total_bytes * percent // 100
        evicted = self.store.evict(target)
        after = self.store.stats()
        assert after.evicted_items == before.evicted_items + evicted
        assert after.queued_items == before.queued_items - evicted
        if evicted == 0:
            assert after.total_bytes == before.total_bytes
        else:
            assert after.total_bytes < before.total_bytes

    def take(self, owner: int) -> int:
        records = self.owners[owner].take(self.store).data
        for record in records:
            number = int(record.split(b'"n":')[1].split(b",")[0])
            assert number > self.last_received[owner], "a record came out of order or twice"
            self.last_received[owner] = number
            self.delivered += 1
        return len(records)

    def finish(self) -> None:
        """Drain every session, then account for every accepted record."""
        for owner in range(OWNER_COUNT):
            while self.take(owner):
                pass
        stats = self.store.stats()
        assert stats.queued_items == 0
        assert self.accepted == self.delivered + stats.evicted_items + stats.dropped_items


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_budget_holds_under_random_operations(store_class: type[Store], operations: list[tuple[str, int, int]]) -> None:
    run = BudgetRun(store_class)
    for operation in operations:
        run.run(*operation)
    run.finish()
