"""Listener-wide settings of the local load balancer (the target proxy + forwarding rule part)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane.errors import ConfigError

RESERVED_PREFIX = "/_mlplane/"
"""Paths under this prefix are answered by the load balancer itself and never routed."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Limits and timeouts, nginx-like (GCP's 610 s keep-alive would let idle clients pin a
    local proxy's descriptors for ten minutes)."""

    max_header_bytes: int = 64 * 1024
    """Request head (request line + headers) larger than this -> 431."""
    max_request_body_bytes: int = 32 * 1024 * 1024
    """Request body larger than this -> 413 (Content-Length up front, chunked as it streams)."""
    client_header_timeout_sec: float = 10.0
    """A request head (and a body of up to 64 KiB) must arrive within this, else the client
    connection is closed."""
    client_idle_timeout_sec: float = 60.0
    """A keep-alive client connection idle this long between requests is closed."""
    max_connections: int = 4096
    """Client connections at once. At the cap a new connection displaces the one idle longest
    (waiting for a request head); if none is idle, it is refused (closed at once)."""
    connect_timeout_sec: float = 5.0
    """Opening an upstream connection; on expiry the next endpoint is tried, else 504."""
    upstream_idle_timeout_sec: float = 15.0
    """Pooled idle upstream connections older than this are closed."""
    max_idle_per_endpoint: int = 64
    """Idle keep-alive connections kept per endpoint."""
    eject_sec: float = 2.0
    """After a failed connect an endpoint is skipped this long (if another one is available)."""
    max_attempts: int = 3
    """Endpoints tried for one request (first try + retries)."""

    def check(self) -> None:
        for field in (
            "max_header_bytes",
            "max_request_body_bytes",
            "max_attempts",
            "max_connections",
        ):
            if getattr(self, field) < 1:
                raise ConfigError("proxy settings", field, "must be >= 1")
        for field in (
            "client_header_timeout_sec",
            "client_idle_timeout_sec",
            "connect_timeout_sec",
            "upstream_idle_timeout_sec",
        ):
            if not getattr(self, field) > 0:
                raise ConfigError("proxy settings", field, "must be > 0")
        if self.max_idle_per_endpoint < 0 or self.eject_sec < 0:
            raise ConfigError("proxy settings", "", "max_idle_per_endpoint/eject_sec must be >= 0")
