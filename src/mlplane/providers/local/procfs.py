"""What /proc says about a process (stdlib only: `mlplane status` reads it on its fast path)."""

from __future__ import annotations


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])
