"""Protocol counters that ``/metrics`` exports under upstream's key names."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Counters:
    """Upstream's per-protocol counters plus this server's own.

    ``sessions`` is upstream's gauge: register attempts minus deregister
    attempts, except that a deregister with a wrong secret leaves it alone.
    """

    dns: int = 0
    ftp: int = 0
    http: int = 0
    ldap: int = 0
    smb: int = 0
    smtp: int = 0
    sessions: int = 0
    dns_refused: int = 0
    dns_malformed: int = 0
    # Connections to the LDAP port whose first octet is not an LDAP message (TLS, HTTP...).
    ldap_nonldap: int = 0
    recorded: int = 0
    unmatched: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dictionary."""
        return asdict(self)
