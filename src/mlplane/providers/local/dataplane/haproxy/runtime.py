"""HAProxy's runtime API (its stats socket, admin level): one connection per call, commands
joined by ';', the answer read to the end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

TIMEOUT_SEC = 2.0


class RuntimeApiError(Exception):
    """The runtime API could not be reached or refused a command."""


async def call(socket_path: str, command: str, timeout: float = TIMEOUT_SEC) -> str:
    async def run() -> str:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 24)
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode("utf-8", "replace")
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(run(), timeout)
    except (OSError, TimeoutError) as exc:
        raise RuntimeApiError(f"haproxy's runtime API ({socket_path}): {exc!r}") from None


async def worker_pid(socket_path: str) -> int:
    """The pid of the worker answering on the socket now."""
    for line in (await call(socket_path, "show info")).splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    raise RuntimeApiError("haproxy's `show info` has no Pid")


async def set_states(socket_path: str, states: dict[tuple[str, str], bool]) -> None:
    """`set server BACKEND/SERVER state ready|maint` for each entry, in one call."""
    commands = [
        f"set server {be}/{srv} state {'ready' if up else 'maint'}"
        for (be, srv), up in sorted(states.items())
    ]
    if not commands:
        return
    answer = await call(socket_path, ";".join(commands))
    bad = [line for line in answer.splitlines() if line.strip()]
    if bad:
        raise RuntimeApiError(f"haproxy refused a server state change: {bad[0]}")


async def add_servers(socket_path: str, adds: list[tuple[str, str, str, int]]) -> None:
    """`add server B/S HOST:PORT` (added in maintenance) for each (backend, server, host, port)."""
    if not adds:
        return
    commands = [f"add server {be}/{srv} {host}:{port}" for be, srv, host, port in adds]
    answer = await call(socket_path, ";".join(commands))
    bad = [x for x in answer.splitlines() if x.strip() and x.strip() != "New server registered."]
    if bad:
        raise RuntimeApiError(f"haproxy refused to add a server: {bad[0]}")


async def del_servers(socket_path: str, removes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Maintenance, then `del server`, for each (backend, server); returns those haproxy kept
    because requests still run on them (they stay in maintenance: retried later)."""
    kept = []
    for be, srv in removes:
        answer = await call(socket_path, f"set server {be}/{srv} state maint;del server {be}/{srv}")
        if "Server deleted." not in answer and "No such server" not in answer:
            kept.append((be, srv))
    return kept


@dataclass(frozen=True, slots=True)
class BackendStat:
    name: str
    current: int  # scur: requests in the backend now
    total: int  # requests it took (req_tot, else stot)


async def backend_stats(socket_path: str) -> list[BackendStat]:
    text = await call(socket_path, "show stat -1 2 -1")
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RuntimeApiError(f"unexpected `show stat` answer: {text[:80]!r}")
    header = lines[0][2:].split(",")
    i_name, i_sv = header.index("pxname"), header.index("svname")
    i_cur, i_stot = header.index("scur"), header.index("stot")
    i_req = header.index("req_tot") if "req_tot" in header else -1
    out = []
    for line in lines[1:]:
        f = line.split(",")
        if len(f) < len(header) or f[i_sv] != "BACKEND":
            continue
        total = f[i_req] if i_req >= 0 and f[i_req] else f[i_stot]
        out.append(BackendStat(f[i_name], int(f[i_cur] or 0), int(total or 0)))
    return out
