"""From one received DNS message to its reply, recording the interaction on the way.

Both transports share this handler. It never raises: a malformed message
gets the reply its fault calls for (or none), and an unexpected error gets
SERVFAIL and one log line, so a bug in one reply cannot stop the listener.
"""

from __future__ import annotations

import logging
import re
import time
from functools import cached_property

from interactsh.ids import IdMatch
from interactsh.interaction import build_record
from interactsh.listeners.dns_answer import Answer, DnsAnswerer
from interactsh.listeners.dns_text import label_text, message_text, name_text, type_name
from interactsh.listeners.dns_wire import (
    HEADER_SIZE,
    RCODE_BADVERS,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    Labels,
    Message,
    WireError,
    error_reply,
    parse_message,
    parse_query,
)
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.dns")

# Separators of upstream's -scan-everywhere pass over the request text.
_SCAN_SEPARATORS = re.compile(r"[.\n\t\"']+")
_FAILURE_LOG_INTERVAL = 10.0


class _MessageTexts:
    """The text of a query and of its reply, rendered once and only when a record needs them."""

    def __init__(self, query: Message, reply: bytes) -> None:
        self.query = query
        self.reply = reply

    @cached_property
    def request(self) -> str:
        return message_text(self.query)

    @cached_property
    def response(self) -> str:
        return message_text(parse_message(self.reply))


class DnsHandler:
    """Parses, answers and records DNS queries for both transports."""

    def __init__(self, recorder: Recorder, answerer: DnsAnswerer) -> None:
        self.recorder = recorder
        self.answerer = answerer
        self.counters = recorder.counters
        self.scan_everywhere = recorder.config.scan_everywhere
        self.wildcard = recorder.config.wildcard
        # Texts are cut at the admission's capture limit, read per query because it shrinks under
        # critical memory pressure. They are ASCII except for the text of extended DNS errors, so
        # the limit is close to a byte count.
        self.admission = recorder.admission
        self._last_failure_log = float("-inf")
        self._unlogged_failures = 0

    def handle(self, data: bytes, client_ip: str, transport: str) -> bytes | None:
        """Return the reply to ``data`` from ``client_ip``, or ``None`` when it gets no reply.

        ``transport`` is ``"udp"`` or ``"tcp"``; over UDP the reply respects
        the client's payload size.
        """
        try:
            return self._handle(data, client_ip, transport)
        except Exception:  # noqa: BLE001 - any bug must cost one SERVFAIL, not the listener
            self._log_failure("could not answer DNS message from %s over %s", client_ip, transport)
            return error_reply(data, RCODE_SERVFAIL) if len(data) >= HEADER_SIZE else None

    def _handle(self, data: bytes, client_ip: str, transport: str) -> bytes | None:
        try:
            query = parse_query(data)
        except WireError as error:
            self.counters.dns_malformed += 1
            log.debug("%s: rejected DNS message over %s: %s", client_ip, transport, error.reason)
            return None if error.rcode is None else error_reply(data, error.rcode)
        self.counters.dns += 1
        answer = self.answerer.answer(query, client_ip, tcp=transport == "tcp")
        if answer.rcode == RCODE_REFUSED:
            self.counters.dns_refused += 1
        elif answer.rcode == RCODE_BADVERS:
            self.counters.dns_malformed += 1
        if answer.recordable:
            try:
                self._record(query, answer, client_ip, transport)
            except Exception:  # noqa: BLE001 - the answer is still sent when recording fails
                self._log_failure("could not record DNS query id %d from %s", query.header.id, client_ip)
        return answer.wire

    def _record(self, query: Message, answer: Answer, client_ip: str, transport: str) -> None:
        """Record the query for the first registered id it carries, and in ``tlddata`` in wildcard mode."""
        question = query.questions[0]
        texts = _MessageTexts(query, answer.wire)
        found = self._find_id(question.labels[: answer.prefix], texts)
        if self.wildcard:
            name = name_text(question.labels)
            self.recorder.record_shared("tlddata", self._build(name, name, question.qtype, client_ip, transport, texts))
        if found is not None:
            match, full_id = found
            record = self._build(match.unique_id, full_id, question.qtype, client_ip, transport, texts)
            self.recorder.record(match.correlation_id, record)

    def _find_id(self, labels: Labels, texts: _MessageTexts) -> tuple[IdMatch, str] | None:
        """Return the first registered id in the labels before the domain, and its full id.

        With -scan-everywhere, the request text is scanned as well when the
        labels contain no id. The full id is then the matching window itself.
        """
        matcher = self.recorder.matcher
        match = matcher.first_match(label.decode("latin-1") for label in labels)
        if match is not None:
            return match, ".".join(label_text(label) for label in labels[: match.token_index + 1])
        if not self.scan_everywhere:
            return None
        match = matcher.first_match(token for token in _SCAN_SEPARATORS.split(texts.request) if token)
        return None if match is None else (match, match.window)

    def _build(
        self, unique_id: str, full_id: str, qtype: int, client_ip: str, transport: str, texts: _MessageTexts
    ) -> bytes:
        """Build the record, cutting each text at the capture limit and marking the record truncated when it does."""
        limit = self.admission.capture_limit
        request, response = texts.request, texts.response
        truncated = len(request) > limit or len(response) > limit
        return build_record(
            "dns",
            unique_id,
            full_id,
            client_ip,
            q_type=type_name(qtype),
            raw_request=request[:limit],
            raw_response=response[:limit],
            transport=transport,
            truncated=truncated or None,
        )

    def _log_failure(self, message: str, *args: object) -> None:
        """Log an unexpected error with its traceback, at most once per interval, counting the rest."""
        now = time.monotonic()
        if now - self._last_failure_log < _FAILURE_LOG_INTERVAL:
            self._unlogged_failures += 1
            return
        if self._unlogged_failures:
            message += " (%d similar errors not logged)"
            args = (*args, self._unlogged_failures)
        self._last_failure_log = now
        self._unlogged_failures = 0
        log.exception(message, *args)
