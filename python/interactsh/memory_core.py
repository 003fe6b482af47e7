"""Memory figures of the process and the pressure monitor, from the Rust core or in pure Python.

:func:`resident_bytes`, :func:`effective_limit`, :func:`eviction_target` and
:class:`PressureMonitor` use ``interactsh._core`` when it loads and the pure
Python versions here (``python_*`` and :class:`PythonPressureMonitor`)
otherwise. Both follow the same rules:

* The effective limit is the lowest of three bounds: the configured bytes,
  the memory limit of this process's cgroup and of every cgroup above it, and
  physical memory (``MemTotal``). The cgroup limit is v2 ``memory.max``, or v1
  ``memory.limit_in_bytes`` when a v1 hierarchy has the memory controller.
  Limits of ``max`` or of 2^62 bytes and more mean "no limit". On a tie the
  configured limit names the source, then the cgroup.
* Pressure levels are entered at 40/60/80/90 % of the limit and left only when
  a sample falls 5 points below the level's threshold.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

try:
    from interactsh import _core as _native
except ImportError:  # the extension is not built: the pure Python versions below take over
    _native = None  # type: ignore[assignment]  # the stub types the module; None marks its absence

LEVELS = ("none", "low", "medium", "high", "critical")
EVICTION_TARGET_PERCENT = 70
# Limits at or above this mean "no limit": cgroup v1 reports an unset limit as
# the largest page count times the page size, just under 2^63.
UNLIMITED_FLOOR = 1 << 62

_DEFAULT_MOUNTS = {"v1": "/sys/fs/cgroup/memory", "v2": "/sys/fs/cgroup"}
_LIMIT_FILES = {"v1": "memory.limit_in_bytes", "v2": "memory.max"}


def native_available() -> bool:
    """Tell whether the Rust core provides the figures."""
    return _native is not None


def resident_bytes() -> int:
    """Return the resident set size of this process in bytes; ``OSError`` when ``/proc`` cannot be read."""
    if _native is not None:
        return _native.resident_bytes()
    return python_resident_bytes()


def effective_limit(configured_bytes: int | None) -> tuple[int | None, str]:
    """Return the effective memory limit in bytes and its source.

    The source is ``configured``, ``cgroup-v2``, ``cgroup-v1``, ``physical``,
    or ``none`` with a limit of ``None``.
    """
    if _native is not None:
        return _native.effective_limit(configured_bytes)
    return python_effective_limit(configured_bytes)


def eviction_target(limit: int) -> int:
    """Return the resident bytes that eviction at High and Critical aims for: 70 % of ``limit``."""
    return limit * EVICTION_TARGET_PERCENT // 100


# Pure Python readers


def python_resident_bytes(root: str = "/") -> int:
    """Return resident pages times the page size, from ``/proc/self/statm`` under ``root``."""
    path = Path(root, "proc/self/statm")
    text = path.read_text(encoding="ascii")
    fields = text.split()
    if len(fields) < 2 or not fields[1].isdigit():
        raise OSError(f"{path} contains {text.strip()!r}, which is not numbers of pages with resident pages second")
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def python_effective_limit(configured_bytes: int | None, root: str = "/") -> tuple[int | None, str]:
    """Return the effective limit and its source, reading ``/proc`` and ``/sys`` under ``root``."""
    if configured_bytes is not None and configured_bytes < 0:
        raise ValueError(f"configured memory limit {configured_bytes} is negative: use a number of bytes")
    bounds: list[tuple[int, str]] = []
    if configured_bytes is not None:
        bounds.append((configured_bytes, "configured"))
    cgroup = python_cgroup_limit(root)
    if cgroup is not None:
        bounds.append(cgroup)
    physical = python_physical_memory(root)
    if physical is not None:
        bounds.append((physical, "physical"))
    if not bounds:
        return None, "none"
    lowest = min(bytes_ for bytes_, _ in bounds)
    source = next(source for bytes_, source in bounds if bytes_ == lowest)
    return lowest, source


def python_physical_memory(root: str = "/") -> int | None:
    """Return ``MemTotal`` from ``/proc/meminfo`` in bytes, or ``None`` when the file is missing."""
    path = Path(root, "proc/meminfo")
    text = _read_optional(path)
    if text is None:
        return None
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["MemTotal:"]:
            if len(fields) == 3 and fields[1].isdigit() and fields[2] == "kB":
                return int(fields[1]) * 1024
            break
    raise OSError(f"{path} has no 'MemTotal: <number> kB' line")


def python_cgroup_limit(root: str = "/") -> tuple[int, str] | None:
    """Return the tightest limit of this process's cgroup and its ancestors with its source, or ``None``."""
    membership = _read_optional(Path(root, "proc/self/cgroup"))
    if membership is None:
        return None
    paths = _parse_membership(membership)
    # A v1 hierarchy with the memory controller limits memory even where v2 is mounted too.
    if "v1" in paths:
        version = "v1"
    elif "v2" in paths:
        version = "v2"
    else:
        return None
    mounts = _read_optional(Path(root, "proc/self/mountinfo")) or ""
    mount_root, mount_point = _find_mount(mounts, version) or ("/", _DEFAULT_MOUNTS[version])
    tightest: int | None = None
    for directory in _ancestors(mount_point, mount_root, paths[version]):
        limit = _read_limit_file(Path(root, directory.lstrip("/"), _LIMIT_FILES[version]))
        if limit is not None and (tightest is None or limit < tightest):
            tightest = limit
    return None if tightest is None else (tightest, f"cgroup-{version}")


