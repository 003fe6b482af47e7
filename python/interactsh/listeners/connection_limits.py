"""Admission of stream connections under a total cap and a per-client-address cap."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

ConnectionT = TypeVar("ConnectionT", bound=Hashable)


class OpenConnections(Generic[ConnectionT]):
    """The open connections of one listener, admitted under a total and a per-address cap.

    The first rejection of an address at its cap is logged at WARNING. The address is warned
    about again only after its count has dropped below the cap. Each rejection at the total cap
    is logged at DEBUG.
    """

    def __init__(
        self,
        service: str,
        max_total: int,
        max_per_ip: int,
        per_ip_option: str,
        logger: logging.Logger,
    ) -> None:
        self.service = service
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.per_ip_option = per_ip_option
        self._log = logger
        self._ips: dict[ConnectionT, str] = {}
        self._count_per_ip: dict[str, int] = {}
        self._warned_ips: set[str] = set()

    def __len__(self) -> int:
        return len(self._ips)

    def __iter__(self) -> Iterator[ConnectionT]:
        return iter(list(self._ips))

    def __contains__(self, connection: object) -> bool:
        return connection in self._ips

    def admit(self, connection: ConnectionT, ip: str) -> bool:
        """Register ``connection`` from ``ip``, or return ``False`` when either cap is reached."""
        count = self._count_per_ip.get(ip, 0)
        if count >= self.max_per_ip:
            if ip not in self._warned_ips:
                self._warned_ips.add(ip)
                self._log.warning(
                    "%s: %s connections from this address reached the cap of %d (%s); closing new ones",
                    ip,
                    self.service,
                    self.max_per_ip,
                    self.per_ip_option,
                )
            return False
        if len(self._ips) >= self.max_total:
            self._log.debug("%s: %s connection closed: %d connections are open", ip, self.service, len(self._ips))
            return False
        self._ips[connection] = ip
        self._count_per_ip[ip] = count + 1
        return True

    def release(self, connection: ConnectionT) -> None:
        """Forget a closed connection. A connection that was never admitted is ignored."""
        ip = self._ips.pop(connection, None)
        if ip is None:
            return
        count = self._count_per_ip.get(ip, 1) - 1
        if count > 0:
            self._count_per_ip[ip] = count
        else:
            self._count_per_ip.pop(ip, None)
        if count < self.max_per_ip:
            self._warned_ips.discard(ip)
