"""Helpers of the load scripts ``load_dns.sh`` and ``load_http.sh``.

Subcommands:

* ``ports N``: print N ports that are free for TCP and UDP on 127.0.0.1.
* ``register URL SESSIONS``: register sessions on the server and print their correlation ids.
* ``names IDS_FILE COUNT DOMAIN [--dnsperf]``: print COUNT payload host names, spread over the
  sessions, as dnsperf input lines (``<name> A``) or one name a line.
* ``wait-dns PORT NAME SECONDS``: wait until a DNS server on 127.0.0.1 responds to a query for NAME.
* ``wait-tcp PORT SECONDS``: wait until a TCP port on 127.0.0.1 accepts connections.
* ``metrics URL``: print the server's interaction counters and store statistics as JSON.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
NONCE_LENGTH = 13
HTTP_TIMEOUT = 10.0


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports that are free for both TCP and UDP on 127.0.0.1."""
    ports: list[int] = []
    bound: list[socket.socket] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind((HOST, 0))
            bound.append(tcp)
            port = int(tcp.getsockname()[1])
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((HOST, port))
            except OSError:
                udp.close()
                continue
            bound.append(udp)
            ports.append(port)
    finally:
        for sock in bound:
            sock.close()
    return ports


def register(url: str, sessions: int) -> list[str]:
    """Register ``sessions`` sessions and return their correlation ids."""
    from interactsh.client import InteractshClient

    ids = []
    for _ in range(sessions):
        client = InteractshClient(url, key_bits=2048, timeout=HTTP_TIMEOUT)
        client.register()
        ids.append(client.correlation_id)
    return ids


def payload_names(ids: list[str], count: int, domain: str) -> list[str]:
    """Return ``count`` distinct host names ``<id><nonce>.<domain>``, cycling over the sessions."""
    if not ids:
        raise ValueError("the ids file contains no correlation id: run the register subcommand first")
    return [f"{ids[number % len(ids)]}{number:0{NONCE_LENGTH}d}.{domain}" for number in range(count)]


def wait_dns(port: int, name: str, seconds: float) -> None:
    """Wait until a DNS server on 127.0.0.1 ``port`` responds to a query for ``name``."""
    import dns.exception
    import dns.message
    import dns.query

    deadline = time.monotonic() + seconds
    while True:
        try:
            dns.query.udp(dns.message.make_query(name, "A"), HOST, port=port, timeout=0.5)
            return
        except (dns.exception.DNSException, OSError):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no DNS answer from {HOST} port {port} within {seconds} s") from None
            time.sleep(0.1)


def wait_tcp(port: int, seconds: float) -> None:
    """Wait until 127.0.0.1 ``port`` accepts TCP connections."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {HOST} port {port} after {seconds} s") from None
            time.sleep(0.1)


def metrics(url: str) -> dict[str, object]:
    """Return the interaction counters and store statistics from the server's ``/metrics``."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=HTTP_TIMEOUT) as response:
        document = json.loads(response.read())
    store = document.get("store", {})
    return {
        "dns": document.get("dns"),
        "http": document.get("http"),
        "recorded": document["cache"]["hit-count"],
        "unmatched": document["cache"]["miss-count"],
        "queued-items": store.get("queued-items"),
        "dropped-items": store.get("dropped-items"),
    }


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the subcommands."""
    parser = argparse.ArgumentParser(description="Helpers of the load scripts in benches/.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ports").add_argument("count", type=int)
    registering = commands.add_parser("register")
    registering.add_argument("url")
    registering.add_argument("sessions", type=int)
    naming = commands.add_parser("names")
    naming.add_argument("ids_file", type=Path)
    naming.add_argument("count", type=int)
    naming.add_argument("domain")
    naming.add_argument("--dnsperf", action="store_true", help="print dnsperf input lines: '<name> A'")
    waiting = commands.add_parser("wait-dns")
    waiting.add_argument("port", type=int)
    waiting.add_argument("name")
    waiting.add_argument("seconds", type=float)
    connecting = commands.add_parser("wait-tcp")
    connecting.add_argument("port", type=int)
    connecting.add_argument("seconds", type=float)
    commands.add_parser("metrics").add_argument("url")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand."""
    arguments = build_parser().parse_args(argv)
    if arguments.command == "ports":
        print(" ".join(str(port) for port in free_ports(arguments.count)))
    elif arguments.command == "register":
        print("\n".join(register(arguments.url, arguments.sessions)))
    elif arguments.command == "names":
        ids = arguments.ids_file.read_text(encoding="ascii").split()
        suffix = " A" if arguments.dnsperf else ""
        sys.stdout.writelines(f"{name}{suffix}\n" for name in payload_names(ids, arguments.count, arguments.domain))
    elif arguments.command == "wait-dns":
        wait_dns(arguments.port, arguments.name, arguments.seconds)
    elif arguments.command == "wait-tcp":
        wait_tcp(arguments.port, arguments.seconds)
    else:
        print(json.dumps(metrics(arguments.url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
