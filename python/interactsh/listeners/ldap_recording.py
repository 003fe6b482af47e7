"""Turn LDAP operations into interaction records.

A correlation id is looked for in the bind DN and in the search base DN,
case-insensitively: the DN is split on ``=`` and ``,``, each piece on ``.``,
and every window of id length in every piece is tested. Each registered id
found gets one interaction per operation, whose full-id is the piece up to the
dotted part that contains the id.

A JNDI lookup of ``ldap://<id>.<domain>/a`` puts the id only in the host name,
which the LDAP server never receives: its DNS lookup is recorded, but the LDAP
search has base DN ``a``. When auth is on, such a bind or search with no id in
its DN is recorded unattributed in the token bucket (``extra``), so the tester
still sees that LDAP reached the server. ``ldap://<id>.<domain>/<id>`` gives
full attribution because the id is then also the base DN.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from interactsh.errors import InteractshError
from interactsh.interaction import build_record
from interactsh.listeners.ldap_filter import text_of
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.ldap")

PROTOCOL = "ldap"
_DN_SEPARATORS = re.compile(r"[=,]")
STORE_WARNING_INTERVAL = 60.0


@dataclass(frozen=True)
class DnToken:
    """A dot-separated chunk of a DN piece, with the chunks before it in the same piece."""

    chunks: list[str]
    index: int

    @property
    def text(self) -> str:
        return self.chunks[self.index]

    @property
    def full_id(self) -> str:
        return ".".join(self.chunks[: self.index + 1])


def dn_tokens(dn: str, min_length: int) -> list[DnToken]:
    """Split a DN as upstream does and keep the chunks long enough to contain an id."""
    tokens: list[DnToken] = []
    for piece in _DN_SEPARATORS.split(dn):
        chunks = piece.split(".")
        tokens.extend(DnToken(chunks, index) for index, chunk in enumerate(chunks) if len(chunk) >= min_length)
    return tokens


class LdapRecorder:
    """Files LDAP interactions for one server, shared by every connection."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.config = recorder.config
        self._last_store_warning = float("-inf")

    def record_operation(self, peer: str, dn: bytes | None, text: str, truncated: bool) -> None:
        """Record one operation for each id in ``dn``, and in ``extra`` as the options require.

        ``-ldap`` puts every operation in ``extra``. Without it, a bind or
        search (``dn`` given) whose DN contains no registered id goes to ``extra``
        when auth is on, as an unattributed contact.
        """
        matched = False
        if dn is not None:
            matched = self._record_matches(peer, dn, text, truncated)
        if self.config.ldap or (dn is not None and not matched and self.config.auth_token is not None):
            self.record_shared(peer, text, truncated)

    def record_shared(self, peer: str, text: str, truncated: bool = False) -> None:
        """Add one record with empty ids to the token bucket."""
        record = build_record(PROTOCOL, "", "", peer, raw_request=text, truncated=truncated or None)
        try:
            self.recorder.record_shared("extra", record)
        except InteractshError as error:
            self._warn_store_failed(error)

    def _record_matches(self, peer: str, dn: bytes, text: str, truncated: bool) -> bool:
        # An id far into a huge DN is no payload, so the capture cap also bounds the window scan.
        dn_text = text_of(dn[: self.config.max_request_size])
        tokens = dn_tokens(dn_text, self.recorder.matcher.window_length)
        matched = False
        for match in self.recorder.matcher.matches(token.text for token in tokens):
            full_id = tokens[match.token_index].full_id
            record = build_record(
                PROTOCOL, match.unique_id, full_id, peer, raw_request=text, truncated=truncated or None
            )
            try:
                matched = self.recorder.record(match.correlation_id, record) or matched
            except InteractshError as error:
                self._warn_store_failed(error)
        return matched

    def _warn_store_failed(self, error: InteractshError) -> None:
        # A full store fails every record until it drains, so warn at most once a minute.
        now = time.monotonic()
        if now - self._last_store_warning >= STORE_WARNING_INTERVAL:
            self._last_store_warning = now
            log.warning("could not store an LDAP interaction: %s", error)
