"""Property tests of the load balancer's request-head parser (RFC 9112 framing)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mlplane.providers.local.lb.http import TCHAR, HttpError, parse_request_head

tokens = st.text(alphabet=TCHAR.decode(), min_size=1, max_size=12).map(str.encode)
# Field values: visible ASCII, obs-text and inner spaces/tabs (RFC 9110 §5.5), no CR/LF/NUL.
value_bytes = st.binary(min_size=0, max_size=30).map(
    lambda b: bytes(c for c in b if c in (9, 32) or 33 <= c <= 126 or c >= 128).strip(b" \t")
)
paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/%", max_size=20).map(
    lambda s: ("/" + s).encode()
)
FRAMING = {b"content-length", b"transfer-encoding", b"host", b"connection", b"expect", b"te"}
FRAMING |= {b"keep-alive", b"proxy-connection", b"trailer", b"upgrade"}
extra_headers = st.lists(
    st.tuples(tokens.filter(lambda n: n.lower() not in FRAMING), value_bytes), max_size=6
)


def head_of(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], length: int) -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: example.test"]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@settings(max_examples=300, deadline=None)
@given(tokens, paths, extra_headers, st.integers(0, 10**12))
def test_a_well_formed_head_parses_and_forwards_its_headers_unchanged(
    method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], length: int
) -> None:
    req = parse_request_head(head_of(method, path, headers, length))
    assert (req.method, req.path, req.host) == (method, path, b"example.test")
    assert req.content_length == length and not req.chunked
    upstream = req.upstream_head(b"X-Forwarded-For: 127.0.0.1\r\n")
    for name, value in headers:
        assert b"\r\n" + name + b": " + value + b"\r\n" in upstream
    assert upstream.endswith(b"\r\n\r\n") and upstream.count(b"\r\n\r\n") == 1


@settings(max_examples=300, deadline=None)
@given(
    tokens,
    paths,
    extra_headers.filter(bool),
    st.sampled_from([b"\n", b"\r", b"\x00", b"\x01", b"\x7f"]),
    st.data(),
)
def test_a_control_byte_anywhere_in_a_header_line_is_a_400(
    method: bytes,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    bad: bytes,
    data: st.DataObject,
) -> None:
    i = data.draw(st.integers(0, len(headers) - 1))
    name, value = headers[i]
    line = name + b": " + value
    at = data.draw(st.integers(0, len(line)))
    headers = list(headers)
    # Spliced into the line: inside the name, at the colon, inside or at the end of the value.
    spliced = line[:at] + bad + line[at:]
    head = head_of(method, path, [], 0).replace(
        b"Host: example.test\r\n", b"Host: example.test\r\n" + spliced + b"\r\n"
    )
    try:
        parse_request_head(head)
    except HttpError as exc:
        assert exc.status == 400
    else:
        raise AssertionError(f"accepted {head!r}")


@settings(max_examples=200, deadline=None)
@given(tokens, paths, tokens, value_bytes, st.sampled_from([b" ", b"\t"]))
def test_whitespace_in_or_around_a_header_name_is_a_400(
    method: bytes, path: bytes, name: bytes, value: bytes, ws: bytes
) -> None:
    for line in (ws + name + b": " + value, name + ws + b": " + value, name[:1] + ws + name):
        head = head_of(method, path, [], 0).replace(b"\r\n\r\n", b"\r\n" + line + b"\r\n\r\n")
        try:
            parse_request_head(head)
        except HttpError as exc:
            assert exc.status == 400
        else:
            raise AssertionError(f"accepted {head!r}")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_either_parse_or_raise_an_http_error(junk: bytes) -> None:
    head = junk.replace(b"\r\n\r\n", b"") + b"\r\n\r\n"
    try:
        req = parse_request_head(head)
    except HttpError as exc:
        assert 400 <= exc.status < 600
        return
    # What parses is well framed: CRLF line ends only, no NUL, a token method, a host.
    assert b"\0" not in head
    assert head.count(b"\n") == head.count(b"\r\n") == head.count(b"\r")
    assert req.method and (req.host or req.version == 10)
