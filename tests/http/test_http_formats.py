"""Pure helpers of the HTTP listener: Go dump formats, size strings, sniffing, dynamic parameters, limits."""

from __future__ import annotations

import pytest
from interactsh.listeners.http_api import JsonBodyError, decode_json_fields
from interactsh.listeners.http_capture import host_labels, host_without_port
from interactsh.listeners.http_dump import (
    CapturedRequest,
    ResponsePlan,
    canonical_header_name,
    dump_request,
    dump_response,
    parse_raw_head,
)
from interactsh.listeners.http_dynamic import DynamicResponseError, plan_dynamic_response, sniff_content_type
from interactsh.listeners.http_metrics import human_size
from interactsh.listeners.http_protocol import ConnectionLimiter
from interactsh.listeners.http_ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("x-big", "X-Big"),
        ("content-length", "Content-Length"),
        ("WWW-AUTHENTICATE", "Www-Authenticate"),
        ("x--y", "X--Y"),
        ("a_b", "A_b"),
        ("bad name", "bad name"),
        ("ümlaut", "ümlaut"),
    ],
)
def test_canonical_header_name(name: str, canonical: str) -> None:
    assert canonical_header_name(name) == canonical


def test_dump_request_orders_like_go() -> None:
    request = CapturedRequest(
        method="POST",
        target="/p?q",
        version="1.0",
        headers=[
            ("zeta", "1"),
            ("host", "h.example"),
            ("accept", " spaced\t"),
            ("trailer", "X"),
            ("transfer-encoding", "chunked"),
            ("zeta", "2"),
        ],
        body=b"abc",
    )
    assert dump_request(request) == (
        "POST /p?q HTTP/1.0\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n"
        "Accept: spaced\r\nZeta: 1\r\nZeta: 2\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )


def test_dump_request_without_host_and_body() -> None:
    assert dump_request(CapturedRequest("GET", "/", "1.1", [])) == "GET / HTTP/1.1\r\n\r\n"
    chunked = CapturedRequest("POST", "/", "1.1", [("transfer-encoding", "chunked")])
    assert dump_request(chunked) == "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"


def test_dump_response_formats() -> None:
    plan = ResponsePlan(599, [("X-B", "2"), ("Content-Type", "text/plain"), ("X-A", "1")], b"body")
    assert dump_response(plan) == (
        "HTTP/1.1 599 status code 599\r\nConnection: close\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-B: 2\r\n\r\nbody"
    )
    assert dump_response(ResponsePlan(204)) == "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


def test_parse_raw_head_tolerates_damage() -> None:
    request = parse_raw_head(b"\r\nGET /x HTTP/1.1\nHost: a.b\r\nbroken line\r\nX-Cut: partial")
    assert (request.method, request.target, request.version) == ("GET", "/x", "1.1")
    assert request.headers == [("host", "a.b"), ("x-cut", "partial")]
    empty = parse_raw_head(b"\xff\xfe")
    assert empty.method == "\udcff\udcfe"
    assert empty.target == ""
    assert empty.headers == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.oast.test", "a.oast.test"),
        ("a.oast.test.:8080", "a.oast.test"),
        ("a.oast.test..", "a.oast.test"),
        ("[::1]:80", "::1"),
        ("[::1", "[::1"),
        ("::1", "::1"),
        (":8080", ":8080"),
        ("", ""),
    ],
)
def test_host_without_port(host: str, expected: str) -> None:
    assert host_without_port(host) == expected


def test_absolute_form_host() -> None:
    request = CapturedRequest("GET", "HTTP://user:pw@Target.example:81/p?q#f", "1.1", [("host", "other")])
    assert request.absolute_form
    assert request.host == "Target.example:81"
    assert host_labels(request.host) == ["Target", "example"]


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (12_345_678, "12.35MB"),
        (1_500_000_000, "1.5GB"),
        (999_999, "1000kB"),
        (10**27, "1000YB"),
    ],
)
def test_human_size_matches_go_units(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"hello", "text/plain; charset=utf-8"),
        (b"  <HTML><body>", "text/html; charset=utf-8"),
        (b"<p>x", "text/html; charset=utf-8"),
        (b"<pre>x", "text/plain; charset=utf-8"),
        (b"<!-- c -->", "text/html; charset=utf-8"),
        (b"<?xml version='1.0'?>", "text/xml; charset=utf-8"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-1.7", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x01\x02", "application/octet-stream"),
        ('{"json": "ü"}'.encode(), "text/plain; charset=utf-8"),
    ],
)
def test_sniff_content_type(body: bytes, content_type: str) -> None:
    assert sniff_content_type(body) == content_type


BASE = ResponsePlan(200, [("Server", "oast.test")])


