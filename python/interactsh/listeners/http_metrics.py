"""The ``/metrics`` document: upstream's JSON keys, filled from this process.

Upstream exports Go runtime figures (``runtime.MemStats``). Python has no
direct equivalent, so the ``memory`` block keeps upstream's keys, including the
misspelt ``heap_allo`` and ``head_idle``, and fills them from the process:

* ``alloc``, ``heap_allo``, ``heap_in_use``: resident memory not shared with
  other processes (RSS minus shared pages);
* ``total_alloc``: peak RSS; ``sys``: virtual memory size;
* ``heap_sys``: data segment size; ``head_idle``: ``heap_sys`` minus ``heap_allo``;
* ``heap_objects``: memory blocks the interpreter holds (``sys.getallocatedblocks``);
* ``stack_in_use``, ``stack_sys``: the main thread's stack (``VmStk``);
* ``lookups``, ``mallocs``, ``frees``, ``heap_released`` and the ``mspan`` and
  ``mcache`` figures have no Python counterpart and are 0.

``cpu`` holds host-wide clock ticks as upstream's go-osstat reports them, and
``network`` the bytes of all host interfaces. The ``cache`` block maps the
store: hits are records filed under a live session, misses are records whose
session was gone, evictions are expired sessions. The ``store`` block and the
counters after ``sessions`` are this server's own.

After upstream's keys, the ``memory`` block carries this server's memory
figures as integers, in bytes unless named otherwise. They are the resident
and peak resident size, the effective limit and where it came from, the
pressure level, the store's accounted bytes and budget, evictions, drops and
rejections, the slab pool's per-class statistics and the cyclic GC's
thresholds and counts.
:func:`interactsh.listeners.http_prometheus.prometheus_text` exports the same
figures in the Prometheus text format.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import asdict
from typing import Any

import psutil

from interactsh.memory import MemoryReport
from interactsh.metrics import Counters
from interactsh.store.base import StoreStats

_UPSTREAM_COUNTERS = ("dns", "ftp", "http", "ldap", "smb", "smtp", "sessions")
_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
# go-osstat's total leaves out the guest times, which Linux already counts in user and nice.
_CPU_TOTAL_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def human_size(size: float) -> str:
    """Format bytes like docker/go-units ``HumanSize``: decimal units, 4 significant digits."""
    unit = 0
    while size >= 1000 and unit < len(_SIZE_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_SIZE_UNITS[unit]}"


def metrics_document(counters: Counters, stats: StoreStats, memory: MemoryReport) -> dict[str, Any]:
    """Return the ``/metrics`` document."""
    values = counters.as_dict()
    document: dict[str, Any] = {name: values[name] for name in _UPSTREAM_COUNTERS}
    document["cache"] = {
        "hit-count": counters.recorded,
        "miss-count": counters.unmatched,
        "load-success-count": 0,
        "load-error-count": 0,
        "total-load-time": 0,
        "eviction-count": stats.expired_sessions,
    }
    document["memory"] = memory_block() | memory_extension(memory, stats)
    document["cpu"] = cpu_block()
    document["network"] = network_block()
    # The pool statistics are in the memory block.
    document["store"] = {key.replace("_", "-"): value for key, value in asdict(stats).items() if key != "pool"}
    for name, value in values.items():
        if name not in _UPSTREAM_COUNTERS:
            document[name.replace("_", "-")] = value
    return document


def memory_block() -> dict[str, Any]:
    """Return upstream's memory keys filled from this process (see the module docstring)."""
    info = psutil.Process().memory_info()
    private = max(info.rss - getattr(info, "shared", 0), 0)
    data = getattr(info, "data", info.vms)
    stack = _stack_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "alloc": human_size(private),
        "total_alloc": human_size(peak),
        "sys": human_size(info.vms),
        "lookups": 0,
        "mallocs": 0,
        "frees": 0,
        "heap_allo": human_size(private),
        "heap_sys": human_size(data),
        "head_idle": human_size(max(data - private, 0)),
        "heap_in_use": human_size(private),
        "heap_released": human_size(0),
        "heap_objects": sys.getallocatedblocks(),
        "stack_in_use": human_size(stack),
        "stack_sys": human_size(stack),
        "mspan_in_use": human_size(0),
        "mspan_sys": human_size(0),
        "mcache_in_use": human_size(0),
        "mcache_sys": human_size(0),
    }


def memory_extension(report: MemoryReport, stats: StoreStats) -> dict[str, Any]:
    """Return this server's keys of the ``memory`` block (see the module docstring)."""
    gc = report.gc
    return {
        "optimization": report.optimization,
        "rss": report.rss,
        "peak-rss": report.peak_rss,
        "limit": report.limit,
        "limit-source": report.limit_origin,
        "level": report.level,
        "ratio": round(report.ratio, 4),
        "store-bytes": stats.total_bytes,
        "store-budget": report.store_budget,
        "store-budget-held": report.held_budget,
        "capture-limit": report.capture_limit,
        "rejecting-registrations": report.rejecting_registrations,
        "evicted-items": stats.evicted_items,
        "dropped-items": stats.dropped_items,
        "dropped-shared-items": stats.dropped_shared_items,
        "refused-items": stats.refused_items,
        "refused-sessions": stats.refused_sessions,
        "rejected-registrations": report.rejected_registrations,
        "expired-idle-sessions": report.totals.expired_sessions,
        "released-bytes": report.totals.released_bytes,
        "malloc-trims": report.totals.malloc_trims,
        "samples": report.totals.samples,
        "transitions": dict(report.totals.entered),
        "pool": kebab_keys(stats.pool),
        "gc": {
            "thresholds": list(gc.thresholds),
            "counts": list(gc.counts),
            "collections": list(gc.collections),
            "collected": list(gc.collected),
            "uncollectable": list(gc.uncollectable),
            "frozen": gc.frozen,
            "gc-percent": gc.gc_percent,
            "pressure-percent": gc.pressure_percent,
            "periodic-collections": gc.periodic_collections,
        },
    }


def kebab_keys(value: Any) -> Any:
    """Return ``value`` with every dictionary key's underscores turned into dashes, at any depth."""
    if isinstance(value, dict):
        return {str(key).replace("_", "-"): kebab_keys(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [kebab_keys(item) for item in value]
    return value


def cpu_block() -> dict[str, int] | None:
    """Return host CPU clock ticks (user, system, idle, nice, total), or ``None`` when unavailable."""
    try:
        times = psutil.cpu_times()
        ticks_per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    fields = times._asdict()
    ticks = {name: int(seconds * ticks_per_second) for name, seconds in fields.items()}
    total = sum(ticks.get(name, 0) for name in _CPU_TOTAL_FIELDS)
    return {
        "user": ticks["user"],
        "system": ticks["system"],
        "idle": ticks["idle"],
        "nice": ticks.get("nice", 0),
        "total": total,
    }


def network_block() -> dict[str, str]:
    """Return the bytes received and sent over all host interfaces."""
    try:
        totals = psutil.net_io_counters()
    except OSError:
        totals = None
    if totals is None:
        return {"received": human_size(0), "transmitted": human_size(0)}
    return {"received": human_size(totals.bytes_recv), "transmitted": human_size(totals.bytes_sent)}


def _stack_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmStk:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
