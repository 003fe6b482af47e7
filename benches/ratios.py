"""Summarise a pytest-benchmark JSON file of ``test_store_bench.py`` as Markdown tables.

For each group the table shows both engines' median and minimum round times
and the PythonStore / RustStore ratio (how many times faster the Rust engine
is). It then checks the two store targets: append + poll throughput (the
ratio of the ``append-poll-1000`` group, and of the ``append-1000`` and
``poll-commit-1000`` medians added up) and the time of one poll of 1,000
records.

Usage::

    python -m pytest benches/test_store_bench.py --benchmark-only --benchmark-json /tmp/store.json
    python benches/ratios.py /tmp/store.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RATIO_TARGET = 10.0
POLL_TARGET_SECONDS = 0.002
BATCH_GROUPS = ("append-1000", "poll-commit-1000", "append-poll-1000")
BATCH = 1_000


def load_stats(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Return ``{group: {engine: stats}}`` from a pytest-benchmark JSON file.

    The stats gain the benchmark's ``extra_info`` entries (``minor_faults_per_poll``).
    """
    document = json.loads(path.read_text(encoding="utf-8"))
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for benchmark in document["benchmarks"]:
        engine = benchmark["params"]["engine"]
        groups.setdefault(benchmark["group"], {})[engine] = {**benchmark["stats"], **benchmark.get("extra_info", {})}
    return groups


def time_text(seconds: float, per_op: bool) -> str:
    """Format a round time in ms or µs, with the time per operation for batch groups."""
    text = f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"
    if per_op:
        text += f" ({seconds / BATCH * 1e6:.2f} µs/op)"
    return text


def print_groups(groups: dict[str, dict[str, dict[str, float]]]) -> None:
    """Print one row per group with both engines and the ratio of medians and of minimums."""
    print(
        "| operation | python median | rust median | python / rust (median) | python / rust (min) | rust rounds "
        "| minor faults per poll, python / rust |"
    )
    print("|---|---|---|---|---|---|---|")
    for group, engines in sorted(groups.items()):
        python, rust = engines.get("python"), engines.get("rust")
        if python is None or rust is None:
            print(f"| {group} | missing an engine: {sorted(engines)} | | | | | |")
            continue
        per_op = group.startswith(BATCH_GROUPS)
        faults = ""
        if "minor_faults_per_poll" in rust:
            faults = f"{python.get('minor_faults_per_poll', '-'):g} / {rust['minor_faults_per_poll']:g}"
        print(
            f"| {group} | {time_text(python['median'], per_op)} | {time_text(rust['median'], per_op)} | "
            f"{python['median'] / rust['median']:.2f} | {python['min'] / rust['min']:.2f} | "
            f"{int(rust['rounds'])} | {faults} |"
        )


def print_targets(groups: dict[str, dict[str, dict[str, float]]]) -> None:
    """Print the two store targets with the measured figures."""
    print("\n| target | measured | met |")
    print("|---|---|---|")
    cycle = groups.get("append-poll-1000", {})
    if {"python", "rust"} <= cycle.keys():
        ratio = cycle["python"]["median"] / cycle["rust"]["median"]
        print(
            f"| append + poll cycle, python / rust >= {RATIO_TARGET:g} | {ratio:.2f} | {_met(ratio >= RATIO_TARGET)} |"
        )
    append, poll = groups.get("append-1000", {}), groups.get("poll-commit-1000", {})
    if {"python", "rust"} <= append.keys() & poll.keys():
        python = append["python"]["median"] + poll["python"]["median"]
        rust = append["rust"]["median"] + poll["rust"]["median"]
        ratio = python / rust
        print(
            f"| append + poll (sum of medians), python / rust >= {RATIO_TARGET:g} | {ratio:.2f} | {_met(ratio >= RATIO_TARGET)} |"
        )
    if "rust" in poll:
        median, minimum = poll["rust"]["median"], poll["rust"]["min"]
        met = _met(median <= POLL_TARGET_SECONDS)
        print(
            f"| rust poll of 1,000 records <= 2 ms | median {median * 1e3:.3f} ms, min {minimum * 1e3:.3f} ms | {met} |"
        )


def _met(condition: bool) -> str:
    return "yes" if condition else "no"


def main(argv: list[str] | None = None) -> int:
    """Print the tables of one pytest-benchmark JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json_file", type=Path, help="output of pytest --benchmark-json")
    arguments = parser.parse_args(argv)
    try:
        groups = load_stats(arguments.json_file)
    except (OSError, ValueError, KeyError) as error:
        print(f"ratios.py: could not read {arguments.json_file}: {error!r}", file=sys.stderr)
        return 1
    print_groups(groups)
    print_targets(groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