def test_dynamic_response_steps() -> None:
    query = [
        ("header", "X-One:1"),
        ("header", "x-two: two "),
        ("status", "201"),
        ("body", "a+b"),
        ("b64_body", "aGk"),
        ("delay", "3"),
    ]
    plan = plan_dynamic_response("/", query, BASE, max_delay=2.5)
    assert plan.status == 201
    assert plan.body == b"a+bhi"
    assert plan.delay == 2.5
    assert plan.headers == [
        ("Server", "oast.test"),
        ("X-One", "1"),
        ("X-Two", "two"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    assert BASE.headers == [("Server", "oast.test")], "the base plan must not change"


def test_dynamic_path_body_ignores_status() -> None:
    plan = plan_dynamic_response("/B64_BODY:PGh0bWw+/x", [("status", "404")], BASE, 10)
    assert plan.status == 200
    assert plan.body == b"<html>"
    assert ("Content-Type", "text/html; charset=utf-8") in plan.headers


def test_dynamic_base64_with_plus_and_slash() -> None:
    assert plan_dynamic_response("/", [("b64_body", "+/8 ")], BASE, 10).body == b"\xfb\xff>"
    assert plan_dynamic_response("/b64_body:+/8=/", [], BASE, 10).body == b"\xfb\xff"


def test_dynamic_content_type_from_header() -> None:
    plan = plan_dynamic_response("/", [("header", "Content-Type:image/png"), ("body", "x")], BASE, 10)
    assert [value for key, value in plan.headers if key == "Content-Type"] == ["image/png"]
    empty = plan_dynamic_response("/", [("status", "204")], BASE, 10)
    assert all(key != "Content-Type" for key, _ in empty.headers)


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/", [("status", "0")], "status 0 is out of range"),
        ("/", [("status", "100")], "status 100 is out of range"),
        ("/", [("status", "600")], "status 600 is out of range"),
        ("/", [("status", "abc")], "status 'abc' is not a number"),
        ("/", [("status", "-1")], "is not a number"),
        ("/", [("delay", "-1")], "delay '-1' is not a number of seconds"),
        ("/", [("delay", "nan")], "is not a number of seconds"),
        ("/b64_body:", [], "has no '/' after the base64 text"),
        ("/b64_body:aGk", [], "has no '/' after the base64 text"),
        ("/b64_body:a/", [], "is not valid standard base64"),
        ("/", [("b64_body", "%%%")], "is not valid standard base64"),
        ("/", [("header", "NoColon")], "has no ':'"),
        ("/", [("header", "Bad Name:v")], "is not a valid HTTP token"),
        ("/", [("header", "X:\r\nSet-Cookie: a=b")], "control character"),
        ("/", [("header", "X:a\x00b")], "control character"),
        ("/", [("header", "Content-Length:1")], "cannot be set"),
        ("/", [("header", "Transfer-Encoding:chunked")], "cannot be set"),
    ],
)
def test_dynamic_errors(path: str, query: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(DynamicResponseError, match=message.replace("(", r"\(")):
        plan_dynamic_response(path, query, BASE, 10)


def test_dynamic_delay_accepts_decimals() -> None:
    assert plan_dynamic_response("/", [("delay", "0.25")], BASE, 10).delay == 0.25
    assert plan_dynamic_response("/", [("delay", "9" * 25)], BASE, 10).delay == 10


def test_decode_json_fields() -> None:
    fields = decode_json_fields(b' {"a": "1", "B": "2", "c": null} tail', ("a", "b", "c", "d"))
    assert fields == {"a": "1", "b": "2", "c": "", "d": ""}
    exact = decode_json_fields(b'{"b": "exact", "B": "folded"}', ("b",))
    assert exact == {"b": "exact"}
    with pytest.raises(JsonBodyError, match="must be a string, got boolean"):
        decode_json_fields(b'{"a": true}', ("a",))
    with pytest.raises(JsonBodyError, match="got string"):
        decode_json_fields(b'"text"', ("a",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock)
    assert all(limiter.allow("a") for _ in range(60))
    assert not limiter.allow("a")
    assert limiter.exhausted("a")
    assert limiter.retry_after("a") == 1
    assert limiter.allow("b"), "addresses have separate buckets"
    clock.now += 1.0
    assert limiter.allow("a")
    assert not limiter.allow("a")
    clock.now += 3600
    assert sum(limiter.allow("a") for _ in range(100)) == 60, "a bucket never holds more than its burst"


def test_rate_limiter_off() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.allow("a") for _ in range(1000))
    assert not limiter.exhausted("a")


def test_connection_limiter() -> None:
    limiter = ConnectionLimiter(2)
    assert limiter.acquire("a")
    assert limiter.acquire("a")
    assert not limiter.acquire("a")
    assert limiter.acquire("b")
    limiter.release("a")
    assert limiter.acquire("a")
    limiter.release("a")
    limiter.release("a")
    limiter.release("b")
    assert limiter.open == {}
    unlimited = ConnectionLimiter(0)
    assert all(unlimited.acquire("a") for _ in range(1000))
