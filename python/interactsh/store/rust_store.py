"""The default store engine: the Rust core in ``interactsh._core``.

The wrapper only adapts calling conventions: it reads ``self.clock()`` once per
call and passes it as ``now`` (the core reads no clock), and it turns the
core's tuples into :class:`PollReply` and :class:`StoreStats`. Each record
crosses into Rust once, as ``bytes``; polling builds the whole reply body in
Rust without the GIL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from interactsh import _core
from interactsh.store.base import AesMode, PollReply, SharedBucket, Store, StoreOptions, StoreStats


class RustStore(Store):
    """Store engine backed by the ``interactsh-core`` crate, with payloads in its slab pool."""

    def __init__(self, options: StoreOptions | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options, clock)
        opts = self.options
        self._core = _core.Store(
            correlation_id_length=opts.correlation_id_length,
            aes_mode=opts.aes_mode,
            ttl_seconds=opts.ttl_seconds,
            eviction_strategy=opts.eviction_strategy,
            max_session_items=opts.max_session_items,
            max_session_bytes=opts.max_session_bytes,
            max_shared_items=opts.max_shared_items,
            max_page_items=opts.max_page_items,
            max_page_bytes=opts.max_page_bytes,
            max_shared_bytes=opts.max_shared_bytes,
            max_total_bytes=opts.max_total_bytes,
            pooled=opts.pooled,
            idle_eviction_seconds=opts.idle_eviction_seconds,
        )

    def register(self, correlation_id: str, secret: str, public_key: str, aes_mode: AesMode | None = None) -> bool:
        return self._core.register(correlation_id, secret, public_key, aes_mode, self.clock())

    def deregister(self, correlation_id: str, secret: str) -> None:
        self._core.deregister(correlation_id, secret, self.clock())

    def contains(self, correlation_id: str) -> bool:
        return self._core.contains(correlation_id, self.clock())

    def append(self, correlation_id: str, record: bytes) -> bool:
        return self._core.append(correlation_id, record, self.clock())

    def append_shared(self, bucket: SharedBucket, record: bytes) -> None:
        self._core.append_shared(bucket, record, self.clock())

    def poll(self, correlation_id: str, secret: str, *, extra: bool = False, tlddata: bool = False) -> PollReply:
        body, lowered_id, data_count, last_data_seq, extra_offset, tlddata_offset = self._core.poll(
            correlation_id, secret, extra, tlddata, self.clock()
        )
        offsets: dict[str, int] = {}
        if extra_offset is not None:
            offsets["extra"] = extra_offset
        if tlddata_offset is not None:
            offsets["tlddata"] = tlddata_offset
        return PollReply(body, lowered_id, data_count, last_data_seq, offsets)

    def commit(self, reply: PollReply) -> None:
        offsets = reply.shared_offsets
        self._core.commit(reply.correlation_id, reply.last_data_seq, offsets.get("extra"), offsets.get("tlddata"))

    def expire(self) -> int:
        return self._core.expire(self.clock())

    def expire_idle(self, idle_seconds: float) -> int:
        return self._core.expire_idle(idle_seconds, self.clock())

    def evict(self, target_bytes: int) -> int:
        return self._core.evict(target_bytes, self.clock())

    def set_budget(self, max_total_bytes: int | None) -> None:
        self._core.set_budget(max_total_bytes)

    def shrink(self) -> int:
        return self._core.shrink()

    def stats(self) -> StoreStats:
        """Return the counters and gauges; ``pool`` contains the slab pool's figures (see ``_core.Store.pool_stats``)."""
        return StoreStats(*self._core.stats(self.clock()), pool=self._core.pool_stats())

    def __len__(self) -> int:
        return self._core.live_len(self.clock())
