"""Pure pieces of the server: the request-head parser, the Date header, the daemon thread pool."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest

from mlplane.serving.http1 import HttpError, parse_head
from mlplane.serving.server import http_date
from mlplane.serving.threads import DaemonThreadPool


@pytest.mark.parametrize(
    ("head", "path", "keep_alive", "length"),
    [
        (b"GET /healthz?x=1&y=2 HTTP/1.1\r\nHost: a", b"/healthz", True, 0),
        (b"GET http://lb.local:80/v1/models/s/healthz HTTP/1.1", b"/v1/models/s/healthz", True, 0),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7", b"/predict", True, 7),
        (b"POST /predict HTTP/1.1\r\nConnection: Keep-Alive, Close", b"/predict", False, 0),
        (b"GET / HTTP/1.0", b"/", False, 0),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive", b"/", True, 0),
        (b"GET / HTTP/1.1\r\nX-Empty:\r\nX-Colon: a:b", b"/", True, 0),
    ],
)
def test_well_formed_heads(head: bytes, path: bytes, keep_alive: bool, length: int) -> None:
    req = parse_head(head)
    assert (req.path, req.keep_alive, req.content_length) == (path, keep_alive, length)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /", 400),
        (b"GET / HTTP/1.1 extra", 400),
        (b"G=T / HTTP/1.1", 400),
        (b"GET / HTTP/3", 505),
        (b"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1e3", 400),
        (b"POST / HTTP/1.1\r\nContent-Length : 3", 400),  # whitespace before the colon
        (b"POST / HTTP/1.1\r\nHost: a\r\n folded", 400),  # obsolete line folding
        (b"POST / HTTP/1.1\r\nNoColon", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked", 501),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3", 400),
        (b"POST / HTTP/1.1\r\nExpect: 200-ok", 417),
    ],
)
def test_malformed_heads_are_refused(head: bytes, status: int) -> None:
    with pytest.raises(HttpError) as err:
        parse_head(head)
    assert err.value.status == status


@pytest.mark.parametrize("t", [0.0, 1e9, 1709251199.0, 4102444800.0])
def test_http_date_is_the_rfc_format(t: float) -> None:
    assert http_date(t) == email.utils.formatdate(t, usegmt=True)


def test_daemon_pool_runs_everything_with_bounded_workers_and_does_not_block_exit() -> None:
    pool = DaemonThreadPool(3)
    active, peak, lock = 0, 0, threading.Lock()

    def work(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return i * i

    futures = [pool.submit(work, i) for i in range(12)]
    assert [f.result(5) for f in futures] == [i * i for i in range(12)]
    assert peak == 3 and all(t.daemon for t in pool._threads)
    assert len(pool._threads) == 3
    release = threading.Event()
    stuck = [pool.submit(release.wait, 30) for _ in range(3)]
    for f in stuck:
        wait_until = time.monotonic() + 5
        while not f.running() and time.monotonic() < wait_until:
            time.sleep(0.005)
    queued = [pool.submit(release.wait, 30) for _ in range(5)]
    started = time.perf_counter()
    pool.shutdown(wait=False, cancel_futures=True)
    assert time.perf_counter() - started < 1
    assert all(f.running() for f in stuck) and all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError):
        pool.submit(work, 1)
    release.set()
    assert all(f.result(5) is True for f in stuck)
