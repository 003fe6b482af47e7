"""The memory manager's levels, hysteresis and the responses each transition runs, on made-up samples."""

from __future__ import annotations

import gc
import itertools
import logging
from collections.abc import Callable

import pytest
from interactsh.memory import MIB, POLICIES, store_budget
from interactsh.memory_runtime import DEFAULT_GEN0_THRESHOLD
from memory_helpers import Rig

RigFactory = Callable[..., Rig]


def gen0() -> int:
    return gc.get_threshold()[0]


def memory_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "interactsh.memory" and "pressure" in record.message]


def test_levels_follow_samples(rig: Rig) -> None:
    assert rig.sample(30) == "none"
    assert rig.sample(45) == "low"
    assert rig.sample(65) == "medium"
    assert rig.sample(85) == "high"
    assert rig.sample(95) == "critical"


def test_hysteresis_holds_level(rig: Rig) -> None:
    assert rig.sample(45) == "low"
    # Low is left only below 40 % minus the 5-point margin.
    assert rig.sample(38) == "low"
    assert rig.sample(36) == "low"
    assert rig.sample(34) == "none"
    assert rig.sample(65) == "medium"
    assert rig.sample(57) == "medium"
    assert rig.sample(54) == "low"


def test_fall_crosses_several_levels(rig: Rig) -> None:
    assert rig.sample(95) == "critical"
    assert rig.sample(10) == "none"
    assert rig.manager.totals.entered == {"none": 1, "low": 0, "medium": 0, "high": 0, "critical": 1}


def test_low_releases_pages_once(rig: Rig) -> None:
    rig.sample(45)
    rig.sample(47)
    rig.sample(50)
    assert rig.store.calls["shrink"] == 1
    assert rig.store.calls["expire_idle"] == 0
    assert rig.store.calls["evict"] == 0
    assert rig.trims == []
    assert gen0() == DEFAULT_GEN0_THRESHOLD


def test_medium_expires_idle_sessions(rig_factory: RigFactory) -> None:
    rig = rig_factory(memory_idle_expiry=900.0)
    rig.sample(65)
    rig.sample(70)
    assert rig.store.calls["expire_idle"] == 1
    assert rig.store.arguments["expire_idle"] == [900.0]
    assert rig.store.calls["shrink"] == 1
    assert rig.store.calls["evict"] == 0
    assert gen0() == DEFAULT_GEN0_THRESHOLD // 2


def test_high_evicts_and_trims(rig: Rig) -> None:
    rig.sample(85)
    rig.sample(86)
    assert rig.store.calls["evict"] == 1
    assert rig.store.calls["expire_idle"] == 1
    assert rig.store.calls["shrink"] == 1
    assert len(rig.trims) == 1
    assert gen0() == DEFAULT_GEN0_THRESHOLD // 4
    assert rig.admission.reject_registrations is False


def test_critical_rejects_and_shrinks_capture(rig_factory: RigFactory) -> None:
    rig = rig_factory(max_request_size=65536, max_request_size_critical=2048)
    rig.sample(95)
    assert rig.admission.reject_registrations is True
    assert rig.admission.capture_limit == 2048
    assert gen0() == DEFAULT_GEN0_THRESHOLD // 4
    assert rig.store.calls["evict"] == 1
    assert len(rig.trims) == 1


def test_critical_capture_never_grows(rig_factory: RigFactory) -> None:
    rig = rig_factory(max_request_size=1000, max_request_size_critical=4096)
    rig.sample(95)
    assert rig.admission.capture_limit == 1000


def test_each_rise_runs_its_actions(rig: Rig) -> None:
    for value in (45, 65, 85, 95):
        rig.sample(value)
    assert rig.store.calls["shrink"] == 4
    assert rig.store.calls["expire_idle"] == 3
    assert rig.store.calls["evict"] == 2
    assert len(rig.trims) == 2


def test_jump_runs_actions_once(rig: Rig) -> None:
    rig.sample(97)
    assert rig.store.calls["shrink"] == 1
    assert rig.store.calls["expire_idle"] == 1
    assert rig.store.calls["evict"] == 1
    assert len(rig.trims) == 1


def test_fall_restores_settings_only(rig_factory: RigFactory) -> None:
    rig = rig_factory(max_request_size=5000)
    rig.sample(95)
    calls = dict(rig.store.calls)
    trims = len(rig.trims)
    assert rig.sample(70) == "medium"
    assert gen0() == DEFAULT_GEN0_THRESHOLD // 2
    assert rig.admission.reject_registrations is False
    assert rig.admission.capture_limit == 5000
    assert rig.sample(10) == "none"
    assert gen0() == DEFAULT_GEN0_THRESHOLD
    # Only the store's budget changes on a fall: back to the full budget.
    assert rig.store.arguments["set_budget"][-1] == rig.manager.store_budget
    del calls["set_budget"]
    assert {name: count for name, count in rig.store.calls.items() if name != "set_budget"} == calls
    assert len(rig.trims) == trims


def test_gc_percent_scales_threshold(rig_factory: RigFactory) -> None:
    rig = rig_factory(gc_percent=200)
    assert gen0() == 1400
    rig.sample(65)
    assert gen0() == 700
    rig.sample(85)
    assert gen0() == 350
    rig.sample(10)
    assert gen0() == 1400


def test_restore_puts_collector_back(rig_factory: RigFactory) -> None:
    before = gc.get_threshold()
    rig = rig_factory(gc_percent=50)
    assert gen0() == 350
    assert gc.get_freeze_count() > 0
    rig.sample(85)
    rig.manager.restore()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    assert rig.admission.reject_registrations is False


