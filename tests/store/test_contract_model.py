"""Store contract, model-based: random append, poll and commit sequences against a reference model.

The model is a plain list per session and per shared bucket. Every poll must
return exactly the page the model predicts. So a committed record can never
come back (a duplicate), and a queued record can never go missing (a loss).
A final drain checks that every record the caps kept is still delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from contract_helpers import Owner, make_clock, private_key, session_id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interactsh.store.base import PollReply, Store, StoreOptions

OPTIONS = StoreOptions(
    max_session_items=4,
    max_session_bytes=10_000,
    max_shared_items=3,
    max_page_items=3,
    max_page_bytes=160,
)
OWNER_COUNT = 2

Entry = tuple[int, bytes]


@dataclass
class ModelQueue:
    """The records a session or bucket holds, oldest first, with their sequence numbers."""

    cap: int
    entries: list[Entry] = field(default_factory=list)
    next_seq: int = 0

    def add(self, record: bytes) -> None:
        self.entries.append((self.next_seq, record))
        self.next_seq += 1
        del self.entries[: max(0, len(self.entries) - self.cap)]


@dataclass
class ModelReply:
    """What the model expects a poll's commit to release."""

    owner: int
    reply: PollReply
    last_data_seq: int | None
    extra_next_seq: int | None


@dataclass
class Model:
    """The reference behaviour of one store with ``OWNER_COUNT`` sessions and the ``extra`` bucket."""

    sessions: list[ModelQueue] = field(
        default_factory=lambda: [ModelQueue(OPTIONS.max_session_items) for _ in range(OWNER_COUNT)]
    )
    extra: ModelQueue = field(default_factory=lambda: ModelQueue(OPTIONS.max_shared_items))
    extra_offsets: dict[int, int] = field(default_factory=dict)
    committed: list[set[bytes]] = field(default_factory=lambda: [set() for _ in range(OWNER_COUNT)])

    def page(self, entries: list[Entry], budget: list[int]) -> list[Entry]:
        taken: list[Entry] = []
        for seq, record in entries[: OPTIONS.max_page_items]:
            if taken and len(record) > budget[0]:
                break
            taken.append((seq, record))
            budget[0] -= len(record)
        return taken

    def poll(self, owner: int, extra: bool) -> tuple[list[Entry], list[Entry] | None]:
        budget = [OPTIONS.max_page_bytes]
        data = self.page(self.sessions[owner].entries, budget)
        if not extra:
            return data, None
        offset = self.extra_offsets.get(owner, 0)
        return data, self.page([entry for entry in self.extra.entries if entry[0] >= offset], budget)

    def commit(self, expected: ModelReply) -> None:
        queue = self.sessions[expected.owner]
        if expected.last_data_seq is not None:
            delivered = [record for seq, record in queue.entries if seq <= expected.last_data_seq]
            self.committed[expected.owner].update(delivered)
            queue.entries = [entry for entry in queue.entries if entry[0] > expected.last_data_seq]
        if expected.extra_next_seq is not None:
            current = self.extra_offsets.get(expected.owner, 0)
            self.extra_offsets[expected.owner] = max(current, expected.extra_next_seq)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, OWNER_COUNT - 1), st.integers(0, 80)),
        st.tuples(st.just("burst"), st.integers(0, OWNER_COUNT - 1), st.integers(2, 6)),
        st.tuples(st.just("append_shared"), st.just(0), st.integers(0, 80)),
        st.tuples(st.just("burst_shared"), st.just(0), st.integers(2, 6)),
        st.tuples(st.just("poll"), st.integers(0, OWNER_COUNT - 1), st.booleans()),
        st.tuples(st.just("commit"), st.integers(0, 7), st.just(0)),
    ),
    max_size=40,
)


def _record(kind: str, number: int, pad: int) -> bytes:
    return b'{"kind":"%s","n":%d,"pad":"%s"}' % (kind.encode(), number, b"p" * pad)


class ModelRun:
    """One example: the store under test, the model and the outstanding replies."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.model = Model()
        self.owners = [Owner(session_id(number), private_key(1024)) for number in range(OWNER_COUNT)]
        self.replies: list[ModelReply] = []
        self.appended = 0
        for client in self.owners:
            client.register(store)

    def run(self, operation: str, first: int, second: int) -> None:
        if operation == "append":
            self.append(first, second)
        elif operation == "burst":
            for _ in range(second):
                self.append(first, 30)
        elif operation == "append_shared":
            self.append_shared(second)
        elif operation == "burst_shared":
            for _ in range(second):
                self.append_shared(30)
        elif operation == "poll":
            self.poll(first, bool(second))
        elif self.replies:
            expected = self.replies[first % len(self.replies)]
            self.store.commit(expected.reply)
            self.model.commit(expected)

    def append(self, owner: int, pad: int) -> None:
        record = _record(f"owner{owner}", self.appended, pad)
        self.appended += 1
        assert self.store.append(self.owners[owner].correlation_id, record)
        self.model.sessions[owner].add(record)

    def append_shared(self, pad: int) -> None:
        record = _record("extra", self.appended, pad)
        self.appended += 1
        self.store.append_shared("extra", record)
        self.model.extra.add(record)

    def poll(self, owner: int, extra: bool) -> None:
        reply, opened = self.owners[owner].poll(self.store, extra=extra)
        data, shared = self.model.poll(owner, extra)
        assert opened.data == [record for _, record in data], "data page differs from the model"
        for record in opened.data:
            assert record not in self.model.committed[owner], f"committed record delivered again: {record!r}"
        if extra:
            assert (opened.extra or []) == [record for _, record in shared or []], "extra page differs from the model"
        extra_next = None
        if extra:
            extra_next = shared[-1][0] + 1 if shared else self.model.extra.next_seq
        self.replies.append(ModelReply(owner, reply, data[-1][0] if data else None, extra_next))

    def finish(self) -> None:
        """Drain every session and check that each kept record arrives once, in order."""
        for number, client in enumerate(self.owners):
            remaining = [record for _, record in self.model.sessions[number].entries]
            assert client.drain(self.store) == remaining, "records still queued were lost or reordered"
            assert not set(remaining) & self.model.committed[number], "a record was both committed and queued"


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_random_operations_match_model(store_class: type[Store], operations: list[tuple[str, int, int]]) -> None:
    store = store_class(OPTIONS, clock=make_clock())
    run = ModelRun(store)
    for operation in operations:
        run.run(*operation)
    run.finish()
