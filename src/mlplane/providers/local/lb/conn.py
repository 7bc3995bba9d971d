"""Per-client-connection state shared by the listener, the forwarder and the timeout sweeper.

Timeouts cost the request path no timer: it stores a phase and a deadline, and the load
balancer's sweeper (every 50 ms) calls `expire()` on connections whose deadline passed.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

from .http import RequestHead
from .peer import Peer
from .pool import ServiceState
from .settings import ProxySettings
from .upstream import UpstreamConn

INF = float("inf")

# ClientConn.phase: what expiry does.
IDLE = 0  # waiting on the client (next request head, a small body): close it
UPSTREAM = 1  # waiting on the upstream (connect done, response head): 504
STREAM = 2  # relaying a body in either direction: abort both sides
NONE = 3  # no deadline


class Runtime:
    """What every request needs from the load balancer: its settings and whether it is stopping."""

    __slots__ = ("closing", "reroute", "settings")

    def __init__(
        self, settings: ProxySettings, reroute: Callable[[RequestHead], ServiceState | None]
    ) -> None:
        self.settings = settings
        self.closing = False
        # Routes a request again on the current config (its service was removed meanwhile).
        self.reroute = reroute


class ClientConn(Peer):
    """A client connection: a `Peer` (its own reader and writer) plus what the request path and
    the timeout sweeper share. `client.ClientProtocol` drives it."""

    __slots__ = (
        "deadline",
        "extra",
        "idle_since",
        "must_close",
        "phase",
        "reader",
        "stream_timeout",
        "timed_out",
        "upstream",
        "writer",
    )

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.reader = self.writer = self  # the stream-like calls of the coroutine paths
        self.extra = b""  # CRLF-terminated header lines added to every upstream request
        self.phase = IDLE
        self.deadline = INF
        self.idle_since = monotonic()
        self.must_close = False  # the endpoint answered before the client's body was all sent
        self.upstream: UpstreamConn | None = None
        self.timed_out = False
        self.stream_timeout = 30.0

    def touch(self) -> None:
        """Relaying made progress: push the deadline out again."""
        self.deadline = monotonic() + self.stream_timeout

    def buffered(self) -> int:
        """Bytes the client sent that no one read yet (a partial request head)."""
        return len(self.buf)

    def expire(self) -> None:
        """Called by the sweeper once `deadline` has passed."""
        self.deadline = INF
        phase = self.phase
        if phase == IDLE:
            self.transport.abort()
            return
        self.timed_out = True
        if self.upstream is not None:
            self.upstream.transport.abort()
        if phase == STREAM:
            self.transport.abort()
