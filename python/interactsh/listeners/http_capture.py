"""The capture route: every request that is not an API call is an interaction.

The route keeps the first ``max_request_size`` bytes of the body and reads and
discards the rest. It then looks for registered ids, plans the response and
files one record per correlation id found. Only then does it wait for a dynamic
delay and send the response. A request that gets an error response (a bad
dynamic parameter, a body that fails to parse, a body that stops arriving) is
still recorded, with its flags.

Ids are looked for in the host, which is an absolute-form target's authority or
else the Host header, without port and trailing dot. A request rejected for
carrying several Host headers has each of them searched. Then come the tokens
of the request target. ``-scan-everywhere`` adds the whole request text, split
as upstream splits it.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

import interactsh
from interactsh.config import ServerConfig
from interactsh.ids import IdMatch, split_request_target
from interactsh.interaction import build_record
from interactsh.listeners.http_dump import (
    CapturedRequest,
    ResponsePlan,
    as_bytes,
    as_text,
    dump_request,
    dump_response,
    parse_raw_head,
)
from interactsh.listeners.http_dynamic import (
    DynamicResponseError,
    plan_dynamic_response,
    sniff_content_type,
    wants_dynamic_response,
)
from interactsh.listeners.http_io import (
    Body,
    cors_headers,
    encode_headers,
    query_params,
    read_body,
    send_response,
    wait_unless_disconnected,
)
from interactsh.listeners.http_protocol import RejectedRequest, duration_text, request_info
from interactsh.listeners.http_static import (
    STATIC_DYNAMIC_PARAMETERS,
    STATIC_PREFIX,
    OperatorBodies,
    StaticDirectory,
    StaticPlan,
    plan_static_file,
    send_static,
)
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.http")

# Upstream's -scan-everywhere splits the request dump on these characters.
_SCAN_SEPARATORS = re.compile(r"[.\n\t\"']+")
HTML_TYPE = "text/html; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
BANNER = """<!DOCTYPE html>
<html>
<head><title>Out-of-band interaction server</title></head>
<body>
<h1>Out-of-band interaction server</h1>
<p>This server records the DNS, HTTP, SMTP and LDAP requests it receives for names under {domain}.
It speaks the Interactsh protocol and serves security testing.</p>
<p>A request to *.{domain} in your logs means that someone tested one of your applications
for out-of-band interactions, such as server-side request forgery or blind injection.</p>
<p>If that was not you or someone you authorised, look for the request that carried the name.</p>
</body>
</html>
"""


class Capture:
    """The ASGI app of every request that no API route takes, and the recorder of rejected heads."""

    def __init__(self, config: ServerConfig, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.matcher = recorder.matcher
        self.cors = cors_headers(config)
        self.origin_header = config.origin_ip_header.lower()
        # Raises ConfigurationError at start for a missing or oversized file.
        self.bodies = OperatorBodies.from_config(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        config = self.config
        # The admission's capture limit shrinks under critical memory pressure.
        limit = self.recorder.admission.capture_limit
        body = await read_body(scope, receive, limit, config.http_body_timeout)
        request = self.captured_request(scope, body.data)
        raw_truncated = keep_raw_body(request, scope, body, limit)
        try:
            plan: ResponsePlan | None = self.plan_response(request, scope, body)
        except Exception:
            log.exception(
                "%s - could not build the response to %s %s", request.client_ip, request.method, request.target
            )
            plan = None
        try:
            self.record(
                request,
                None if body.disconnected else plan,
                truncated=body.truncated or raw_truncated,
                incomplete=not body.complete,
                rejected=_rejection(body, config.http_body_timeout),
            )
            if not body.disconnected:
                await self.respond(scope, receive, send, plan)
        finally:
            if isinstance(plan, StaticPlan):
                plan.release()

    async def respond(self, scope: Scope, receive: Receive, send: Send, plan: ResponsePlan | None) -> None:
        """Wait for the plan's delay unless the client leaves, then send the response."""
        if plan is None:
            plan = _text_plan(500, [], "internal server error: see the server log", close=True)
        if plan.delay > 0 and not await wait_unless_disconnected(receive, plan.delay):
            return
        headers = encode_headers(plan.headers)
        if plan.close:
            headers.append((b"connection", b"close"))
        if isinstance(plan, StaticPlan):
            await send_static(send, scope, plan, headers)
        else:
            await send_response(send, plan.status, headers, plan.body)

    def captured_request(self, scope: Scope, body: bytes) -> CapturedRequest:
        """Return the request of ``scope`` with the kept ``body``."""
        info = request_info(scope)
        if info is not None:
            target = as_text(info.target)
        else:
            query = scope.get("query_string", b"")
            target = as_text(scope.get("raw_path") or scope["path"].encode()) + ("?" + as_text(query) if query else "")
        headers = [(name.decode("latin-1"), as_text(value)) for name, value in scope["headers"]]
        client = scope.get("client")
        return CapturedRequest(
            method=scope["method"],
            target=target,
            version=scope.get("http_version", "1.1"),
            headers=headers,
            body=body,
            scheme=scope.get("scheme", "http"),
            client_ip=str(client[0]) if client else "",
        )

    # Responses.

    def plan_response(self, request: CapturedRequest, scope: Scope, body: Body) -> ResponsePlan:
        """Return upstream's default response, a dynamic one, or the error the request earned."""
        if body.parse_error is not None:
            return _text_plan(400, self.cors, f"invalid HTTP request: {body.parse_error}", close=True)
        if body.timed_out:
            seconds = self.config.http_body_timeout
            return _text_plan(408, self.cors, f"request body not received within {duration_text(seconds)}", close=True)
        if request.method == "OPTIONS":
            # Upstream's CORS middleware responds to OPTIONS before the default handler adds its headers.
            return ResponsePlan(204, list(self.cors))

        labels = host_labels(request.host)
        domain = self._domain_for(labels)
        headers = list(self.cors)
        headers.append(("Server", self.config.server_header or domain))
        if not self.config.disable_version:
            headers.append(("X-Interactsh-Version", interactsh.__version__))
        reflection = self.reflection(labels)
        operator_plan = self._operator_plan(scope, headers, reflection, self.config.server_header or domain)
        if operator_plan is not None:
            return operator_plan
        return self._body_plan(scope, headers, reflection, domain)

    def _operator_plan(
        self, scope: Scope, headers: list[tuple[str, str]], reflection: str, domain: str
    ) -> ResponsePlan | None:
        # Upstream's rules for the files an operator configured, which come before the built-in bodies.
        bodies = self.bodies
        if bodies.default_response is not None:
            return _sniffed_plan(headers, bodies.default_response.render(domain))
        path = scope["path"]
        if bodies.directory is not None and path[: len(STATIC_PREFIX)].lower() == STATIC_PREFIX:
            return self._static_plan(bodies.directory, scope, headers)
        if bodies.index is not None and path == "/" and not reflection:
            return _sniffed_plan(headers, bodies.index.render(domain))
        return None

    def _static_plan(self, directory: StaticDirectory, scope: Scope, headers: list[tuple[str, str]]) -> ResponsePlan:
        base = ResponsePlan(200, headers)
        query = query_params(scope)
        if self.config.dynamic_resp and query:
            dynamic = [(key, value) for key, value in query if key in STATIC_DYNAMIC_PARAMETERS]
            try:
                base = plan_dynamic_response(scope["path"], dynamic, base, self.config.max_dynamic_delay)
            except DynamicResponseError as error:
                log.debug("invalid dynamic response parameter in %s %s: %s", scope["method"], scope["path"][:64], error)
                return _text_plan(400, headers, f"invalid dynamic response parameter: {error}")
            fixed_status = any(key == "status" for key, _ in dynamic)
        else:
            fixed_status = False
        limit = self.recorder.admission.capture_limit
        return plan_static_file(directory, scope, base, fixed_status=fixed_status, record_limit=limit)

    def _body_plan(self, scope: Scope, headers: list[tuple[str, str]], reflection: str, domain: str) -> ResponsePlan:
        # Upstream's built-in rules, first match wins; the reflection is escaped for the body's format.
        path = scope["path"]
        lowered = path.lower()
        if path == "/" and not reflection:
            banner = BANNER.format(domain=html.escape(domain))
            return ResponsePlan(200, [*headers, ("Content-Type", HTML_TYPE)], banner.encode())
        if lowered == "/robots.txt":
            text = f"User-agent: *\nDisallow: / # {reflection}"
            return ResponsePlan(200, [*headers, ("Content-Type", TEXT_TYPE)], as_bytes(text))
        if lowered.endswith(".json"):
            text = json.dumps({"data": reflection}, ensure_ascii=True, separators=(",", ":"))
            return ResponsePlan(200, [*headers, ("Content-Type", "application/json")], text.encode("ascii"))
        if lowered.endswith(".xml"):
            text = f"<data>{html.escape(reflection)}</data>"
            return ResponsePlan(200, [*headers, ("Content-Type", "application/xml")], as_bytes(text))

        query = query_params(scope)
        if self.config.dynamic_resp and wants_dynamic_response(path, query):
            try:
                return plan_dynamic_response(path, query, ResponsePlan(200, headers), self.config.max_dynamic_delay)
            except DynamicResponseError as error:
                log.debug("invalid dynamic response parameter in %s %s: %s", scope["method"], path[:64], error)
                return _text_plan(400, headers, f"invalid dynamic response parameter: {error}")
        text = f"<html><head></head><body>{html.escape(reflection)}</body></html>"
        return ResponsePlan(200, [*headers, ("Content-Type", HTML_TYPE)], as_bytes(text))

    def reflection(self, labels: list[str]) -> str:
        """Return the last host label that contains a candidate id window, reversed (upstream's ``URLReflection``)."""
        found = ""
        for label in labels:
            if len(label) >= self.matcher.window_length and next(self.matcher.windows(label), None) is not None:
                found = label
        return found[::-1]

    def _domain_for(self, labels: list[str]) -> str:
        domain = self.recorder.domain_of(".".join(labels)) if labels else None
        if domain is not None:
            return domain
        return self.config.domains[0] if self.config.domains else ""

    # Recording.

    def record(
        self,
        request: CapturedRequest,
        plan: ResponsePlan | None,
        *,
        raw_request: str | None = None,
        truncated: bool = False,
        incomplete: bool = False,
        rejected: str | None = None,
    ) -> int:
        """Count the request and file one record per registered correlation id in it; return how many.

        With ``-wildcard``, a request whose host is under a configured domain
        also goes to the ``tlddata`` bucket, with the Host value as its ids.
        """
        self.recorder.counters.http += 1
        dump_cache: list[str] = []

        def dump() -> str:
            if not dump_cache:
                dump_cache.append(raw_request if raw_request is not None else dump_request(request))
            return dump_cache[0]

        matches = self.find_ids(request, dump)
        wildcard_host = self.wildcard_host(request)
        if not matches and wildcard_host is None:
            return 0
        raw_response, response_truncated = (None, False) if plan is None else self.recorded_response(plan)
        protocol = "https" if request.scheme == "https" else "http"

        def build(unique_id: str, full_id: str, remote: str) -> bytes:
            return build_record(
                protocol,
                unique_id,
                full_id,
                remote,
                raw_request=dump(),
                raw_response=raw_response,
                truncated=truncated or None,
                response_truncated=response_truncated or None,
                incomplete=incomplete or None,
                rejected=rejected,
            )

        remote = self.remote_address(request)
        try:
            for match, full_id in matches:
                self.recorder.record(match.correlation_id, build(match.unique_id, full_id, remote))
            if wildcard_host is not None:
                # Upstream files wildcard captures under the socket address and ignores -origin-ip-header.
                self.recorder.record_shared("tlddata", build(wildcard_host, wildcard_host, request.client_ip))
        except Exception:
            log.exception("%s - could not store the interaction of %s %s", remote, request.method, request.target)
        return len(matches)

    def recorded_response(self, plan: ResponsePlan) -> tuple[str, bool]:
        """Return ``raw-response`` with the body cut to the capture limit, and whether it was cut."""
        limit = self.recorder.admission.capture_limit
        sent = plan.length if isinstance(plan, StaticPlan) else len(plan.body)
        if len(plan.body) > limit:
            plan = ResponsePlan(plan.status, plan.headers, plan.body[:limit])
        return dump_response(plan), sent > limit

    def wildcard_host(self, request: CapturedRequest) -> str | None:
        """Return the Host value when ``-wildcard`` is on and the host is under a configured domain."""
        if not self.config.wildcard:
            return None
        host = request.host
        if not host or self.recorder.domain_of(host_without_port(host)) is None:
            return None
        return host

    def record_rejected(self, rejected: RejectedRequest) -> None:
        """Record a request head that the protocol rejected with an error status (the reject hook)."""
        request = parse_raw_head(rejected.raw_head)
        request.scheme = rejected.scheme
        request.client_ip = rejected.client[0] if rejected.client else ""
        plan = _text_plan(rejected.status, [], rejected.reason)
        self.record(
            request,
            plan,
            raw_request=as_text(rejected.raw_head),
            truncated=rejected.truncated,
            incomplete=True,
            rejected=rejected.reason,
        )

    def find_ids(self, request: CapturedRequest, dump: Callable[[], str]) -> list[tuple[IdMatch, str]]:
        """Return each registered id in the request once, with its ``full-id``.

        A hit in the host gets upstream's full-id, which is the labels up to
        the one that contains it. A hit elsewhere gets the matching window.
        """
        hosts = [host_labels(host) for host in searched_hosts(request)]
        tokens = [label for labels in hosts for label in labels]
        host_tokens = len(tokens)
        tokens += split_request_target(request.target)
        if self.config.scan_everywhere:
            tokens += [token for token in _SCAN_SEPARATORS.split(dump()) if token]
        found: list[tuple[IdMatch, str]] = []
        for match in self.matcher.matches(tokens):
            if match.token_index < host_tokens:
                full_id = _host_full_id(hosts, match.token_index)
            else:
                full_id = match.window
            found.append((match, full_id))
        return found

    def remote_address(self, request: CapturedRequest) -> str:
        """Return the origin IP header's value when configured and non-empty, else the peer IP."""
        if self.origin_header:
            value = request.header(self.origin_header)
            if value:
                return value
        return request.client_ip


