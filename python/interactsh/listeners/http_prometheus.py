"""The ``/metrics?format=prometheus`` document: the JSON figures in the Prometheus text format.

Every scrape builds a private registry around one :class:`MetricsSnapshot`,
so nothing is registered globally and the numbers come from the same moment.
Names start with ``interactsh_``; byte figures end in ``_bytes`` and counters
in ``_total``, as the Prometheus naming conventions ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from interactsh.memory import LEVELS, MemoryReport
from interactsh.memory_runtime import GcSnapshot
from interactsh.metrics import Counters
from interactsh.store.base import StoreStats

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST
PROTOCOL_COUNTERS = ("dns", "ftp", "http", "ldap", "smb", "smtp")
# StoreStats fields that only grow; the others are gauges.
STORE_COUNTERS = frozenset(
    {"dropped_items", "dropped_shared_items", "expired_sessions", "evicted_items", "refused_items", "refused_sessions"}
)
STORE_HELP = {
    "sessions": "Live sessions in the store.",
    "queued_items": "Interactions queued for their sessions' next polls.",
    "queued_bytes": "Bytes of the queued interactions.",
    "shared_items": "Records in the shared extra and tlddata buckets.",
    "shared_bytes": "Bytes of the records in the shared buckets.",
    "total_bytes": "Bytes the store accounts for: payloads, per-session overhead and shared buckets.",
    "dropped_items": "Interactions dropped by the per-session caps, oldest first.",
    "dropped_shared_items": "Records dropped from the shared buckets by their cap.",
    "expired_sessions": "Sessions removed because their time to live passed or they were idle under memory pressure.",
    "evicted_items": "Interactions of idle sessions evicted to stay within the memory budget.",
    "refused_items": "Interactions not stored because the store's memory budget was full.",
    "refused_sessions": "New sessions not registered because the store's memory budget was full.",
}
# HELP texts of the Counters fields beyond the per-protocol requests and the sessions gauge.
COUNTER_HELP = {
    "dns_refused": (
        "DNS queries answered REFUSED because the name is outside every configured domain "
        "or the class is not IN or ANY."
    ),
    "dns_malformed": (
        "DNS messages rejected as malformed: unparsable messages, empty TCP frames and unsupported EDNS versions."
    ),
    "ldap_nonldap": "Connections to the LDAP port whose first bytes are not an LDAP message, such as TLS or HTTP.",
    "recorded": "Interactions queued for a registered session.",
    "unmatched": "Interactions for a correlation id without a live session, not stored (upstream's miss-count).",
}
# Figures of one slab size class, as the Rust store reports them under the pool's "classes".
POOL_CLASS_FIGURES = {
    "pages": ("interactsh_pool_class_pages", "Pages of the size class."),
    "free_pages": ("interactsh_pool_class_free_pages", "Pages of the size class without a payload."),
    "chunks_used": ("interactsh_pool_class_chunks_used", "Chunks of the size class holding a payload."),
    "chunks_free": ("interactsh_pool_class_chunks_free", "Free chunks of the size class."),
    "bytes_requested": ("interactsh_pool_class_requested_bytes", "Payload bytes stored in the size class."),
    "bytes_held": ("interactsh_pool_class_held_bytes", "Bytes the size class holds, used or free."),
}
# Totals of the whole pool, including payloads too large for any class.
POOL_TOTAL_FIGURES = {
    "payloads": ("interactsh_pool_payloads", "Payloads in the pool."),
    "pages": ("interactsh_pool_pages", "Pages of all size classes."),
    "free_pages": ("interactsh_pool_free_pages", "Pages without a payload."),
    "large_payloads": (
        "interactsh_pool_large_payloads",
        "Payloads larger than the largest class, allocated one by one.",
    ),
    "large_bytes": ("interactsh_pool_large_bytes", "Bytes of the payloads larger than the largest class."),
    "bytes_requested": ("interactsh_pool_requested_bytes", "Payload bytes stored in the pool."),
    "bytes_held": ("interactsh_pool_held_bytes", "Bytes the pool holds, used or free."),
    "bytes_overhead": (
        "interactsh_pool_overhead_bytes",
        "Bytes held beyond the payloads: chunk rounding and free chunks.",
    ),
}


# eq=False keeps the identity hash, which the registry needs to file the collector.
@dataclass(frozen=True, eq=False)
class MetricsSnapshot(Collector):
    """The figures of one scrape, as a collector for a private registry."""

    counters: Counters
    stats: StoreStats
    memory: MemoryReport

    def collect(self) -> Iterator[Metric]:
        yield from _protocol_metrics(self.counters)
        yield from _store_metrics(self.stats)
        yield from _memory_metrics(self.memory)
        yield from _pool_metrics(self.stats.pool)
        yield from _gc_metrics(self.memory.gc)


def prometheus_text(counters: Counters, stats: StoreStats, memory: MemoryReport) -> bytes:
    """Return the exposition text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsSnapshot(counters, stats, memory))
    return generate_latest(registry)


