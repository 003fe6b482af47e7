"""The memory manager: the byte budget, the pressure monitor loop and what each level does.

The effective limit is the lowest of ``-max-memory``, the cgroup limit and
physical memory. The store gets a share of it as its byte budget, which it
enforces itself on every append and registration. A task samples the resident
set size a few times a second and feeds it to the pressure monitor of the Rust
core. The monitor's levels are entered at 40, 60, 80 and 90 % of the limit,
with hysteresis, and each level has a :class:`LevelPolicy`:

========  ==========================================================================
level     response
========  ==========================================================================
none      GC threshold as configured; a full collection every 5 minutes
low       release free slab pages
medium    GC threshold at 50 %; remove sessions idle for ``-memory-idle-expiry``;
          release free slab pages
high      GC threshold at 25 %; evict the oldest interactions of idle sessions,
          as many bytes as resident memory exceeds 70 % of the limit, and hold
          the store's budget at its size after that; ``malloc_trim``
critical  as high, and reject new registrations (503 with ``Retry-After``), record
          at most ``-max-request-size-critical`` bytes per request, and repeat the
          collection and the eviction every 30 seconds
========  ==========================================================================

The one-shot actions (release, expiry, eviction, trim) run once on each rise
to a level, and the collection and eviction repeat at the level's GC period.
From low on, free slab pages are also released every 2 seconds (and the C
heap trimmed after them at high and critical), because polls and evictions
keep freeing pages. Settings (GC threshold, admission, GC period) follow the
level both ways.
Each transition is logged once on ``interactsh.memory``: rises to high at
WARNING, to critical at ERROR, every other rise and every fall at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from interactsh import memory_core
from interactsh.config import ServerConfig
from interactsh.memory_runtime import GcSnapshot, GcTuner, fix_mmap_threshold, load_malloc_trim
from interactsh.recording import Admission, Recorder
from interactsh.store.base import Store

log = logging.getLogger("interactsh.memory")

MIB = 1024 * 1024
LEVELS = ("none", "low", "medium", "high", "critical")
# The store's budget is this share of the effective limit...
STORE_BUDGET_SHARE = 0.60
# ...but no more than keeps the start-up footprint plus a full store below the
# High threshold, so that a full store alone does not cause evictions...
STORE_BUDGET_CEILING = 0.80
# ...and no less than this share, so that a limit near the footprint still stores something.
STORE_BUDGET_FLOOR = 0.05
# Room kept free for a poll reply, in -max-poll-bytes pages: about 1.33 pages of base64 body
# in Rust and the same again in the Python bytes object, rounded up.
POLL_RESERVE_PAGES = 3
# Seconds between releases of free pool pages from the low level on. Evictions and polls free
# chunks all the time, and a page becomes free only when its last chunk goes.
RELEASE_INTERVAL = 2.0
# Seconds between reports of interactions that the full store rejected.
REFUSAL_REPORT_INTERVAL = 60.0
# Seconds between logged failures of the sampling loop after the first.
FAILURE_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class LevelPolicy:
    """The responses of the server at one pressure level."""

    gc_threshold_percent: int
    gc_period: float
    release_free_pages: bool = False
    expire_idle_sessions: bool = False
    evict: bool = False
    malloc_trim: bool = False
    # Hold the store's budget at its size after each eviction, so that it cannot grow back.
    hold_store_budget: bool = False
    reject_registrations: bool = False
    shrink_capture: bool = False


POLICIES: dict[str, LevelPolicy] = {
    "none": LevelPolicy(100, 300.0),
    "low": LevelPolicy(100, 300.0, release_free_pages=True),
    "medium": LevelPolicy(50, 300.0, release_free_pages=True, expire_idle_sessions=True),
    "high": LevelPolicy(
        25,
        300.0,
        release_free_pages=True,
        expire_idle_sessions=True,
        evict=True,
        malloc_trim=True,
        hold_store_budget=True,
    ),
    "critical": LevelPolicy(
        25,
        30.0,
        release_free_pages=True,
        expire_idle_sessions=True,
        evict=True,
        malloc_trim=True,
        hold_store_budget=True,
        reject_registrations=True,
        shrink_capture=True,
    ),
}


@dataclass(frozen=True)
class Transition:
    """A change of pressure level and the sample that caused it."""

    from_level: str
    to_level: str
    ratio: float
    rss: int
    limit: int

    @property
    def rising(self) -> bool:
        """Tell whether the new level is higher than the old one."""
        return LEVELS.index(self.to_level) > LEVELS.index(self.from_level)


@dataclass
class ActionResult:
    """The outcome of the one-shot actions of a rise, or of a periodic pass."""

    expired_sessions: int = 0
    evicted_items: int = 0
    released_bytes: int = 0
    trimmed: bool = False

    def describe(self) -> str:
        """Return the actions as a clause for the log line, or ``""`` when nothing was done."""
        parts: list[str] = []
        if self.expired_sessions:
            parts.append(f"removed {self.expired_sessions} idle sessions")
        if self.evicted_items:
            parts.append(f"evicted {self.evicted_items} interactions of idle sessions")
        if self.released_bytes:
            parts.append(f"released {_mib(self.released_bytes)} MiB of free pool pages")
        if self.trimmed:
            parts.append("returned free C heap memory to the system")
        return ", ".join(parts)


@dataclass
class MemoryTotals:
    """Counters of the manager itself, for ``/metrics``."""

    samples: int = 0
    sample_failures: int = 0
    entered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVELS, 0))
    expired_sessions: int = 0
    evicted_items: int = 0
    released_bytes: int = 0
    malloc_trims: int = 0


@dataclass(frozen=True)
class MemoryReport:
    """Everything ``/metrics`` shows about memory beyond upstream's keys."""

    optimization: bool
    rss: int
    peak_rss: int
    limit: int | None
    limit_origin: str
    level: str
    ratio: float
    store_budget: int | None
    held_budget: int | None
    capture_limit: int
    rejecting_registrations: bool
    rejected_registrations: int
    totals: MemoryTotals
    gc: GcSnapshot


