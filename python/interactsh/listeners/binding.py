"""Messages for listening sockets that cannot be bound."""

from __future__ import annotations

import errno
import os


def bind_error(error: OSError, service: str, host: str, port: int, port_flag: str) -> OSError:
    """Return an ``OSError`` for a failed bind whose message names the address and the fix for its cause."""
    if error.errno == errno.EADDRNOTAVAIL:
        advice = (
            f"{host} is not an address of this machine: choose one of its addresses with -listen-ip, "
            "or 0.0.0.0 (IPv4) or :: (IPv6) for all of them"
        )
    elif error.errno == errno.EADDRINUSE:
        advice = (
            f"another socket uses the port: stop its process, or choose another port with {port_flag} (0: a free one)"
        )
    elif error.errno in (errno.EACCES, errno.EPERM):
        advice = (
            f"ports below 1024 need root or CAP_NET_BIND_SERVICE: grant it, or choose another port with {port_flag}"
        )
    else:
        advice = f"check -listen-ip and {port_flag}"
    # socket.create_server() appends the address to strerror; the message names it already.
    reason = os.strerror(error.errno) if error.errno else str(error)
    return OSError(error.errno, f"could not bind {service} on {host} port {port}: {reason}; {advice}")