def _protocol_metrics(counters: Counters) -> Iterator[Metric]:
    values = counters.as_dict()
    requests = CounterMetricFamily(
        "interactsh_requests",
        "Requests handled per protocol, counted as upstream's /metrics counts them.",
        labels=["protocol"],
    )
    for protocol in PROTOCOL_COUNTERS:
        requests.add_metric([protocol], values[protocol])
    yield requests
    yield GaugeMetricFamily(
        "interactsh_sessions",
        "Registration attempts minus successful deregistrations (upstream's gauge).",
        values["sessions"],
    )
    for name, value in values.items():
        if name in PROTOCOL_COUNTERS or name == "sessions":
            continue
        help_text = COUNTER_HELP.get(name, f"The {name.replace('_', ' ')} counter of /metrics.")
        yield CounterMetricFamily(f"interactsh_{name}", help_text, value)


def _store_metrics(stats: StoreStats) -> Iterator[Metric]:
    for name, value in asdict(stats).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        help_text = STORE_HELP.get(name, f"The store's {name.replace('_', ' ')}.")
        metric_name = "interactsh_store_bytes" if name == "total_bytes" else f"interactsh_store_{name}"
        if name in STORE_COUNTERS:
            yield CounterMetricFamily(metric_name, help_text, value)
        else:
            yield GaugeMetricFamily(metric_name, help_text, value)


def _memory_metrics(report: MemoryReport) -> Iterator[Metric]:
    totals = report.totals
    yield GaugeMetricFamily(
        "interactsh_memory_optimization",
        "1 when the memory optimization is on, 0 with -disable-memory-optimization.",
        int(report.optimization),
    )
    yield GaugeMetricFamily("interactsh_memory_resident_bytes", "Resident set size of the process.", report.rss)
    yield GaugeMetricFamily(
        "interactsh_memory_peak_resident_bytes", "Highest resident set size the monitor sampled.", report.peak_rss
    )
    if report.limit is not None:
        yield GaugeMetricFamily("interactsh_memory_limit_bytes", "Effective memory limit of the process.", report.limit)
    if report.store_budget is not None:
        yield GaugeMetricFamily("interactsh_store_budget_bytes", "The store's byte budget.", report.store_budget)
    if report.held_budget is not None:
        yield GaugeMetricFamily(
            "interactsh_store_held_budget_bytes",
            "The lower budget the store is held at while memory pressure is high or critical.",
            report.held_budget,
        )
    yield GaugeMetricFamily(
        "interactsh_memory_pressure_level",
        "Memory pressure level: 0 none, 1 low, 2 medium, 3 high, 4 critical.",
        LEVELS.index(report.level),
    )
    yield GaugeMetricFamily("interactsh_memory_pressure_ratio", "Resident size divided by the limit.", report.ratio)
    entered = CounterMetricFamily(
        "interactsh_memory_pressure_transitions", "Transitions into each pressure level.", labels=["level"]
    )
    for level in LEVELS:
        entered.add_metric([level], totals.entered[level])
    yield entered
    yield GaugeMetricFamily(
        "interactsh_memory_capture_limit_bytes",
        "Bytes of each request that listeners record now.",
        report.capture_limit,
    )
    yield GaugeMetricFamily(
        "interactsh_memory_rejecting_registrations",
        "1 while new registrations get 503 because memory pressure is critical.",
        int(report.rejecting_registrations),
    )
    yield from _memory_counters(report)