def _read_optional(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _read_limit_file(path: Path) -> int | None:
    text = _read_optional(path)
    if text is None or text.strip() == "max":
        return None
    value = text.strip()
    if not value.isdigit():
        raise OSError(f"{path} contains {value!r}, which is not a number of bytes or 'max'")
    limit = int(value)
    return limit if limit < UNLIMITED_FLOOR else None


def _parse_membership(text: str) -> dict[str, str]:
    """Return the cgroup paths of the v1 hierarchy with the memory controller and of the v2 hierarchy."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            paths["v2"] = path
        elif "memory" in controllers.split(","):
            paths["v1"] = path
    return paths


def _find_mount(mountinfo: str, version: str) -> tuple[str, str] | None:
    """Return the cgroup path that a hierarchy's mount exposes and its mount point."""
    for line in mountinfo.splitlines():
        before, separator, after = line.partition(" - ")
        fields = before.split(" ")
        tail = after.split(" ")
        if not separator or len(fields) < 5 or len(tail) < 2:
            continue
        filesystem = tail[0]
        options = tail[2].split(",") if len(tail) > 2 else []
        if version == "v1":
            matches = filesystem == "cgroup" and "memory" in options
        else:
            matches = filesystem == "cgroup2"
        if matches:
            return _unescape(fields[3]), _unescape(fields[4])
    return None


def _unescape(field: str) -> str:
    """Decode the octal escapes (``\\040`` for a space) of mountinfo paths."""
    out = bytearray()
    index = 0
    raw = field.encode("utf-8", "surrogateescape")
    while index < len(raw):
        digits = raw[index + 1 : index + 4]
        if raw[index : index + 1] == b"\\" and len(digits) == 3 and all(48 <= digit <= 55 for digit in digits):
            out.append(int(digits, 8) & 0xFF)
            index += 4
        else:
            out.append(raw[index])
            index += 1
    return out.decode("utf-8", "replace")


def _ancestors(mount_point: str, mount_root: str, cgroup_path: str) -> list[str]:
    """List the directories from the process's cgroup up to the mount point.

    A path outside the mount's root, or one that climbs with ``..``, yields only the mount point.
    """
    directories = [mount_point]
    root = mount_root.rstrip("/")
    if not (cgroup_path == mount_root or cgroup_path.startswith(root + "/")):
        return directories
    parts = [part for part in cgroup_path[len(root) :].split("/") if part]
    if any(part in (".", "..") for part in parts):
        return directories
    current = mount_point.rstrip("/")
    for part in parts:
        current = f"{current}/{part}"
        directories.append(current)
    directories.reverse()
    return directories


# Pressure monitor


@dataclass(frozen=True)
class Thresholds:
    """Fractions of the limit at which each level is entered, and the hysteresis margin."""

    low: float = 0.40
    medium: float = 0.60
    high: float = 0.80
    critical: float = 0.90
    margin: float = 0.05

    def problem(self) -> str | None:
        """Return why the thresholds are invalid, or ``None`` when they work."""
        entries = [self.low, self.medium, self.high, self.critical]
        gaps = [upper - lower for lower, upper in itertools.pairwise(entries)]
        if not all(math.isfinite(value) for value in [*entries, self.margin]):
            return "every value must be a finite number"
        if not (self.low > 0 and self.critical <= 1):
            return "thresholds must lie in (0, 1]"
        if any(gap <= 0 for gap in gaps):
            return "thresholds must ascend from low to critical"
        if self.margin < 0:
            return "the margin must not be negative"
        if self.margin >= self.low or any(self.margin >= gap for gap in gaps):
            return "the margin must be smaller than the low threshold and every gap between thresholds"
        return None

    def entry(self, level: int) -> float:
        return (0.0, self.low, self.medium, self.high, self.critical)[level]


class PythonPressureMonitor:
    """The pressure monitor of the Rust core, in Python: same levels, hysteresis and counters."""

    def __init__(
        self,
        *,
        low: float = 0.40,
        medium: float = 0.60,
        high: float = 0.80,
        critical: float = 0.90,
        margin: float = 0.05,
    ) -> None:
        self._thresholds = Thresholds(low, medium, high, critical, margin)
        problem = self._thresholds.problem()
        if problem is not None:
            raise ValueError(
                f"pressure thresholds low={low} medium={medium} high={high} critical={critical} "
                f"margin={margin} are invalid: {problem}"
            )
        self._level = 0
        self._samples = 0
        self._samples_at = [0] * len(LEVELS)
        self._entered = [0] * len(LEVELS)
        self._last_ratio = 0.0
        self._peak_ratio = 0.0

    @property
    def level(self) -> str:
        """The current level: "none", "low", "medium", "high" or "critical"."""
        return LEVELS[self._level]

    def observe(self, rss: int, limit: int) -> tuple[str, str, float] | None:
        """Record a sample; return (from, to, ratio) when the level changes, else None."""
        ratio = math.inf if limit == 0 else rss / limit
        before = self._level
        after = self._next_level(ratio)
        self._level = after
        self._samples += 1
        self._samples_at[after] += 1
        self._last_ratio = ratio
        self._peak_ratio = max(self._peak_ratio, ratio)
        if after == before:
            return None
        self._entered[after] += 1
        return LEVELS[before], LEVELS[after], ratio

    def _next_level(self, ratio: float) -> int:
        thresholds = self._thresholds
        reached = max(level for level in range(len(LEVELS)) if ratio >= thresholds.entry(level))
        if reached >= self._level:
            return reached
        level = self._level
        while level > reached and ratio < thresholds.entry(level) - thresholds.margin:
            level -= 1
        return level

    def bytes_to_free(self, rss: int, limit: int) -> int:
        """Return the resident bytes the current level requires freeing: the excess over 70 % at High and Critical."""
        if self._level < LEVELS.index("high"):
            return 0
        return max(0, rss - eviction_target(limit))

    def stats(self) -> dict[str, object]:
        """Return the counters: level, samples, samples and entries per level, latest and peak ratio."""
        return {
            "level": self.level,
            "samples": self._samples,
            "samples_at": dict(zip(LEVELS, self._samples_at, strict=True)),
            "entered": dict(zip(LEVELS, self._entered, strict=True)),
            "last_ratio": self._last_ratio,
            "peak_ratio": self._peak_ratio,
        }


PressureMonitor: type[_native.PressureMonitor | PythonPressureMonitor]
if _native is not None:
    PressureMonitor = _native.PressureMonitor
else:
    PressureMonitor = PythonPressureMonitor