def test_periodic_collection_every_five_minutes(rig: Rig) -> None:
    rig.clock.advance(299)
    rig.sample(10)
    assert rig.manager.gc.periodic_collections == 0
    rig.clock.advance(1)
    rig.sample(10)
    assert rig.manager.gc.periodic_collections == 1
    rig.clock.advance(299)
    rig.sample(10)
    assert rig.manager.gc.periodic_collections == 1


def test_periodic_collection_at_critical(rig: Rig) -> None:
    rig.clock.advance(10)
    rig.sample(95)
    evictions = rig.store.calls["evict"]
    rig.clock.advance(19)
    rig.sample(95)
    assert rig.manager.gc.periodic_collections == 0
    rig.clock.advance(1)
    rig.sample(95)
    assert rig.manager.gc.periodic_collections == 1
    assert rig.store.calls["evict"] == evictions + 1
    rig.clock.advance(30)
    rig.sample(95)
    assert rig.manager.gc.periodic_collections == 2


def test_periodic_collection_returns_to_five_minutes(rig: Rig) -> None:
    rig.sample(95)
    rig.clock.advance(30)
    rig.sample(95)
    assert rig.manager.gc.periodic_collections == 1
    rig.sample(10)
    rig.clock.advance(60)
    rig.sample(10)
    assert rig.manager.gc.periodic_collections == 1
    assert rig.store.calls["evict"] == 2


def test_transitions_logged_once(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="interactsh.memory")
    for value in (45, 46, 65, 66, 85, 86, 95, 96, 96, 10, 10):
        rig.sample(value)
    lines = memory_lines(caplog)
    levels = [(record.levelno, record.message.split(":")[0]) for record in lines]
    assert levels == [
        (logging.INFO, "memory pressure rose from none to low"),
        (logging.INFO, "memory pressure rose from low to medium"),
        (logging.WARNING, "memory pressure rose from medium to high"),
        (logging.ERROR, "memory pressure rose from high to critical"),
        (logging.INFO, "memory pressure fell from critical to none"),
    ]


def test_transition_line_names_figures(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="interactsh.memory")
    rig.sample(95)
    (line,) = memory_lines(caplog)
    assert "resident 950 MiB is 95% of the 1000 MiB limit" in line.message
    assert "rejecting new registrations" in line.message


def test_configure_sets_budget(rig: Rig) -> None:
    expected = store_budget(rig.limit, rig.at(10), 3 * rig.config.max_poll_bytes)
    assert rig.store.arguments["set_budget"] == [expected]
    assert rig.manager.store_budget == expected


def test_store_budget_share() -> None:
    assert store_budget(1000 * MIB, 50 * MIB) == 600 * MIB
    # A large start-up footprint lowers it so that footprint plus store stays under 80 %.
    assert store_budget(1000 * MIB, 300 * MIB) == 500 * MIB
    # A limit at the footprint still leaves 5 %.
    assert store_budget(100 * MIB, 95 * MIB) == 5 * MIB
    # The reserve for a poll reply comes off the room above the footprint.
    assert store_budget(1000 * MIB, 300 * MIB, 24 * MIB) == 476 * MIB
    assert store_budget(1000 * MIB, 50 * MIB, 24 * MIB) == 600 * MIB


def test_policies_keep_lower_actions() -> None:
    order = ["none", "low", "medium", "high", "critical"]
    flags = ("release_free_pages", "expire_idle_sessions", "evict", "malloc_trim", "reject_registrations")
    for lower, higher in itertools.pairwise(order):
        for flag in flags:
            assert getattr(POLICIES[higher], flag) >= getattr(POLICIES[lower], flag), (lower, higher, flag)
        assert POLICIES[higher].gc_threshold_percent <= POLICIES[lower].gc_threshold_percent


def test_pages_released_periodically(rig: Rig) -> None:
    rig.sample(45)
    assert rig.store.calls["shrink"] == 1
    rig.clock.advance(1)
    rig.sample(45)
    assert rig.store.calls["shrink"] == 1
    rig.clock.advance(1)
    rig.sample(45)
    assert rig.store.calls["shrink"] == 2
    # Below high, a release does not trim the C heap.
    assert rig.trims == []
    rig.sample(10)
    rig.clock.advance(10)
    rig.sample(10)
    assert rig.store.calls["shrink"] == 2


def test_high_holds_store_budget(rig: Rig) -> None:
    rig.register("e" * 20)
    for _ in range(10):
        rig.store.append("e" * 20, b"r" * 1000)
    floor = int(rig.limit * 0.05)
    rig.sample(85)
    assert rig.manager.held_budget == floor
    assert rig.store.arguments["set_budget"][-1] == floor
    rig.sample(95)
    assert rig.manager.held_budget == floor
    rig.sample(70)
    assert rig.manager.held_budget is None
    assert rig.store.arguments["set_budget"][-1] == rig.manager.store_budget


def test_held_budget_follows_store_size(rig_factory: RigFactory) -> None:
    # With a 1 MiB limit the floor share is 52 KiB, below what the active session holds. Small poll pages
    # keep the poll reserve out of the budget.
    rig = rig_factory(max_memory=1, max_poll_bytes=1024)
    rig.register("e" * 20)
    for _ in range(100):
        rig.store.append("e" * 20, b"r" * 1000)
    size = rig.store.stats().total_bytes
    rig.sample(85)
    assert rig.manager.held_budget == size
    assert rig.manager.report().held_budget == size