def _memory_counters(report: MemoryReport) -> Iterator[Metric]:
    totals = report.totals
    figures: tuple[tuple[str, str, int], ...] = (
        (
            "interactsh_memory_rejected_registrations",
            "New registrations rejected under critical pressure.",
            report.rejected_registrations,
        ),
        (
            "interactsh_memory_expired_idle_sessions",
            "Idle sessions removed under memory pressure.",
            totals.expired_sessions,
        ),
        ("interactsh_memory_evicted_items", "Interactions evicted by the pressure monitor.", totals.evicted_items),
        (
            "interactsh_memory_released_bytes",
            "Bytes of free pool pages returned to the allocator.",
            totals.released_bytes,
        ),
        ("interactsh_memory_malloc_trims", "Calls of malloc_trim under pressure.", totals.malloc_trims),
        ("interactsh_memory_samples", "Resident size samples taken by the monitor.", totals.samples),
        ("interactsh_memory_sample_failures", "Samples of the monitor that failed.", totals.sample_failures),
    )
    for name, help_text, value in figures:
        yield CounterMetricFamily(name, help_text, value)


def _pool_metrics(pool: dict[str, Any]) -> Iterator[Metric]:
    """Yield the pool's totals and per-class figures; the Python engine's empty pool yields none."""
    for key, (name, help_text) in POOL_TOTAL_FIGURES.items():
        value = pool.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield GaugeMetricFamily(name, help_text, value)
    classes = _pool_classes(pool)
    if not classes:
        return
    for key, (name, help_text) in POOL_CLASS_FIGURES.items():
        family = GaugeMetricFamily(name, help_text, labels=["chunk_size"])
        for size_class in classes:
            value = size_class.get(key)
            if isinstance(value, (int, float)):
                family.add_metric([str(size_class.get("chunk_size", ""))], value)
        yield family


def _pool_classes(pool: dict[str, Any]) -> list[dict[str, Any]]:
    classes = pool.get("classes", [])
    return [entry for entry in classes if isinstance(entry, dict)] if isinstance(classes, list) else []


def _gc_metrics(gc: GcSnapshot) -> Iterator[Metric]:
    per_generation: tuple[tuple[type[GaugeMetricFamily | CounterMetricFamily], str, str, tuple[int, ...]], ...] = (
        (
            GaugeMetricFamily,
            "interactsh_python_gc_threshold",
            "Collection threshold of each GC generation.",
            gc.thresholds,
        ),
        (
            GaugeMetricFamily,
            "interactsh_python_gc_count",
            "Allocations counted towards each generation's threshold.",
            gc.counts,
        ),
        (CounterMetricFamily, "interactsh_python_gc_collections", "Collections of each GC generation.", gc.collections),
        (
            CounterMetricFamily,
            "interactsh_python_gc_collected_objects",
            "Objects collected per generation.",
            gc.collected,
        ),
        (
            CounterMetricFamily,
            "interactsh_python_gc_uncollectable_objects",
            "Uncollectable objects per generation.",
            gc.uncollectable,
        ),
    )
    for family_type, name, help_text, values in per_generation:
        family = family_type(name, help_text, labels=["generation"])
        for generation, value in enumerate(values):
            family.add_metric([str(generation)], value)
        yield family
    yield GaugeMetricFamily(
        "interactsh_python_gc_frozen_objects", "Objects frozen out of collection at start-up.", gc.frozen
    )
    yield GaugeMetricFamily(
        "interactsh_python_gc_pressure_percent",
        "Generation-0 threshold in percent of its configured value.",
        gc.pressure_percent,
    )
    yield CounterMetricFamily(
        "interactsh_python_gc_periodic_collections",
        "Full collections run by the memory manager.",
        gc.periodic_collections,
    )
