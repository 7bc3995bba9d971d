"""What keep-alive clients see while the haproxy data plane changes its configuration.

    python bench/bench_haproxy_reload.py [--changes 10] [--kind app|static]

Needs `wrk` and haproxy (`apt-get install -y wrk haproxy`). Starts three replicas and the data
plane (`--proxy haproxy`), then runs wrk (1 thread, 32 keep-alive connections, 127.0.0.1 only)
twice while the agent's side sends new configurations every 0.4 s: (a) endpoint changes only
(replicas joining and leaving: the runtime API, no reload), (b) routing changes (a new path
rule each time: haproxy reloads). Prints requests and wrk's socket errors and non-2xx for each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from lb_bench_support import (
    ROOT,
    Procs,
    free_port,
    require_tools,
    src_env,
    start_replica,
    write_lua,
    wrk,
)

sys.path.insert(0, str(ROOT / "src"))
from mlplane.providers.local.dataplane.client import DataPlaneClient
from mlplane.providers.local.dataplane.protocol import DataPlaneConfig, Listener
from mlplane.providers.local.lb import (
    BackendService,
    Endpoint,
    HostRule,
    PathMatcher,
    PathRule,
    UrlMap,
)


def config(port: int, ports: list[int], route: int | None) -> DataPlaneConfig:
    service = BackendService("s", tuple(Endpoint("127.0.0.1", p) for p in ports))
    url_map = UrlMap("s")
    if route is not None:
        rules = (PathRule((f"/r{route}/*",), "s"),)
        url_map = UrlMap("s", (HostRule(("*",), "m"),), (PathMatcher("m", "s", rules),))
    return DataPlaneConfig(listeners=(Listener("bench", port, url_map, (service,)),))


async def run(state: Path, port: int, ports: list[int], lua: Path, args: Any, routes: bool):  # type: ignore[no-untyped-def]
    client = DataPlaneClient(state, "haproxy")
    await client.ensure()
    await client.apply(config(port, ports[:2], 0 if routes else None))
    out: dict[str, Any] = {}
    load = threading.Thread(target=lambda: out.update(r=wrk(port, 32, args.changes * 0.4 + 1, lua)))
    load.start()
    await asyncio.sleep(0.5)
    for i in range(1, args.changes + 1):
        members = ports[:2] if routes else [p for j, p in enumerate(ports) if j != i % 3]
        await client.apply(config(port, members, i if routes else None))
        await asyncio.sleep(0.4)
    await asyncio.get_running_loop().run_in_executor(None, load.join)
    client.close()
    return out["r"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--kind", choices=("app", "static"), default="app")
    args = parser.parse_args()
    require_tools("wrk", "haproxy")
    procs = Procs()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-hap-") as tmpdir:
            tmp = Path(tmpdir)
            lua = write_lua(tmp)
            ports = [start_replica(procs, args.kind) for _ in range(3)]
            for routes in (False, True):
                state = Path(tempfile.mkdtemp(dir=tmp))
                argv = [sys.executable, "-m", "mlplane.providers.local.dataplane", "--detach"]
                procs.start([*argv, "--dir", str(state), "--proxy", "haproxy"], env=src_env())
                port = free_port()
                _, p99, total, errors = asyncio.run(run(state, port, ports, lua, args, routes))
                what = "routing changes (reloads)" if routes else "endpoint changes (no reload)"
                print(f"{args.changes} {what}, wrk -c32 ({args.kind}): {total} requests, "
                      f"{errors} errors, p99 {p99:.2f} ms")  # fmt: skip
                client = DataPlaneClient(state, "haproxy")
                asyncio.run(client.shutdown())
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