def keep_raw_body(request: CapturedRequest, scope: Scope, body: Body, limit: int) -> bool:
    """Give a chunked body that did not end properly its bytes as received, up to ``limit``.

    Returns whether bytes beyond ``limit`` arrived and were left out.
    """
    request.complete = body.complete
    info = request_info(scope)
    raw = info.raw_body if info is not None else None
    if body.complete or raw is None or not request.chunked:
        return False
    request.raw_body = bytes(raw.data[:limit])
    return raw.size > limit


def searched_hosts(request: CapturedRequest) -> list[str]:
    """Return the host the request names, then the other Host values when it carries several."""
    hosts = [request.host]
    values = request.header_values("host")
    if len(values) > 1:
        hosts.extend(value for value in values if value != request.host)
    return hosts


def _host_full_id(hosts: list[list[str]], token_index: int) -> str:
    # Upstream's full-id of a hit in a host: its labels up to the one that contains the id.
    for labels in hosts:
        if token_index < len(labels):
            return ".".join(labels[: token_index + 1])
        token_index -= len(labels)
    raise IndexError(f"token {token_index} is not a host label")


def host_labels(host: str) -> list[str]:
    """Split a host into labels after removing the port and trailing dots."""
    name = host_without_port(host)
    return name.split(".") if name else []


def host_without_port(host: str) -> str:
    """Remove the port and trailing dots from a Host value; keep a bracketed IPv6 literal's address."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    name, colon, _ = host.rpartition(":")
    if colon and name and ":" not in name:
        host = name
    return host.rstrip(".")


def _text_plan(status: int, headers: list[tuple[str, str]], message: str, close: bool = False) -> ResponsePlan:
    body = as_bytes(message + "\n")
    return ResponsePlan(status, [*headers, ("Content-Type", TEXT_TYPE)], body, close=close)


def _sniffed_plan(headers: list[tuple[str, str]], body: bytes) -> ResponsePlan:
    # Upstream writes these files without a Content-Type, so Go sniffs one from the body.
    return ResponsePlan(200, [*headers, ("Content-Type", sniff_content_type(body))], body)


def _rejection(body: Body, timeout: float) -> str | None:
    if body.parse_error is not None:
        return f"invalid HTTP request: {body.parse_error}"
    if body.timed_out:
        return f"request body not received within {duration_text(timeout)}"
    return None
