"""HTTP for the one client: stdlib `http.client`, keep-alive connections per thread and host,
JSON in and out. (Measured in docs/decisions/0011: the official clients cost seconds to import
and ignore a custom endpoint when they poll; this costs nothing at start-up.)
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "mlplane (gzip)"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any  # decoded JSON, or text when the body is not JSON
    headers: dict[str, str]
    raw: bytes = b""  # the body as received (media downloads)


class TransportError(OSError):
    """The request did not get an answer (connection refused, reset, timed out)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = url
        self.cause = cause
        super().__init__(f"{url}: {cause}")


class Transport:
    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str, int | None], http.client.HTTPConnection] | None
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (scheme, host, port)
        conn = pool.get(key)
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = pool[key] = cls(host, port, timeout=self.timeout)
        return conn

    def _drop(self, scheme: str, host: str, port: int | None) -> None:
        pool = getattr(self._local, "pool", {})
        conn = pool.pop((scheme, host, port), None)
        if conn is not None:
            conn.close()

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname or "", parts.port
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        for attempt in (0, 1):
            conn = self._connection(scheme, host, port)
            conn.timeout = timeout or self.timeout
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            try:
                conn.request(method, target, body=body, headers=sent)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(scheme, host, port)
                if attempt == 0 and method in ("GET", "HEAD", "PUT", "DELETE"):
                    continue  # a kept-alive connection the server had closed: once more
                raise TransportError(url, exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(scheme, host, port)
                raise TransportError(url, exc) from exc
            if resp.getheader("connection", "").lower() == "close":
                self._drop(scheme, host, port)
            break
        text_type = resp.getheader("content-type", "")
        decoded: Any
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        if not raw and "json" not in text_type:
            decoded = None
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return HttpResponse(resp.status, decoded, headers, raw)

    def json(
        self,
        method: str,
        url: str,
        data: object | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        body = None
        sent = dict(headers or {})
        if data is not None:
            body = json.dumps(data).encode()
            sent["Content-Type"] = "application/json"
        return self.request(method, url, body, sent, timeout)

    def close(self) -> None:
        pool = getattr(self._local, "pool", {})
        for conn in pool.values():
            conn.close()
        pool.clear()
