"""The memory readers and the pressure monitor, through ``interactsh.memory_core``.

The pure Python versions read fake ``/proc`` and ``/sys`` trees built in a
temporary directory; on the real machine they must agree with the Rust core.
Without the extension the Rust runs skip, except under CI, where they fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import load_engine
from hypothesis import given, settings
from hypothesis import strategies as st
from interactsh import memory_core
from interactsh.memory_core import PythonPressureMonitor

MIB = 1 << 20
V2_MOUNTINFO = "24 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n"
V1_MOUNTINFO = (
    "30 24 0:26 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
    "31 24 0:27 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev master:9 - cgroup cgroup rw,memory\n"
)
MEMINFO = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\n"


def native() -> Any:
    """Return ``interactsh._core``, skipping (or failing under CI) when it cannot load."""
    load_engine("rust")
    from interactsh import _core

    return _core


@pytest.fixture(params=["python", "rust"])
def make_monitor(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Factory of pressure monitors, once per implementation."""
    if request.param == "python":
        return PythonPressureMonitor
    return native().PressureMonitor  # type: ignore[no-any-return]


class FakeRoot:
    """A directory that stands for ``/``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, name: str, content: str) -> FakeRoot:
        target = self.path / name.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        return self

    def limit(self, configured: int | None = None) -> tuple[int | None, str]:
        return memory_core.python_effective_limit(configured, root=str(self.path))


@pytest.fixture
def fake_root(tmp_path: Path) -> FakeRoot:
    return FakeRoot(tmp_path)


# Effective limit, pure Python readers


def test_v2_own_cgroup(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "0::/system.slice/app.service\n")
    fake_root.write("/proc/self/mountinfo", V2_MOUNTINFO)
    fake_root.write("/sys/fs/cgroup/system.slice/app.service/memory.max", "536870912\n")
    fake_root.write("/sys/fs/cgroup/system.slice/memory.max", "max\n")
    assert fake_root.limit() == (512 * MIB, "cgroup-v2")
    assert fake_root.limit(1024 * MIB) == (512 * MIB, "cgroup-v2")
    assert fake_root.limit(256 * MIB) == (256 * MIB, "configured")


def test_v2_ancestor_tighter(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "0::/system.slice/app.service\n")
    fake_root.write("/sys/fs/cgroup/system.slice/app.service/memory.max", "max\n")
    fake_root.write("/sys/fs/cgroup/system.slice/memory.max", "268435456\n")
    assert fake_root.limit() == (256 * MIB, "cgroup-v2")


def test_v2_max_is_unlimited(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "0::/user.slice\n")
    fake_root.write("/sys/fs/cgroup/user.slice/memory.max", "max\n")
    assert fake_root.limit() == (None, "none")
    assert fake_root.limit(64 * MIB) == (64 * MIB, "configured")


def test_v1_memory_hierarchy(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
    fake_root.write("/proc/self/mountinfo", V1_MOUNTINFO)
    fake_root.write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n")
    assert fake_root.limit() == (1024 * MIB, "cgroup-v1")


def test_v1_unlimited_marker(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "4:memory:/\n")
    fake_root.write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert fake_root.limit() == (None, "none")


def test_escaped_mount_point(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "0::/app\n")
    fake_root.write("/proc/self/mountinfo", "24 1 0:22 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n")
    fake_root.write("/sys/fs/my cgroup/app/memory.max", "1048576\n")
    assert fake_root.limit() == (MIB, "cgroup-v2")


def test_namespace_path_reads_mount_point(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/cgroup", "0::/../outside\n")
    fake_root.write("/sys/fs/cgroup/memory.max", "2097152\n")
    fake_root.write("/sys/fs/cgroup/outside/memory.max", "1048576\n")
    assert fake_root.limit() == (2 * MIB, "cgroup-v2")


def test_physical_memory_bounds(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/meminfo", MEMINFO)
    assert fake_root.limit() == (16384000 * 1024, "physical")
    assert fake_root.limit(1 << 60) == (16384000 * 1024, "physical")
    assert fake_root.limit(16384000 * 1024) == (16384000 * 1024, "configured")


def test_nothing_bounds(fake_root: FakeRoot) -> None:
    assert fake_root.limit() == (None, "none")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("/proc/meminfo", "MemTotal: lots\n"),
        ("/sys/fs/cgroup/app/memory.max", "unlimited\n"),
    ],
)
def test_malformed_files_raise(fake_root: FakeRoot, name: str, content: str) -> None:
    fake_root.write("/proc/self/cgroup", "0::/app\n")
    fake_root.write(name, content)
    with pytest.raises(OSError, match=Path(name).name):
        fake_root.limit()


def test_negative_configured_limit(fake_root: FakeRoot) -> None:
    with pytest.raises(ValueError, match="negative"):
        fake_root.limit(-1)
    with pytest.raises(ValueError, match="negative"):
        native().effective_limit(-1)


def test_resident_bytes_from_statm(fake_root: FakeRoot) -> None:
    import os

    fake_root.write("/proc/self/statm", "1000 250 30 4 0 60 0\n")
    assert memory_core.python_resident_bytes(str(fake_root.path)) == 250 * os.sysconf("SC_PAGE_SIZE")
    fake_root.write("/proc/self/statm", "garbage\n")
    with pytest.raises(OSError, match="statm"):
        memory_core.python_resident_bytes(str(fake_root.path))


# Both implementations on this machine


@pytest.mark.parametrize("configured", [None, 64 * MIB, 1 << 50])
def test_implementations_agree_on_limit(configured: int | None) -> None:
    assert memory_core.python_effective_limit(configured) == native().effective_limit(configured)


def test_implementations_agree_on_resident_bytes() -> None:
    rust = native().resident_bytes()
    python = memory_core.python_resident_bytes()
    assert rust > 0
    assert abs(rust - python) < 64 * MIB, f"Rust read {rust} resident bytes, Python {python}"


def test_wrapper_uses_native_when_built() -> None:
    native()
    assert memory_core.native_available()
    assert memory_core.PressureMonitor is native().PressureMonitor
    assert memory_core.resident_bytes() > 0
    assert memory_core.effective_limit(32 * MIB) == (32 * MIB, "configured")


@pytest.mark.parametrize("limit", [0, 1, 999, 1000, 1 << 40])
def test_eviction_target_is_70_percent(limit: int) -> None:
    assert memory_core.eviction_target(limit) == limit * 7 // 10
    assert native().eviction_target(limit) == memory_core.eviction_target(limit)


# Pressure monitor, both implementations


def test_levels_rise_at_thresholds(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor()
    assert monitor.level == "none"
    assert monitor.observe(399, 1000) is None
    assert monitor.observe(400, 1000) == ("none", "low", 0.4)
    assert monitor.observe(600, 1000) == ("low", "medium", 0.6)
    assert monitor.observe(800, 1000) == ("medium", "high", 0.8)
    assert monitor.observe(900, 1000) == ("high", "critical", 0.9)
    assert monitor.level == "critical"


def test_levels_fall_with_hysteresis(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor()
    monitor.observe(950, 1000)
    assert monitor.observe(860, 1000) is None, "86 % is within 5 points of Critical"
    assert monitor.observe(849, 1000) == ("critical", "high", 0.849)
    assert monitor.observe(100, 1000) == ("high", "none", 0.1)


def test_jump_skips_levels(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor()
    assert monitor.observe(850, 1000) == ("none", "high", 0.85)
    assert monitor.observe(560, 1000) == ("high", "medium", 0.56), "56 % is within 5 points of Medium"
    assert monitor.observe(540, 1000) == ("medium", "low", 0.54)
    assert monitor.observe(300, 1000) == ("low", "none", 0.3)


def test_zero_limit_is_critical(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor()
    transition = monitor.observe(1, 0)
    assert transition is not None
    assert transition[1] == "critical"


def test_bytes_to_free(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor()
    monitor.observe(650, 1000)
    assert monitor.bytes_to_free(650, 1000) == 0
    monitor.observe(850, 1000)
    assert monitor.bytes_to_free(850, 1000) == 150
    assert monitor.bytes_to_free(600, 1000) == 0


def test_stats_count_samples_and_entries(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor()
    for rss in (100, 450, 950, 500, 500):
        monitor.observe(rss, 1000)
    stats = monitor.stats()
    assert stats["level"] == "low"
    assert stats["samples"] == 5
    assert stats["samples_at"] == {"none": 1, "low": 3, "medium": 0, "high": 0, "critical": 1}
    assert stats["entered"] == {"none": 0, "low": 2, "medium": 0, "high": 0, "critical": 1}
    assert stats["last_ratio"] == 0.5
    assert stats["peak_ratio"] == 0.95


@pytest.mark.parametrize(
    "thresholds",
    [
        {"low": 0.0},
        {"low": 0.7},
        {"critical": 1.5},
        {"margin": -0.01},
        {"margin": 0.3},
        {"high": float("nan")},
    ],
)
def test_invalid_thresholds(make_monitor: Callable[..., Any], thresholds: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="pressure thresholds"):
        make_monitor(**thresholds)


def test_custom_thresholds(make_monitor: Callable[..., Any]) -> None:
    monitor = make_monitor(low=0.5, medium=0.6, high=0.7, critical=0.8, margin=0.02)
    assert monitor.observe(499, 1000) is None
    assert monitor.observe(700, 1000) == ("none", "high", 0.7)
    assert monitor.observe(681, 1000) is None
    assert monitor.observe(679, 1000) == ("high", "medium", 0.679)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 1000)), max_size=40))
def test_implementations_agree_on_samples(samples: list[tuple[int, int]]) -> None:
    python = PythonPressureMonitor()
    rust = native().PressureMonitor()
    for rss, limit in samples:
        assert python.observe(rss, limit) == rust.observe(rss, limit)
        assert python.level == rust.level
        assert python.bytes_to_free(rss, limit) == rust.bytes_to_free(rss, limit)
    assert python.stats() == rust.stats()
