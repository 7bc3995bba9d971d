"""What /proc says about a process (stdlib only: `mlplane status` reads it on its fast path)."""

from __future__ import annotations

import os


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, or None."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_table() -> dict[int, tuple[int, int, int]]:
    """Every live, non-zombie process: pid -> (process group, session, start time)."""
    out: dict[int, tuple[int, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(entry)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        out[int(entry)] = (int(fields[2]), int(fields[3]), int(fields[19]))
    return out
