"""The Rust engine's slab pool as the store reports it: ``stats().pool`` and ``shrink``.

The Python engine has no pool; its ``pool`` is ``{}`` and ``shrink`` returns 0.
"""

from __future__ import annotations

from conftest import load_engine
from contract_helpers import Owner, make_clock, records
from interactsh.store.base import Store, StoreOptions
from interactsh.store.python_store import PythonStore

PAGE_SIZE = 1 << 20
CLASS_KEYS = {"chunk_size", "pages", "free_pages", "chunks_used", "chunks_free", "bytes_requested", "bytes_held"}
POOL_KEYS = {
    "pooled",
    "payloads",
    "pages",
    "free_pages",
    "large_payloads",
    "large_bytes",
    "bytes_requested",
    "bytes_held",
    "bytes_overhead",
    "classes",
}


def rust_store(**overrides: object) -> Store:
    return load_engine("rust")(StoreOptions(**overrides), clock=make_clock())  # type: ignore[arg-type]


def test_pool_stats_shape(owner: Owner) -> None:
    store = rust_store()
    owner.register(store)
    sent = records(10, 300) + records(2, 70_000, prefix="big")
    for record in sent:
        store.append(owner.correlation_id, record)
    pool = store.stats().pool
    assert set(pool) == POOL_KEYS
    assert pool["pooled"] is True
    assert pool["payloads"] == 12
    assert pool["large_payloads"] == 2
    assert pool["large_bytes"] == 140_000
    assert pool["bytes_requested"] == sum(len(record) for record in sent)
    classes = pool["classes"]
    assert isinstance(classes, list)
    assert len(classes) == 32
    assert all(set(entry) == CLASS_KEYS for entry in classes)
    used = [entry for entry in classes if entry["chunks_used"]]
    assert len(used) == 1
    assert used[0]["chunks_used"] == 10
    assert used[0]["chunk_size"] >= 300
    assert used[0]["bytes_held"] == PAGE_SIZE
    assert pool["bytes_held"] == PAGE_SIZE + 140_000


def test_shrink_releases_pages(owner: Owner) -> None:
    store = rust_store()
    owner.register(store)
    for record in records(3000, 500):
        store.append(owner.correlation_id, record)
    while owner.take(store).data:
        pass
    pages = store.stats().pool["pages"]
    assert isinstance(pages, int)
    assert pages >= 2
    assert store.shrink() >= pages * PAGE_SIZE
    assert store.stats().pool["pages"] == 0
    assert store.shrink() == 0


def test_unpooled_pool_stats(owner: Owner) -> None:
    store = rust_store(pooled=False)
    owner.register(store)
    store.append(owner.correlation_id, records(1, 300)[0])
    pool = store.stats().pool
    assert pool["pooled"] is False
    assert pool["classes"] == []
    assert pool["large_payloads"] == 1
    assert pool["pages"] == 0


def test_python_engine_has_no_pool(owner: Owner) -> None:
    store = PythonStore(clock=make_clock())
    owner.register(store)
    store.append(owner.correlation_id, b"{}")
    assert store.stats().pool == {}
    assert store.shrink() == 0
