"""A loopback shim in front of gcp-storage-emulator that enforces generation preconditions as
Cloud Storage does; the emulator ignores them (docs/local-components.md).

Cloud Storage's JSON API takes `ifGenerationMatch` / `ifGenerationNotMatch` as query parameters
on uploads (`POST /upload/storage/v1/b/B/o`, the object name in `name=` or in the multipart
metadata), on object reads, metadata, and on deletes (`/storage/v1/b/B/o/NAME`). Generation 0
means "no live object". When a precondition does not hold, Cloud Storage answers 412 with reason
`conditionNotMet`, and the request has no effect. The shim reads the object's generation from the
emulator, answers 412 itself when the precondition fails, and otherwise forwards the request
unchanged. Requests are serialized (the emulator is single-threaded anyway), so the check and the
forwarded write cannot interleave with another writer's.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

_OBJECT = re.compile(r"^/(?:upload/|download/)?storage/v1/b/([^/]+)/o(?:/(.+))?$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
PRECONDITION_FAILED = {
    "error": {
        "code": 412,
        "message": "At least one of the pre-conditions you specified did not hold.",
        "errors": [
            {
                "message": "At least one of the pre-conditions you specified did not hold.",
                "domain": "global",
                "reason": "conditionNotMet",
                "locationType": "header",
                "location": "If-Match",
            }
        ],
    }
}


class _Shim(BaseHTTPRequestHandler):
    upstream: tuple[str, int]
    lock: threading.Lock
    rejected: list[str]
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _generation(self, bucket: str, name: str) -> int:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request("GET", f"/storage/v1/b/{quote(bucket)}/o/{quote(name, safe='')}")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status == 404:
            return 0
        return int(json.loads(body)["generation"])

    @staticmethod
    def _name_in(body: bytes) -> str | None:
        """The object name in a resumable upload's metadata (the JSON body) or a multipart
        upload's metadata part (its first JSON object)."""
        m = re.search(rb"\{.*?\}(?=\s*(?:--|$))", body, re.S)
        if m is None:
            return None
        try:
            name = json.loads(m.group(0)).get("name")
        except ValueError:
            return None
        return name if isinstance(name, str) else None

    def _holds(self, path: str, query: dict[str, str], body: bytes) -> bool:
        match = _OBJECT.match(path)
        wanted = {k: query[k] for k in ("ifGenerationMatch", "ifGenerationNotMatch") if k in query}
        if match is None or not wanted:
            return True
        bucket, name = match.group(1), match.group(2)
        name = unquote(name) if name else query.get("name") or self._name_in(body)
        if name is None:
            return True
        current = self._generation(bucket, name)
        if "ifGenerationMatch" in wanted and current != int(wanted["ifGenerationMatch"]):
            return False
        return not (
            "ifGenerationNotMatch" in wanted and current == int(wanted["ifGenerationNotMatch"])
        )

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            if not self._holds(parts.path, query, body):
                self.rejected.append(f"{self.command} {parts.path}")
                self._reply(412, {"Content-Type": "application/json"}, json.dumps(
                    PRECONDITION_FAILED).encode())  # fmt: skip
                return
            conn = http.client.HTTPConnection(*self.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
            finally:
                conn.close()
        if "Location" in out:  # resumable sessions continue through the shim
            host, port = self.upstream
            mine = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            out["Location"] = out["Location"].replace(f"{host}:{port}", mine)
        self._reply(resp.status, out, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@contextmanager
def precondition_shim(upstream_port: int) -> Iterator[tuple[str, list[str]]]:
    """Serve the shim on 127.0.0.1; yields (its URL, the requests it rejected)."""
    rejected: list[str] = []
    handler = type(
        "Shim",
        (_Shim,),
        {"upstream": ("127.0.0.1", upstream_port), "lock": threading.Lock(), "rejected": rejected},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", rejected
    finally:
        server.shutdown()
        server.server_close()
