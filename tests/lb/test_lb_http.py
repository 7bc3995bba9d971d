"""The HTTP/1.1 head parser: framing, hop-by-hop headers, and what must be refused."""

from __future__ import annotations

import pytest

from mlplane.providers.local.lb.http import HttpError, chunk_size, parse_request_head
from mlplane.providers.local.lb.response import parse_response_head, response_head

XFF = b"X-Forwarded-For: 10.0.0.1\r\n"


def test_plain_request_is_forwarded_verbatim_plus_our_headers() -> None:
    raw = b"POST /v1/p?q=1 HTTP/1.1\r\nHost: Example.COM:80\r\nContent-Length: 5\r\nX-A: b\r\n\r\n"
    req = parse_request_head(raw)
    assert (req.method, req.target, req.path) == (b"POST", b"/v1/p?q=1", b"/v1/p")
    assert req.host == b"example.com:80"
    assert req.content_length == 5 and not req.chunked and req.keep_alive
    assert req.upstream_head(XFF) == raw[:-2] + XFF + b"\r\n"


def test_hop_by_hop_headers_are_dropped_and_chunked_kept() -> None:
    raw = (
        b"PUT /u HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
        b"Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nX-Ok: 2\r\n\r\n"
    )
    req = parse_request_head(raw)
    assert req.chunked and req.content_length == -1
    out = req.upstream_head(XFF)
    assert out.startswith(b"PUT /u HTTP/1.1\r\n")
    assert b"Host: h\r\n" in out and b"X-Ok: 2\r\n" in out
    assert b"Transfer-Encoding: chunked\r\n" in out
    for gone in (b"Connection", b"X-Secret", b"Keep-Alive", b"TE:"):
        assert gone not in out
    assert out.endswith(XFF + b"\r\n")


def test_http10_keep_alive_and_absolute_form() -> None:
    req = parse_request_head(
        b"GET http://svc.local:8080/a/b?x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    )
    assert req.version == 10 and req.keep_alive
    assert req.host == b"svc.local:8080" and req.target == b"/a/b?x" and req.path == b"/a/b"
    assert req.upstream_head(b"").startswith(b"GET /a/b?x HTTP/1.1\r\n")
    bare = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert not bare.keep_alive
    assert bare.upstream_head(b"") == b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert not parse_request_head(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ).keep_alive


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
    ],
)
def test_bad_requests_are_refused(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as err:
        parse_request_head(raw)
    assert err.value.status == status


def test_response_heads() -> None:
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n"
    resp = parse_response_head(plain)
    assert (resp.status, resp.content_length, resp.keep_alive, resp.verbatim) == (
        200,
        2,
        True,
        True,
    )
    old = parse_response_head(b"HTTP/1.0 404 Nope\r\nContent-Length: 0\r\n\r\n")
    assert not old.keep_alive and old.status_line == b"HTTP/1.1 404 Nope"
    closing = parse_response_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nX: y\r\n\r\n")
    assert not closing.keep_alive and not closing.verbatim and closing.content_length == -1
    out = response_head(closing, chunked=False, connection=b"close")
    assert out == b"HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n\r\n"
    both = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert both.chunked and both.content_length == -1
    assert b"Content-Length" not in response_head(both, chunked=True, connection=None)
    with pytest.raises(HttpError):
        parse_response_head(b"HTTP/1.1 2000 OK\r\n\r\n")


def test_chunk_size_lines() -> None:
    assert chunk_size(b"1aF\r\n") == 0x1AF
    assert chunk_size(b"10;ext=1\r\n") == 16
    for bad in (b"\r\n", b"0x10\r\n", b"1_0\r\n", b"-1\r\n", b"g\r\n"):
        with pytest.raises(HttpError):
            chunk_size(bad)
