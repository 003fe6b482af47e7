"""Python runtime tuning for the memory manager: cyclic GC thresholds, freezing and ``malloc_trim``.

The generation-0 threshold is the number of container allocations (minus
deallocations) that triggers a young-generation collection. A lower threshold
collects cyclic garbage sooner, which keeps the peak lower at some CPU cost.
``INTERACTSH_GC_PERCENT`` scales CPython's default of 700, as ``GOGC`` scales
Go's collector, and the pressure monitor lowers it further by level.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("interactsh.memory")

# CPython's default generation-0 threshold (gc.get_threshold()[0] in 3.11).
DEFAULT_GEN0_THRESHOLD = 700


@dataclass(frozen=True)
class GcSnapshot:
    """The cyclic garbage collector's figures for ``/metrics``; one list entry per generation."""

    thresholds: tuple[int, ...]
    counts: tuple[int, ...]
    collections: tuple[int, ...]
    collected: tuple[int, ...]
    uncollectable: tuple[int, ...]
    frozen: int
    gc_percent: int
    pressure_percent: int
    periodic_collections: int


class GcTuner:
    """The tuner that sets the generation-0 threshold to ``700 × gc_percent / 100`` and scales it under pressure.

    :meth:`install` remembers the thresholds in force and :meth:`restore` puts
    them back, so a server started and stopped inside another program (the
    tests) leaves the collector as it found it.
    """

    def __init__(self, gc_percent: int) -> None:
        if gc_percent <= 0:
            raise ValueError(f"gc_percent {gc_percent} is invalid: use a positive whole number")
        self.gc_percent = gc_percent
        self.configured_threshold = max(1, DEFAULT_GEN0_THRESHOLD * gc_percent // 100)
        self.pressure_percent = 100
        self.periodic_collections = 0
        self._original: tuple[int, ...] | None = None
        self._frozen = False

    @property
    def installed(self) -> bool:
        """Tell whether :meth:`install` ran and :meth:`restore` has not."""
        return self._original is not None

    def install(self) -> None:
        """Remember the current thresholds and apply the configured generation-0 threshold."""
        if self._original is None:
            self._original = gc.get_threshold()
        self.scale(100)

    def scale(self, percent: int) -> None:
        """Set the generation-0 threshold to ``percent`` % of the configured one; a no-op before install."""
        self.pressure_percent = percent
        if self._original is None:
            return
        generation0 = max(1, self.configured_threshold * percent // 100)
        gc.set_threshold(generation0, *self._original[1:])

    def freeze(self) -> int:
        """Collect, then move every surviving object to the permanent generation; return how many moved.

        Objects created at start-up (modules, routes, configuration) live as
        long as the process, so scanning them in every full collection is wasted work.
        """
        gc.collect()
        gc.freeze()
        self._frozen = True
        return gc.get_freeze_count()

    def collect(self) -> int:
        """Run a full collection and return the unreachable objects found."""
        self.periodic_collections += 1
        return gc.collect()

    def restore(self) -> None:
        """Put back the thresholds found by :meth:`install` and unfreeze what :meth:`freeze` froze."""
        if self._original is not None:
            gc.set_threshold(*self._original)
            self._original = None
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
        self.pressure_percent = 100

    def snapshot(self) -> GcSnapshot:
        """Return the collector's current figures."""
        stats = gc.get_stats()
        return GcSnapshot(
            thresholds=tuple(gc.get_threshold()),
            counts=tuple(gc.get_count()),
            collections=tuple(int(generation["collections"]) for generation in stats),
            collected=tuple(int(generation["collected"]) for generation in stats),
            uncollectable=tuple(int(generation["uncollectable"]) for generation in stats),
            frozen=gc.get_freeze_count(),
            gc_percent=self.gc_percent,
            pressure_percent=self.pressure_percent,
            periodic_collections=self.periodic_collections,
        )


# mallopt(3) parameter numbers from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
# glibc's initial mmap threshold in bytes; allocations this large or larger get their own mapping.
MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; return whether glibc accepted it.

    By default glibc raises the threshold to the size of each mapped block
    that is freed, up to 32 MiB on 64-bit systems (mallopt(3)). Slab pages of
    1 MiB and large poll bodies then come from the heap, and freeing them
    returns nothing to the system until ``malloc_trim``. Setting the threshold
    turns that adjustment off, so such blocks stay mapped and go back on free.
    """
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def load_malloc_trim() -> Callable[[], bool] | None:
    """Return a function that calls glibc's ``malloc_trim(0)``, or ``None`` on another C library.

    ``malloc_trim`` returns free memory at the top of the heap, and free pages
    inside it, to the system. The function returns glibc's result, which is
    ``True`` when some memory was released.
    """
    libc = _glibc()
    if libc is None:
        return None
    trim = libc.malloc_trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def malloc_trim() -> bool:
        return bool(trim(0))

    return malloc_trim


def _glibc() -> ctypes.CDLL | None:
    """Return the C library when it is glibc with ``mallopt`` and ``malloc_trim``, else ``None``."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - the lookups raise AttributeError when a function is missing
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError) as error:
        log.debug("glibc's mallopt and malloc_trim are unavailable: %s", error)
        return None
    return libc
