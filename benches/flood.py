"""Memory flood: drive twice the memory limit's worth of interactions into a server, optimization on and off.

For each mode the script starts ``interactsh-server`` on free loopback ports
with ``-max-memory`` (256 MiB by default) and registers sessions. It floods
them with HTTP requests carrying large bodies and with DNS queries, until the
captured bytes sent reach ``--factor`` times the limit. Half of the sessions
are never polled; the other half are polled by one slow poller every
``--poll-interval`` seconds. A watchdog thread reads the server's resident
size every 20 ms. It kills the server with SIGKILL past ``--kill-factor``
times the limit or after ``--timeout`` seconds, so a server without a budget
cannot take the machine down. The peak reported is the kernel's ``VmHWM``.

The report per mode: peak resident size against the limit, whether the
server was killed (by the watchdog or by the kernel's OOM killer), the
requests answered, the interactions accepted, evicted, dropped and rejected
(from ``/metrics``), and the pressure transitions (from the server's log).

Usage::

    PYTHONPATH=python python benches/flood.py                     # 256 MiB, on and off
    PYTHONPATH=python python benches/flood.py --modes on --max-memory 128 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import httpx
import interactsh
from interactsh.client import InteractshClient
from load_helpers import HOST, free_ports, wait_tcp

MIB = 1024 * 1024
DOMAIN = "oast.test"
SERVICES = ("dns", "http", "https", "smtp", "smtps", "smtp-autotls", "ldap", "ftp", "ftps", "smb")
PACKAGE_ROOT = str(Path(interactsh.__file__).resolve().parent.parent)
WATCHDOG_INTERVAL = 0.02
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TRANSITION_LINE = re.compile(r"memory pressure (rose|fell) from (\w+) to (\w+): resident (\d+) MiB")


@dataclass
class FloodSettings:
    """Settings of one run: the flood it sends and the limits it enforces on the server."""

    max_memory_mib: int
    factor: float
    engine: str
    sessions: int
    body_size: int
    dns_queries: int
    workers: int
    poll_interval: float
    idle_seconds: float
    kill_factor: float
    timeout: float


@dataclass
class FloodResult:
    """The figures of one mode."""

    mode: str
    limit_mib: int
    peak_rss_mib: float = 0.0
    peak_ratio: float = 0.0
    outcome: str = "survived"
    seconds: float = 0.0
    http_sent: int = 0
    http_answered: int = 0
    dns_sent: int = 0
    dns_answered: int = 0
    polls: int = 0
    polled_interactions: int = 0
    recorded: int | None = None
    evicted: int | None = None
    dropped: int | None = None
    refused: int | None = None
    rejected_registrations: int | None = None
    store_mib: float | None = None
    store_budget_mib: float | None = None
    transitions: list[str] = field(default_factory=list)


class Watchdog:
    """A thread that samples the server's resident size and kills it past the kill threshold or the deadline."""

    def __init__(self, process: subprocess.Popen[bytes], kill_bytes: int, deadline: float) -> None:
        self.process = process
        self.kill_bytes = kill_bytes
        self.deadline = deadline
        self.peak = 0
        self.killed_for: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flood-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and take the peak once more, while the server still runs."""
        self._stop.set()
        self._thread.join(timeout=5)
        figures = resident_figures(self.process.pid)
        if figures is not None:
            self.peak = max(self.peak, *figures)

    def _run(self) -> None:
        while not self._stop.wait(WATCHDOG_INTERVAL):
            figures = resident_figures(self.process.pid)
            if figures is None:
                return
            rss, high_water_mark = figures
            self.peak = max(self.peak, rss, high_water_mark)
            if rss > self.kill_bytes:
                self._kill(f"killed by the watchdog at {rss / MIB:.0f} MiB")
                return
            if time.monotonic() > self.deadline:
                self._kill("killed by the watchdog at the time limit")
                return

    def _kill(self, reason: str) -> None:
        self.killed_for = reason
        self.process.send_signal(signal.SIGKILL)


def resident_figures(pid: int) -> tuple[int, int] | None:
    """Return ``VmRSS`` and ``VmHWM`` (the peak resident size) of ``pid``, or ``None`` once the process is gone.

    The kernel keeps ``VmHWM`` exact, so the peak does not depend on how
    often this thread gets to run while the flood threads hold the GIL.
    """
    figures: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    figures[name] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if len(figures) != 2:
        return None
    return figures["VmRSS"], figures["VmHWM"]


def start_server(settings: FloodSettings, optimized: bool, log_path: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    """Start the server and return the process, its base URL and its DNS port."""
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    argv = [sys.executable, "-m", "interactsh.cli", "-listen-ip", HOST, "-ip", HOST, "-domain", DOMAIN]
    for service, port in ports.items():
        argv += [f"-{service}-port", str(port)]
    argv += ["-store-engine", settings.engine, "-metrics", "-max-memory", str(settings.max_memory_mib)]
    argv += ["-memory-idle-seconds", str(settings.idle_seconds)]
    if not optimized:
        argv.append("-disable-memory-optimization")
    environment = {**os.environ, "PYTHONPATH": PACKAGE_ROOT, "HOME": str(log_path.parent)}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=environment)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while "server ready" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the server did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)
    wait_tcp(ports["http"], STARTUP_TIMEOUT)
    return process, f"http://{HOST}:{ports['http']}", ports["dns"]


def send_http(base_url: str, hosts: list[str], count: int, body: bytes, alive: threading.Event) -> tuple[int, int]:
    """Send up to ``count`` captured POSTs; return how many were sent and how many got 200."""
    sent = answered = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for number in range(count):
            if not alive.is_set():
                break
            try:
                response = client.post(f"/flood/{number}", content=body, headers={"Host": hosts[number % len(hosts)]})
            except httpx.HTTPError:
                break
            sent += 1
            answered += response.status_code == 200
    return sent, answered


def send_dns(dns_port: int, hosts: list[str], count: int, alive: threading.Event) -> tuple[int, int]:
    """Send up to ``count`` DNS TXT queries; return how many were sent and how many were answered."""
    sent = answered = 0
    for number in range(count):
        if not alive.is_set():
            break
        query = dns.message.make_query(f"q{number}.{hosts[number % len(hosts)]}", "TXT")
        sent += 1
        try:
            dns.query.udp(query, HOST, port=dns_port, timeout=5)
        except (dns.exception.DNSException, OSError):
            continue
        answered += 1
    return sent, answered


def poll_slowly(clients: list[InteractshClient], interval: float, alive: threading.Event) -> tuple[int, int]:
    """Poll each client every ``interval`` seconds while the flood runs; return polls and interactions."""
    polls = interactions = 0
    while alive.is_set():
        for client in clients:
            if not alive.is_set():
                return polls, interactions
            try:
                interactions += len(client.poll().interactions)
            except (OSError, ValueError):
                continue
            polls += 1
        if not _sleep_while(alive, interval):
            break
    return polls, interactions


def _sleep_while(alive: threading.Event, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive.is_set():
            return False
        time.sleep(0.1)
    return True


def run_mode(settings: FloodSettings, optimized: bool) -> FloodResult:
    """Run one flood and return its figures."""
    limit = settings.max_memory_mib * MIB
    result = FloodResult("on" if optimized else "off", settings.max_memory_mib)
    with tempfile.TemporaryDirectory(prefix="flood-") as directory:
        log_path = Path(directory) / "server.log"
        process, base_url, dns_port = start_server(settings, optimized, log_path)
        started = time.monotonic()
        watchdog = Watchdog(process, int(settings.kill_factor * limit), started + settings.timeout)
        watchdog.start()
        try:
            _flood(settings, result, base_url, dns_port, process)
            result.seconds = round(time.monotonic() - started, 1)
            if process.poll() is None:
                _read_metrics(result, base_url)
        finally:
            watchdog.stop()
            _stop(process)
        result.peak_rss_mib = round(watchdog.peak / MIB, 1)
        result.peak_ratio = round(watchdog.peak / limit, 3)
        result.outcome = _outcome(process, watchdog)
        result.transitions = _transitions(log_path.read_text(errors="replace"))
    return result


def _flood(
    settings: FloodSettings, result: FloodResult, base_url: str, dns_port: int, process: subprocess.Popen[bytes]
) -> None:
    clients = [InteractshClient(base_url, key_bits=1024) for _ in range(settings.sessions)]
    for client in clients:
        client.register()
    hosts = [client.payload(DOMAIN) for client in clients]
    polled = clients[: settings.sessions // 2]
    requests = int(settings.factor * settings.max_memory_mib * MIB / settings.body_size)
    body = b"f" * settings.body_size
    alive = threading.Event()
    alive.set()
    with ThreadPoolExecutor(settings.workers + 2) as pool:
        poller = pool.submit(poll_slowly, polled, settings.poll_interval, alive)
        dns_job = pool.submit(send_dns, dns_port, hosts, settings.dns_queries, alive)
        share = requests // settings.workers
        http_jobs = [pool.submit(send_http, base_url, hosts, share, body, alive) for _ in range(settings.workers)]
        while any(not job.done() for job in [dns_job, *http_jobs]):
            if process.poll() is not None:
                alive.clear()
            time.sleep(0.05)
        alive.clear()
        for job in http_jobs:
            sent, answered = job.result()
            result.http_sent += sent
            result.http_answered += answered
        result.dns_sent, result.dns_answered = dns_job.result()
        result.polls, result.polled_interactions = poller.result()


def _read_metrics(result: FloodResult, base_url: str) -> None:
    try:
        document: dict[str, Any] = httpx.get(f"{base_url}/metrics", timeout=30).json()
    except (httpx.HTTPError, ValueError):
        return
    memory = document.get("memory", {})
    result.recorded = document.get("recorded")
    result.evicted = memory.get("evicted-items")
    result.dropped = memory.get("dropped-items")
    result.refused = memory.get("refused-items")
    result.rejected_registrations = memory.get("rejected-registrations")
    if isinstance(memory.get("store-bytes"), int):
        result.store_mib = round(memory["store-bytes"] / MIB, 1)
    if isinstance(memory.get("store-budget"), int):
        result.store_budget_mib = round(memory["store-budget"] / MIB, 1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _outcome(process: subprocess.Popen[bytes], watchdog: Watchdog) -> str:
    if watchdog.killed_for is not None:
        return watchdog.killed_for
    if process.returncode == -signal.SIGKILL:
        return "killed by SIGKILL (the kernel's OOM killer)"
    if process.returncode not in (0, None):
        return f"exited with {process.returncode}"
    return "survived"


def _transitions(log_text: str) -> list[str]:
    return [f"{match[1]}→{match[2]} at {match[3]} MiB" for match in TRANSITION_LINE.findall(log_text)]


def markdown(results: list[FloodResult]) -> str:
    """Return the results as a Markdown table, one row per mode."""
    header = (
        "| optimization | peak RSS (MiB) | peak / limit | outcome | HTTP answered / sent | DNS answered / sent "
        "| accepted | evicted | dropped | rejected | store / budget (MiB) | transitions |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        store = "–" if result.store_mib is None else f"{result.store_mib} / {result.store_budget_mib or '–'}"
        lines.append(
            f"| {result.mode} | {result.peak_rss_mib} | {result.peak_ratio} | {result.outcome} "
            f"| {result.http_answered} / {result.http_sent} | {result.dns_answered} / {result.dns_sent} "
            f"| {_dash(result.recorded)} | {_dash(result.evicted)} | {_dash(result.dropped)} | {_dash(result.refused)} "
            f"| {store} | {', '.join(result.transitions) or '–'} |"
        )
    return "\n".join(lines)


def _dash(value: int | None) -> str:
    return "–" if value is None else str(value)


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    parser = argparse.ArgumentParser(description="Flood a server past its memory limit, optimization on and off.")
    parser.add_argument("--max-memory", type=int, default=256, help="the server's -max-memory in MiB")
    parser.add_argument("--factor", type=float, default=2.0, help="captured bytes to send, in multiples of the limit")
    parser.add_argument("--modes", default="on,off", help="comma-separated: on, off")
    parser.add_argument("--engine", default="rust", choices=("rust", "python"))
    parser.add_argument("--sessions", type=int, default=32, help="sessions flooded; half are polled")
    parser.add_argument("--body-size", type=int, default=48 * 1024, help="bytes of each HTTP request body")
    parser.add_argument("--dns-queries", type=int, default=20_000, help="DNS queries sent alongside")
    parser.add_argument("--workers", type=int, default=4, help="threads sending HTTP requests")
    parser.add_argument("--poll-interval", type=float, default=10.0, help="seconds between polls of a session")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="the server's -memory-idle-seconds")
    parser.add_argument(
        "--kill-factor", type=float, default=3.0, help="kill the server past this multiple of the limit"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="kill the server after this many seconds")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead of JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the requested modes and print their results."""
    arguments = build_parser().parse_args(argv)
    modes = [mode.strip() for mode in arguments.modes.split(",") if mode.strip()]
    if not modes or any(mode not in ("on", "off") for mode in modes):
        print(f"flood.py: --modes {arguments.modes!r} is invalid: use on, off or on,off", file=sys.stderr)
        return 2
    settings = FloodSettings(
        max_memory_mib=arguments.max_memory,
        factor=arguments.factor,
        engine=arguments.engine,
        sessions=arguments.sessions,
        body_size=arguments.body_size,
        dns_queries=arguments.dns_queries,
        workers=arguments.workers,
        poll_interval=arguments.poll_interval,
        idle_seconds=arguments.idle_seconds,
        kill_factor=arguments.kill_factor,
        timeout=arguments.timeout,
    )
    results = [run_mode(settings, mode == "on") for mode in modes]
    if arguments.markdown:
        print(markdown(results))
    else:
        print(json.dumps([asdict(result) for result in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
