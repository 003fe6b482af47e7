"""The SMB listener's child process: impacket's ``SimpleSMBServer`` on one port.

Run by :mod:`interactsh.listeners.smb` as::

    python -m interactsh.listeners.smb_worker LOG PORT LISTEN_IP [--max-connections N] [--log-max-bytes N]

Like upstream's embedded script it enables SMB2, removes the default shares
and keeps impacket's default challenge, and impacket logs every event to LOG
as ``MM/DD/YYYY HH:MM:SS AM: LEVEL: message``. Unlike it, the worker binds
LISTEN_IP instead of every interface, rotates LOG at ``--log-max-bytes``
(one old file is kept), serves at most ``--max-connections`` clients at once,
and exits when its standard input closes, so it never outlives the server.

Once bound it prints ``READY_MARKER <port>`` on standard output. impacket is
imported only in :func:`main`, so the parent can import this module cheaply.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import threading
from typing import Any

READY_MARKER = "interactsh-smb-listening"
DEFAULT_SHARES = ("IPC$", "ADMIN$", "C$", "PRINT$", "FAX$", "NETLOGON", "SYSVOL")
LOG_FORMAT = "%(asctime)s: %(levelname)s: %(message)s"
LOG_DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"
EXIT_BIND_FAILED = 2
EXIT_IMPACKET_MISSING = 3


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m interactsh.listeners.smb_worker")
    parser.add_argument("log", help="file that receives impacket's log lines")
    parser.add_argument("port", type=int, help="TCP port to listen on; 0 picks a free one")
    parser.add_argument("listen_ip", help="address to listen on")
    parser.add_argument("--max-connections", type=int, default=64, help="clients served at once")
    parser.add_argument("--log-max-bytes", type=int, default=8 * 1024 * 1024, help="size at which LOG is rotated")
    return parser.parse_args(argv)


def configure_logging(path: str, max_bytes: int) -> None:
    """Send every log record to ``path`` in impacket's format, rotating at ``max_bytes``."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=1, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)


def bounded_server_class(smbserver: Any, max_connections: int) -> type:
    """Return impacket's threaded SMB server class limited to ``max_connections`` clients."""
    log = logging.getLogger("interactsh.smb.worker")

    class BoundedSMBServer(smbserver.SMBSERVER):  # type: ignore[misc]  # impacket has no type hints
        # Daemon threads are not tracked by socketserver, so finished
        # connections leave nothing behind.
        daemon_threads = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.slots = threading.BoundedSemaphore(max_connections)
            super().__init__(*args, **kwargs)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self.slots.acquire(blocking=False):
                log.warning("connection from %s rejected: %d connections open", client_address[0], max_connections)
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

    return BoundedSMBServer


def build_server(smbserver: Any, arguments: argparse.Namespace) -> Any:
    """Bind the server; raise ``OSError`` when the address cannot be bound."""
    server = smbserver.SimpleSMBServer(
        listenAddress=arguments.listen_ip,
        listenPort=arguments.port,
        smbserverclass=bounded_server_class(smbserver, arguments.max_connections),
        ipv6=":" in arguments.listen_ip,
    )
    server.setSMB2Support(True)
    for share in DEFAULT_SHARES:
        server.removeShare(share)
    return server


def exit_when_parent_leaves() -> None:
    """Block until standard input closes, then end the process at once."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        from impacket import smbserver  # type: ignore[import-untyped]
    except ImportError as error:
        print(f"impacket is not installed ({error}): run pip install impacket to use -smb", file=sys.stderr)
        return EXIT_IMPACKET_MISSING
    try:
        server = build_server(smbserver, arguments)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"could not listen on {arguments.listen_ip} port {arguments.port}: {reason}", file=sys.stderr)
        return EXIT_BIND_FAILED
    # Logging starts after setup, so the "Config file parsed" line that each
    # setup call writes does not reach every client on every start.
    configure_logging(arguments.log, arguments.log_max_bytes)
    threading.Thread(target=exit_when_parent_leaves, name="stdin-watch", daemon=True).start()
    port = server.getServer().server_address[1]
    print(f"{READY_MARKER} {port}", flush=True)
    server.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
