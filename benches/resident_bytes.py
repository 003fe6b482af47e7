"""Resident memory per stored interaction, for each store engine and for Redis lists.

Each engine runs in a fresh subprocess that measures its own resident set
size (RSS, from psutil) before it creates the store and after it has queued
``--count`` records in sessions of ``--session-size`` records. The ratio is
the RSS growth divided by the payload bytes, so 1.00 means no overhead at
all. Records are built one at a time and dropped after ``append``, so only
what the store keeps stays resident.

Redis runs as its own ``redis-server`` on a free loopback port, started and
stopped here, with persistence off. The records go into one list per session
(``RPUSH``), and the figures are the growth of ``used_memory`` (what Redis's
allocator holds for data) and of ``used_memory_rss``.

Usage::

    python benches/resident_bytes.py                   # 1,000,000 records per kind
    python benches/resident_bytes.py --count 100000    # a quick run
    python benches/resident_bytes.py --engines rust,redis --kinds dns --markdown
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from interactsh.store import StoreOptions, create_store
from records import KINDS, SECRET, RecordFactory, correlation_id, public_key_b64, unique_id

ENGINES = ("rust", "python", "redis")
DEFAULT_COUNT = 1_000_000
DEFAULT_SESSION_SIZE = 1_000
REDIS_START_TIMEOUT = 10.0
REDIS_STOP_TIMEOUT = 10.0
REDIS_BATCH = 1_000


def records_of(factory: RecordFactory, count: int, session_size: int) -> Iterator[tuple[str, bytes]]:
    """Yield ``(correlation id, record)`` for ``count`` records, ``session_size`` per session."""
    for number in range(count):
        cid = correlation_id(number // session_size)
        yield cid, factory.build(unique_id(cid, number))


def resident_bytes() -> int:
    """Return this process's RSS after a full garbage collection."""
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def measure_store(engine: str, kind: str, count: int, session_size: int) -> dict[str, Any]:
    """Queue ``count`` records in a fresh store of ``engine`` and return the RSS figures."""
    factory = RecordFactory(kind)
    public_key = public_key_b64()
    before = resident_bytes()
    options = StoreOptions(
        ttl_seconds=None,
        max_session_items=session_size,
        max_session_bytes=max(StoreOptions.max_session_bytes, 2 * session_size * factory.size),
    )
    store = create_store(engine, options)

    payload = 0
    started = time.perf_counter()
    for number in range(math.ceil(count / session_size)):
        store.register(correlation_id(number), SECRET, public_key)
    for cid, record in records_of(factory, count, session_size):
        if not store.append(cid, record):
            raise RuntimeError(f"append to session {cid} failed: the session is not registered")
        payload += len(record)
    seconds = time.perf_counter() - started
    after = resident_bytes()

    stats = store.stats()
    if stats.queued_items != count or stats.dropped_items:
        raise RuntimeError(
            f"the {engine} store contains {stats.queued_items} records and dropped {stats.dropped_items}, "
            f"expected {count} and none: raise max_session_items or max_session_bytes"
        )
    return {
        "engine": engine,
        "kind": kind,
        "count": count,
        "record_bytes": factory.size,
        "payload_bytes": payload,
        "rss_before": before,
        "rss_after": after,
        "growth_bytes": after - before,
        "store_queued_bytes": stats.queued_bytes,
        "seconds": seconds,
    }


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``redis-server`` on a free loopback port without persistence; return it and its port."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise FileNotFoundError("redis-server is not installed: install it (Debian: apt-get install redis-server)")
    port = free_port()
    argv = [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(directory), "--logfile", str(directory / "redis.log")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}: see {directory / 'redis.log'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"redis-server did not listen on 127.0.0.1 port {port} within {REDIS_START_TIMEOUT} s")


