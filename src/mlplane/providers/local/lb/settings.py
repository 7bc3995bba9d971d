"""Listener-wide settings of the local load balancer (the target proxy + forwarding rule part)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane.errors import ConfigError

RESERVED_PREFIX = "/_mlplane/"
"""Paths under this prefix are answered by the load balancer itself and never routed."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Limits and timeouts. Defaults follow the global external Application Load Balancer
    where it has one (610 s client keep-alive), else nginx-like values."""

    max_header_bytes: int = 64 * 1024
    """Request head (request line + headers) larger than this -> 431."""
    max_request_body_bytes: int = 32 * 1024 * 1024
    """Request body larger than this -> 413 (Content-Length up front, chunked as it streams)."""
    client_idle_timeout_sec: float = 610.0
    """A client connection waiting this long for (the rest of) a request head is closed."""
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
        for field in ("max_header_bytes", "max_request_body_bytes", "max_attempts"):
            if getattr(self, field) < 1:
                raise ConfigError("proxy settings", field, "must be >= 1")
        for field in (
            "client_idle_timeout_sec",
            "connect_timeout_sec",
            "upstream_idle_timeout_sec",
        ):
            if not getattr(self, field) > 0:
                raise ConfigError("proxy settings", field, "must be > 0")
        if self.max_idle_per_endpoint < 0 or self.eject_sec < 0:
            raise ConfigError("proxy settings", "", "max_idle_per_endpoint/eject_sec must be >= 0")