class MemoryManager:
    """The owner of the store budget, the sampling task and the responses to pressure levels.

    ``rss_source`` replaces the ``/proc/self/statm`` reading, ``limit_source``
    the cgroup lookup and ``clock`` the monotonic clock, so tests can drive
    levels with made-up samples through :meth:`configure` and :meth:`tick`.
    """

    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        admission: Admission,
        *,
        rss_source: Callable[[], int] | None = None,
        limit_source: Callable[[int | None], tuple[int | None, str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        malloc_trim: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.admission = admission
        self.enabled = not config.disable_memory_optimization
        self.rss_source = rss_source or memory_core.resident_bytes
        self.limit_source = limit_source or memory_core.effective_limit
        self.clock = clock
        self.gc = GcTuner(config.gc_percent)
        self.malloc_trim = malloc_trim if malloc_trim is not None else load_malloc_trim()
        self.monitor = memory_core.PressureMonitor()
        self.level = "none"
        self.limit: int | None = None
        self.limit_origin = "none"
        self.store_budget: int | None = None
        # The lower budget in force at high and critical, or None when the full budget applies.
        self.held_budget: int | None = None
        self.last_rss = 0
        self.peak_rss = 0
        self.last_ratio = 0.0
        self.totals = MemoryTotals()
        # Off when the resident size cannot be read; the budget and periodic collections stay on.
        self.sampling = True
        self._configured = False
        self._gc_period = POLICIES["none"].gc_period
        self._last_collection = 0.0
        self._last_release = 0.0
        self._refused_reported = 0
        self._rejected_reported = 0
        self._next_refusal_report = math.inf
        self._last_failure_log = -math.inf
        self._task: asyncio.Task[None] | None = None

    # Life cycle.

    def configure(self) -> None:
        """Set the limit, the store budget and GC tuning; call once, after the listeners started."""
        if self._configured:
            return
        self._configured = True
        if not self.enabled:
            log.info("memory optimization is off: no memory budget, pressure monitor or GC tuning")
            return
        configured = self.config.max_memory * MIB
        limit, origin = self.limit_source(configured)
        self.limit = limit if limit is not None else configured
        self.limit_origin = origin
        baseline = self._baseline_rss()
        # A poll reply holds a page of plaintext and its encrypted, base64 body, which Python copies once.
        poll_reserve = POLL_RESERVE_PAGES * self.config.max_poll_bytes
        self.store_budget = store_budget(self.limit, baseline, poll_reserve)
        self.store.set_budget(self.store_budget)
        self.gc.install()
        frozen = self.gc.freeze()
        if not fix_mmap_threshold():
            log.debug("the mmap threshold stays dynamic: the C library is not glibc")
        now = self.clock()
        self._last_collection = now
        self._next_refusal_report = now + REFUSAL_REPORT_INTERVAL
        self._log_configuration(baseline, poll_reserve, frozen)

    def _baseline_rss(self) -> int:
        """Return the resident size at start-up; without one, turn sampling off and return 0."""
        try:
            return self._read_rss()
        except OSError as error:
            self.sampling = False
            log.error(
                "could not read the resident memory size (%s): pressure levels are off, the store budget still applies",
                error,
            )
            return 0

    def _log_configuration(self, baseline: int, poll_reserve: int, frozen: int) -> None:
        limit = self.limit or 0
        budget = self.store_budget or 0
        log.info(
            "memory limit %d MiB (%s), store budget %d MiB, resident %d MiB at start, %d objects frozen out of GC",
            _mib(limit),
            _describe_origin(self.limit_origin),
            _mib(budget),
            _mib(baseline),
            frozen,
        )
        if budget <= int(limit * STORE_BUDGET_FLOOR):
            log.warning(
                "memory limit %d MiB leaves the store only %d MiB above the %d MiB resident at start and the "
                "%d MiB kept for a poll reply: raise -max-memory",
                _mib(limit),
                _mib(budget),
                _mib(baseline),
                _mib(poll_reserve),
            )

    async def start(self) -> None:
        """Configure, then sample every ``-memory-sample-interval`` seconds until :meth:`stop`."""
        self.configure()
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="interactsh-memory-monitor")

    async def stop(self) -> None:
        """Stop sampling, then :meth:`restore`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.restore()

    def restore(self) -> None:
        """Put the collector, the admission settings and the store's full budget back."""
        if self.held_budget is not None:
            self.held_budget = None
            self.store.set_budget(self.store_budget)
        self.gc.restore()
        self.admission.reject_registrations = False
        self.admission.capture_limit = self.config.max_request_size

    async def _run(self) -> None:
        interval = self.config.memory_sample_interval
        while True:
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - a failed sample must not end the monitor
                self._log_failure(error)
            await asyncio.sleep(interval)

    # Sampling.

    def tick(self) -> Transition | None:
        """Take one sample and run whatever periodic work is due; return the transition, if any."""
        transition = self.sample()
        now = self.clock()
        if now >= self._last_collection + self._gc_period:
            self.collect_periodically(now)
        if POLICIES[self.level].release_free_pages and now >= self._last_release + RELEASE_INTERVAL:
            self.release_periodically()
        if now >= self._next_refusal_report:
            self._report_refusals(now)
        return transition

    def sample(self) -> Transition | None:
        """Feed one resident-size sample to the monitor and respond when the level changes."""
        if not self.enabled or not self.sampling or self.limit is None:
            return None
        rss = self._read_rss()
        self.totals.samples += 1
        self.last_rss = rss
        self.last_ratio = rss / self.limit
        change = self.monitor.observe(rss, self.limit)
        if change is None:
            return None
        from_level, to_level, ratio = change
        transition = Transition(from_level, to_level, ratio, rss, self.limit)
        self.level = to_level
        self.totals.entered[to_level] += 1
        policy = POLICIES[to_level]
        self._apply_settings(policy)
        result = self._run_actions(policy, rss) if transition.rising else ActionResult()
        self._log_transition(transition, result)
        return transition

    def collect_periodically(self, now: float) -> ActionResult:
        """Run the full collection of the level's GC period, and at high and critical evict again."""
        self._last_collection = now
        unreachable = self.gc.collect()
        result = ActionResult()
        policy = POLICIES[self.level]
        if policy.evict:
            rss = self._read_rss()
            result.evicted_items = self._evict_to_target(rss)
            result.released_bytes = self._shrink_store()
            result.trimmed = self._trim()
        done = result.describe()
        if done:
            log.info("memory pressure still %s: %s", self.level, done)
        log.debug("periodic garbage collection found %d unreachable objects", unreachable)
        return result

    def release_periodically(self) -> int:
        """Return free pool pages to the allocator, then at high and critical trim the C heap; return the bytes."""
        released = self._shrink_store()
        if released and POLICIES[self.level].malloc_trim:
            self._trim()
        log.debug("released %d bytes of free pool pages", released)
        return released

    def _read_rss(self) -> int:
        rss = self.rss_source()
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    # Responses.

    def _apply_settings(self, policy: LevelPolicy) -> None:
        if not policy.hold_store_budget and self.held_budget is not None:
            self.held_budget = None
            self.store.set_budget(self.store_budget)
        self.gc.scale(policy.gc_threshold_percent)
        self._gc_period = policy.gc_period
        self.admission.reject_registrations = policy.reject_registrations
        capture = self.config.max_request_size
        if policy.shrink_capture:
            capture = min(capture, self.config.max_request_size_critical)
        self.admission.capture_limit = capture

    def _run_actions(self, policy: LevelPolicy, rss: int) -> ActionResult:
        # Expiry and eviction first, so that releasing pages and trimming return what they freed.
        result = ActionResult()
        if policy.expire_idle_sessions:
            result.expired_sessions = self.store.expire_idle(self.config.memory_idle_expiry)
            self.totals.expired_sessions += result.expired_sessions
        if policy.evict:
            result.evicted_items = self._evict_to_target(rss)
        if policy.release_free_pages:
            result.released_bytes = self._shrink_store()
        if policy.malloc_trim:
            result.trimmed = self._trim()
        return result

    def _evict_to_target(self, rss: int) -> int:
        """Evict the oldest records of idle sessions, as many bytes as ``rss`` exceeds 70 % of the limit."""
        if self.limit is None:
            return 0
        excess = rss - memory_core.eviction_target(self.limit)
        evicted = 0
        if excess > 0:
            evicted = self.store.evict(max(0, self.store.stats().total_bytes - excess))
            self.totals.evicted_items += evicted
        if POLICIES[self.level].hold_store_budget:
            self._hold_budget()
        return evicted

    def _hold_budget(self) -> None:
        """Lower the store's budget to its current size, but not below the floor share of the limit."""
        if self.store_budget is None or self.limit is None:
            return
        floor = int(self.limit * STORE_BUDGET_FLOOR)
        held = min(self.store_budget, max(self.store.stats().total_bytes, floor))
        if held != self.held_budget:
            self.held_budget = held
            self.store.set_budget(held)

    def _shrink_store(self) -> int:
        self._last_release = self.clock()
        released = self.store.shrink()
        self.totals.released_bytes += released
        return released

    def _trim(self) -> bool:
        if self.malloc_trim is None:
            return False
        self.totals.malloc_trims += 1
        return self.malloc_trim()

    # Logging.

    def _log_transition(self, transition: Transition, result: ActionResult) -> None:
        rise = transition.rising
        direction = "rose" if rise else "fell"
        severity = logging.INFO
        if rise and transition.to_level == "high":
            severity = logging.WARNING
        elif rise and transition.to_level == "critical":
            severity = logging.ERROR
        details = [result.describe()] if rise else []
        details.append(self._settings_text())
        log.log(
            severity,
            "memory pressure %s from %s to %s: resident %d MiB is %.0f%% of the %d MiB limit; %s",
            direction,
            transition.from_level,
            transition.to_level,
            _mib(transition.rss),
            transition.ratio * 100,
            _mib(transition.limit),
            "; ".join(part for part in details if part),
        )

    def _settings_text(self) -> str:
        threshold = self.gc.snapshot().thresholds[0]
        text = f"GC generation-0 threshold {threshold}"
        if self.admission.reject_registrations:
            text += f", rejecting new registrations, recording at most {self.admission.capture_limit} bytes per request"
        return text

    def _report_refusals(self, now: float) -> None:
        self._next_refusal_report = now + REFUSAL_REPORT_INTERVAL
        refused = self.store.stats().refused_items
        rejected = self.admission.rejected_registrations
        new_refused = refused - self._refused_reported
        new_rejected = rejected - self._rejected_reported
        self._refused_reported, self._rejected_reported = refused, rejected
        if new_refused > 0 or new_rejected > 0:
            log.warning(
                "in the last %.0f s the full store rejected %d interactions and %d registrations were rejected "
                "under memory pressure: raise -max-memory or poll more often",
                REFUSAL_REPORT_INTERVAL,
                new_refused,
                new_rejected,
            )

    def _log_failure(self, error: Exception) -> None:
        """Count a failed sample and log it at most once per :data:`FAILURE_LOG_INTERVAL`.

        An unreadable ``/proc`` (``OSError``) is logged without a traceback, any other error with one.
        """
        self.totals.sample_failures += 1
        now = self.clock()
        if now - self._last_failure_log < FAILURE_LOG_INTERVAL:
            return
        self._last_failure_log = now
        failures = self.totals.sample_failures
        if isinstance(error, OSError):
            log.error("memory monitor sample failed (%d failures so far): %s", failures, error)
        else:
            log.exception("memory monitor sample failed (%d failures so far)", failures)

    # Reporting.

    def report(self) -> MemoryReport:
        """Return the figures that ``/metrics`` shows, with a fresh resident-size reading."""
        try:
            rss = self._read_rss()
        except OSError:
            rss = self.last_rss
        return MemoryReport(
            optimization=self.enabled,
            rss=rss,
            peak_rss=self.peak_rss,
            limit=self.limit,
            limit_origin=self.limit_origin,
            level=self.level,
            ratio=rss / self.limit if self.limit else 0.0,
            store_budget=self.store_budget,
            held_budget=self.held_budget,
            capture_limit=self.admission.capture_limit,
            rejecting_registrations=self.admission.reject_registrations,
            rejected_registrations=self.admission.rejected_registrations,
            totals=self.totals,
            gc=self.gc.snapshot(),
        )


def report_of(recorder: Recorder) -> MemoryReport:
    """Return the memory report of the recorder's manager, or a minimal one when it has none.

    Listeners embedded without the server wiring have no manager. Their report
    reads the resident size and the collector but shows no limit or level.
    """
    if recorder.memory is not None:
        return recorder.memory.report()
    try:
        rss = memory_core.resident_bytes()
    except OSError:
        rss = 0
    admission = recorder.admission
    return MemoryReport(
        optimization=False,
        rss=rss,
        peak_rss=rss,
        limit=None,
        limit_origin="none",
        level="none",
        ratio=0.0,
        store_budget=None,
        held_budget=None,
        capture_limit=admission.capture_limit,
        rejecting_registrations=admission.reject_registrations,
        rejected_registrations=admission.rejected_registrations,
        totals=MemoryTotals(),
        gc=GcTuner(recorder.config.gc_percent).snapshot(),
    )


def store_budget(limit: int, resident_at_start: int, reserve: int = 0) -> int:
    """Return the store's byte budget under ``limit``, given the resident bytes at start-up.

    The budget is :data:`STORE_BUDGET_SHARE` of the limit, lowered so that the
    start-up footprint, ``reserve`` bytes and a full store stay under
    :data:`STORE_BUDGET_CEILING` of it, and at least :data:`STORE_BUDGET_FLOOR` of it.
    """
    share = int(limit * STORE_BUDGET_SHARE)
    room = int(limit * STORE_BUDGET_CEILING) - resident_at_start - reserve
    floor = int(limit * STORE_BUDGET_FLOOR)
    return max(floor, min(share, room))


def _mib(size: int) -> int:
    return round(size / MIB)


def _describe_origin(origin: str) -> str:
    return {
        "configured": "from -max-memory",
        "cgroup-v2": "the cgroup v2 memory.max, below -max-memory",
        "cgroup-v1": "the cgroup v1 memory.limit_in_bytes, below -max-memory",
        "physical": "physical memory, below -max-memory",
    }.get(origin, origin)
