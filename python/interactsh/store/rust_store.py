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
    """Store engine backed by the ``interactsh-core`` crate."""

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
        self._core.append_shared(bucket, record)

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

    def stats(self) -> StoreStats:
        return StoreStats(*self._core.stats(self.clock()))

    def __len__(self) -> int:
        return self._core.live_len(self.clock())
