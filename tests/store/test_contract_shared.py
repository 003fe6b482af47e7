"""Store contract: the shared ``extra`` and ``tlddata`` buckets and their consumers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract_helpers import SECRET, Owner, records
from interactsh.store.base import SHARED_BUCKETS, Store

MakeStore = Callable[..., Store]


def _read(owner: Owner, store: Store, bucket: str) -> list[bytes]:
    """Poll with only ``bucket`` switched on, commit, and return its records."""
    opened = owner.take(store, **{bucket: True})
    items = opened.extra if bucket == "extra" else opened.tlddata
    return items or []


def _drain(owner: Owner, store: Store, bucket: str) -> list[bytes]:
    received: list[bytes] = []
    while batch := _read(owner, store, bucket):
        received += batch
    return received


@pytest.mark.parametrize("bucket", SHARED_BUCKETS)
def test_two_consumers_see_all(make_store: MakeStore, owner: Owner, other_owner: Owner, bucket: str) -> None:
    store = make_store()
    owner.register(store)
    other_owner.register(store)
    sent = records(4, prefix=bucket)
    for record in sent[:2]:
        store.append_shared(bucket, record)  # type: ignore[arg-type]
    assert _read(owner, store, bucket) == sent[:2]
    for record in sent[2:]:
        store.append_shared(bucket, record)  # type: ignore[arg-type]
    assert _read(owner, store, bucket) == sent[2:]
    assert _read(other_owner, store, bucket) == sent
    assert _read(owner, store, bucket) == []
    assert _read(other_owner, store, bucket) == []


@pytest.mark.parametrize("bucket", SHARED_BUCKETS)
def test_first_poll_gets_backlog(make_store: MakeStore, owner: Owner, bucket: str) -> None:
    store = make_store()
    sent = records(3, prefix=bucket)
    for record in sent:
        store.append_shared(bucket, record)  # type: ignore[arg-type]
    owner.register(store)
    assert _read(owner, store, bucket) == sent


@pytest.mark.parametrize("bucket", SHARED_BUCKETS)
def test_uncommitted_shared_read_repeats(make_store: MakeStore, owner: Owner, bucket: str) -> None:
    store = make_store()
    owner.register(store)
    store.append_shared(bucket, b'{"n":1}')  # type: ignore[arg-type]
    for _ in range(2):
        reply, opened = owner.poll(store, **{bucket: True})
        assert (opened.extra if bucket == "extra" else opened.tlddata) == [b'{"n":1}']
    store.commit(reply)
    assert _read(owner, store, bucket) == []


@pytest.mark.parametrize("bucket", SHARED_BUCKETS)
def test_shared_cap_on_insert(make_store: MakeStore, owner: Owner, bucket: str) -> None:
    store = make_store(max_shared_items=3)
    sent = records(5, prefix=bucket)
    for record in sent:
        store.append_shared(bucket, record)  # type: ignore[arg-type]
    stats = store.stats()
    assert stats.shared_items == 3
    assert stats.dropped_shared_items == 2
    assert stats.shared_bytes == sum(len(record) for record in sent[2:])
    owner.register(store)
    assert _read(owner, store, bucket) == sent[2:]


def test_cap_counts_each_bucket(make_store: MakeStore) -> None:
    store = make_store(max_shared_items=2)
    for record in records(3):
        store.append_shared("extra", record)
        store.append_shared("tlddata", record)
    stats = store.stats()
    assert stats.shared_items == 4
    assert stats.dropped_shared_items == 2


def test_consumer_behind_the_cap(make_store: MakeStore, owner: Owner) -> None:
    store = make_store(max_shared_items=3)
    owner.register(store)
    sent = records(8)
    for record in sent[:2]:
        store.append_shared("extra", record)
    assert _read(owner, store, "extra") == sent[:2]
    for record in sent[2:]:
        store.append_shared("extra", record)
    assert _read(owner, store, "extra") == sent[5:], "a consumer behind the cap resumes at the oldest retained"
    assert _read(owner, store, "extra") == []


def test_deregister_forgets_consumer(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    sent = records(2)
    for record in sent:
        store.append_shared("extra", record)
        store.append_shared("tlddata", record)
    assert _read(owner, store, "extra") == sent
    assert _read(owner, store, "tlddata") == sent
    store.deregister(owner.correlation_id, SECRET)
    owner.register(store)
    assert _read(owner, store, "extra") == sent
    assert _read(owner, store, "tlddata") == sent


def test_buckets_have_separate_offsets(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append_shared("extra", b'{"e":1}')
    store.append_shared("tlddata", b'{"t":1}')
    assert _read(owner, store, "extra") == [b'{"e":1}']
    store.append_shared("extra", b'{"e":2}')
    opened = owner.take(store, extra=True, tlddata=True)
    assert opened.extra == [b'{"e":2}']
    assert opened.tlddata == [b'{"t":1}']


def test_shared_pages_resume(make_store: MakeStore, owner: Owner, other_owner: Owner) -> None:
    store = make_store(max_page_items=2)
    owner.register(store)
    other_owner.register(store)
    sent = records(5)
    for record in sent:
        store.append_shared("tlddata", record)
    assert _drain(owner, store, "tlddata") == sent
    assert _drain(other_owner, store, "tlddata") == sent


def test_shared_records_not_in_data(make_store: MakeStore, owner: Owner) -> None:
    store = make_store()
    owner.register(store)
    store.append_shared("extra", b'{"e":1}')
    opened = owner.take(store, extra=True)
    assert opened.data == []
    assert opened.document["data"] is None


def test_unknown_bucket_rejected(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(ValueError):
        store.append_shared("bogus", b"{}")  # type: ignore[arg-type]
    assert store.stats().shared_items == 0
