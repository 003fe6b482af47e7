"""What the memory manager's responses do to a real store, its loop, its reports and the recorder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from interactsh.config import ServerConfig
from interactsh.memory import REFUSAL_REPORT_INTERVAL, MemoryManager, store_budget
from interactsh.memory_core import eviction_target
from interactsh.metrics import Counters
from interactsh.recording import Admission, Recorder
from interactsh.store.python_store import PythonStore
from memory_helpers import FakeClock, Rig, make_rig

RigFactory = Callable[..., Rig]
IDLE_ID = "a" * 20
ACTIVE_ID = "b" * 20
RECORD = b"x" * 4000


def fill(rig: Rig, correlation_id: str, count: int) -> None:
    for _ in range(count):
        assert rig.store.append(correlation_id, RECORD)


def test_high_evicts_down_to_target(rig_factory: RigFactory) -> None:
    # A 1 MiB limit makes the excess over 70 % smaller than the store, and small poll pages keep the
    # poll reserve out of the budget.
    rig = rig_factory(max_memory=1, max_poll_bytes=1024)
    rig.register(IDLE_ID)
    fill(rig, IDLE_ID, 100)
    rig.clock.advance(rig.config.memory_idle_seconds)
    before = rig.store.stats().total_bytes
    rig.sample(85)
    excess = rig.at(85) - eviction_target(rig.limit)
    assert rig.store.arguments["evict"] == [before - excess]
    after = rig.store.stats()
    assert after.total_bytes <= before - excess
    assert after.evicted_items > 0
    assert after.evicted_items == rig.manager.totals.evicted_items
    assert after.queued_items == 100 - after.evicted_items


def test_eviction_spares_active_sessions(rig_factory: RigFactory) -> None:
    rig = rig_factory(max_memory=1, max_poll_bytes=1024)
    rig.register(IDLE_ID)
    fill(rig, IDLE_ID, 20)
    rig.clock.advance(rig.config.memory_idle_seconds)
    rig.register(ACTIVE_ID)
    fill(rig, ACTIVE_ID, 20)
    rig.sample(95)
    stats = rig.store.stats()
    assert stats.evicted_items == 20
    # Only the active session's records are left.
    assert stats.queued_items == 20
    assert rig.store.poll(ACTIVE_ID, "secret").data_count >= 1


def test_medium_removes_idle_sessions(rig_factory: RigFactory) -> None:
    rig = rig_factory(memory_idle_expiry=600.0)
    rig.register(IDLE_ID)
    rig.clock.advance(600)
    rig.register(ACTIVE_ID)
    rig.sample(65)
    assert not rig.store.contains(IDLE_ID)
    assert rig.store.contains(ACTIVE_ID)
    assert rig.manager.totals.expired_sessions == 1


def test_refusals_reported_each_interval(rig_factory: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="interactsh.memory")
    rig = rig_factory()
    rig.register(ACTIVE_ID)
    rig.store.set_budget(rig.store.stats().total_bytes + 10)
    recorder = Recorder(rig.config, rig.store, Counters())
    assert recorder.record(ACTIVE_ID, RECORD) is False
    assert recorder.counters.unmatched == 0
    rig.admission.rejected_registrations += 2
    rig.clock.advance(REFUSAL_REPORT_INTERVAL)
    rig.sample(10)
    rig.clock.advance(REFUSAL_REPORT_INTERVAL)
    rig.sample(10)
    lines = [record.message for record in caplog.records if "rejected" in record.message]
    assert len(lines) == 1
    assert "rejected 1 interactions and 2 registrations" in lines[0]


def test_recorder_survives_full_store() -> None:
    config = ServerConfig()
    store = PythonStore(config.store_options())
    store.set_budget(1)
    recorder = Recorder(config, store, Counters())
    recorder.record_shared("extra", RECORD)
    assert store.stats().refused_items == 1
    assert store.stats().shared_items == 0


def test_disabled_manager_does_nothing(rig_factory: RigFactory) -> None:
    import gc

    before = gc.get_threshold()
    rig = rig_factory(disable_memory_optimization=True)
    assert rig.store.calls["set_budget"] == 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert rig.sample(97) == "none"
    assert rig.admission.reject_registrations is False
    report = rig.manager.report()
    assert report.optimization is False
    assert report.limit is None
    assert report.store_budget is None


def test_report_reads_fresh_figures(rig: Rig) -> None:
    rig.sample(45)
    rig.rss.value = rig.at(50)
    report = rig.manager.report()
    assert report.rss == rig.at(50)
    assert report.peak_rss == rig.at(50)
    assert report.level == "low"
    assert report.limit == rig.limit
    assert report.limit_origin == "configured"
    assert report.ratio == pytest.approx(0.5)
    assert report.totals.entered["low"] == 1
    assert report.gc.pressure_percent == 100


def test_monitor_task_samples_until_stopped() -> None:
    config = ServerConfig(memory_sample_interval=0.01, max_memory=100)
    store = PythonStore(config.store_options())
    admission = Admission(config.max_request_size)
    values = iter(range(10**9))

    def rss() -> int:
        next(values)
        return 95 * 1024 * 1024

    manager = MemoryManager(config, store, admission, rss_source=rss, limit_source=lambda limit: (limit, "configured"))

    async def run() -> None:
        await manager.start()
        for _ in range(500):
            if manager.totals.samples >= 3:
                break
            await asyncio.sleep(0.01)
        await manager.stop()

    try:
        asyncio.run(run())
    finally:
        manager.restore()
    assert manager.totals.samples >= 3
    assert manager.level == "critical"
    # stop() puts the admission settings back for a later start.
    assert admission.reject_registrations is False
    assert admission.capture_limit == config.max_request_size


def test_monitor_task_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="interactsh.memory")
    config = ServerConfig(memory_sample_interval=0.01)
    store = PythonStore(config.store_options())
    readings = [50 * 1024 * 1024]

    def rss() -> int:
        if len(readings) > 1:
            raise OSError("statm is unreadable")
        return readings[0]

    clock = FakeClock()
    manager = MemoryManager(
        config, store, Admission(1000), rss_source=rss, limit_source=lambda limit: (limit, "configured"), clock=clock
    )

    async def run() -> None:
        await manager.start()
        readings.append(0)
        for _ in range(500):
            if manager.totals.sample_failures >= 3:
                break
            await asyncio.sleep(0.01)
        await manager.stop()

    try:
        asyncio.run(run())
    finally:
        manager.restore()
    assert manager.totals.sample_failures >= 3
    failures = [record for record in caplog.records if "sample failed" in record.message]
    assert len(failures) == 1


def test_make_rig_starts_at_none() -> None:
    rig = make_rig(10)
    try:
        assert rig.manager.level == "none"
        assert rig.manager.limit == rig.limit
    finally:
        rig.manager.restore()


def test_unreadable_rss_keeps_budget(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="interactsh.memory")
    config = ServerConfig(max_memory=100)
    store = PythonStore(config.store_options())

    def rss() -> int:
        raise OSError("statm is unreadable")

    clock = FakeClock()
    manager = MemoryManager(
        config, store, Admission(1000), rss_source=rss, limit_source=lambda limit: (limit, "configured"), clock=clock
    )
    try:
        manager.configure()
        assert manager.sampling is False
        assert manager.store_budget == store_budget(100 * 1024 * 1024, 0, 3 * config.max_poll_bytes)
        assert manager.tick() is None
        clock.advance(300)
        manager.tick()
        assert manager.gc.periodic_collections == 1
    finally:
        manager.restore()
    assert any("could not read the resident memory size" in record.message for record in caplog.records)