def stop_redis(process: subprocess.Popen[bytes]) -> None:
    """Stop the Redis server started by :func:`start_redis`."""
    process.terminate()
    try:
        process.wait(timeout=REDIS_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def fill_redis(port: int, factory: RecordFactory, count: int, session_size: int) -> int:
    """Push the records into one Redis list per session; return the payload bytes."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    payload = 0
    pending: dict[str, list[bytes]] = {}
    for pushed, (cid, record) in enumerate(records_of(factory, count, session_size), start=1):
        pending.setdefault(cid, []).append(record)
        payload += len(record)
        if pushed % REDIS_BATCH == 0 or pushed == count:
            pipeline = client.pipeline(transaction=False)
            for key, values in pending.items():
                pipeline.rpush(f"session:{key}", *values)
            pipeline.execute()
            pending.clear()
    stored = sum(int(client.llen(f"session:{correlation_id(n)}")) for n in range(math.ceil(count / session_size)))
    if stored != count:
        raise RuntimeError(f"Redis contains {stored} records, expected {count}")
    client.close()
    return payload


def redis_memory(port: int) -> tuple[int, int]:
    """Return Redis's ``used_memory`` and ``used_memory_rss``."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    info = client.info("memory")
    client.close()
    return int(info["used_memory"]), int(info["used_memory_rss"])


def measure_redis(kind: str, count: int, session_size: int) -> dict[str, Any]:
    """Store the same records in Redis lists and return the memory figures."""
    factory = RecordFactory(kind)
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        process, port = start_redis(Path(directory))
        try:
            used_before, rss_before = redis_memory(port)
            started = time.perf_counter()
            payload = fill_redis(port, factory, count, session_size)
            seconds = time.perf_counter() - started
            used_after, rss_after = redis_memory(port)
        finally:
            stop_redis(process)
    return {
        "engine": "redis",
        "kind": kind,
        "count": count,
        "record_bytes": factory.size,
        "payload_bytes": payload,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "growth_bytes": rss_after - rss_before,
        "used_memory_growth": used_after - used_before,
        "seconds": seconds,
    }


def run_child(engine: str, kind: str, count: int, session_size: int) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its figures."""
    argv = [sys.executable, __file__, "--child", engine, "--kinds", kind]
    argv += ["--count", str(count), "--session-size", str(session_size)]
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"measurement of {engine}/{kind} failed (exit {completed.returncode}):\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def ratio_text(numerator: float, denominator: float) -> str:
    """Format a ratio with two decimals, or a dash when the denominator is zero."""
    return f"{numerator / denominator:.2f}" if denominator else "-"


def print_table(results: list[dict[str, Any]]) -> None:
    """Print the measurements, then the RustStore comparisons per kind, as Markdown tables."""
    print(
        "| kind | engine | records | record bytes | RSS growth per record | RSS growth / payload | "
        "used_memory growth / payload |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        count = result["count"]
        used = result.get("used_memory_growth")
        used_text = ratio_text(used, result["payload_bytes"]) if used is not None else ""
        growth = ratio_text(result["growth_bytes"], result["payload_bytes"])
        print(
            f"| {result['kind']} | {result['engine']} | {count:,} | {result['record_bytes']} | "
            f"{result['growth_bytes'] / count:,.0f} B | {growth} | {used_text} |"
        )
    print("\n| kind | rust RSS / python RSS | rust RSS / redis used_memory | rust RSS / redis RSS |")
    print("|---|---|---|---|")
    for kind in dict.fromkeys(result["kind"] for result in results):
        by_engine = {result["engine"]: result for result in results if result["kind"] == kind}
        if "rust" not in by_engine:
            continue
        rust = by_engine["rust"]["growth_bytes"]
        python = by_engine.get("python", {}).get("growth_bytes", 0)
        redis_used = by_engine.get("redis", {}).get("used_memory_growth", 0)
        redis_rss = by_engine.get("redis", {}).get("growth_bytes", 0)
        print(
            f"| {kind} | {ratio_text(rust, python)} | {ratio_text(rust, redis_used)} | {ratio_text(rust, redis_rss)} |"
        )


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; ``--child`` is the internal per-engine mode."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="records per kind and engine")
    parser.add_argument("--session-size", type=int, default=DEFAULT_SESSION_SIZE, help="records per session")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {ENGINES}")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {KINDS}")
    parser.add_argument("--json", type=Path, help="also write every result to this JSON file")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.count < 1 or arguments.session_size < 1:
        parser.error(f"--count {arguments.count} and --session-size {arguments.session_size} must both be at least 1")
    for name, allowed in (("engines", ENGINES), ("kinds", KINDS)):
        unknown = set(getattr(arguments, name).split(",")) - set(allowed)
        if unknown:
            parser.error(f"--{name} {', '.join(sorted(unknown))} is unknown: use a subset of {', '.join(allowed)}")
    return arguments


def main(argv: list[str] | None = None) -> int:
    """Measure every requested engine and kind, each in its own subprocess."""
    arguments = parse_arguments(argv)
    count, session_size = arguments.count, arguments.session_size
    if arguments.child == "redis":
        print(json.dumps(measure_redis(arguments.kinds, count, session_size)))
        return 0
    if arguments.child is not None:
        print(json.dumps(measure_store(arguments.child, arguments.kinds, count, session_size)))
        return 0
    results = []
    for kind in arguments.kinds.split(","):
        for engine in arguments.engines.split(","):
            print(f"measuring {engine} with {count:,} {kind} records...", file=sys.stderr, flush=True)
            results.append(run_child(engine, kind, count, session_size))
    print_table(results)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
