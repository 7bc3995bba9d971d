"""A tiny workload for the local-provider tests, run by the agent as an instance or a replica.

Serves HTTP on $PORT (stdlib, Nagle off):
    GET /healthz     200, or 500 while the file $FAIL_DIR/<instance name> exists
    GET /whoami      {"instance", "port", "pid"}
    GET .../slow?s=S sleeps S seconds, then answers (load for the autoscaler)
    anything else    {"instance", "path"}
With $IGNORE_TERM=1 it ignores SIGTERM (the agent must SIGKILL it).
With $SELF_DELETE=1 it first acts like a training VM at the end of its job: reads its name,
zone, project and token from the metadata server ($GCE_METADATA_HOST) and sends
DELETE .../instances/NAME to the agent's Compute-style API; it writes the HTTP status and body
to $RESULT_FILE, then keeps serving. If the delete is allowed the agent stops it (SIGTERM) as
soon as it has answered; like a well-behaved job it finishes writing its result first.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = os.environ.get("MLPLANE_INSTANCE_NAME", "?")


def metadata(path: str) -> str:
    url = f"http://{os.environ['GCE_METADATA_HOST']}/computeMetadata/v1/{path}"
    req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(resp.read().decode())


def self_delete() -> None:
    name = metadata("instance/name")
    zone = metadata("instance/zone").rsplit("/", 1)[-1]
    project = metadata("project/project-id")
    token = json.loads(metadata("instance/service-accounts/default/token"))["access_token"]
    base = os.environ["CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"]
    url = f"{base}projects/{project}/zones/{zone}/instances/{name}"
    req = urllib.request.Request(url, method="DELETE", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, body = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    path = os.environ["RESULT_FILE"]
    with open(path + ".tmp", "w") as f:
        json.dump({"status": status, "body": body}, f)
    os.replace(path + ".tmp", path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, data: object) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            fail_dir = os.environ.get("FAIL_DIR")
            failing = bool(fail_dir and os.path.exists(os.path.join(fail_dir, NAME)))
            self._send(500 if failing else 200, {"ok": not failing})
        elif url.path == "/whoami":
            self._send(200, {"instance": NAME, "port": self.server.server_port, "pid": os.getpid()})
        elif url.path.endswith("/slow"):
            time.sleep(float(parse_qs(url.query).get("s", ["0.5"])[0]))
            self._send(200, {"instance": NAME})
        else:
            self._send(200, {"instance": NAME, "path": url.path})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self._send(200, {"instance": NAME, "path": self.path})


def main() -> None:
    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("SELF_DELETE") == "1":
        terminated: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))
        self_delete()
        if terminated:
            sys.exit(0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
