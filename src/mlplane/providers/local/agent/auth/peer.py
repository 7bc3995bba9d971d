"""Which OS user is at the other end of a loopback TCP connection (Linux: /proc/net/tcp).

The metadata server answers only processes of the agent's own OS user, as a VM's metadata
server answers only that VM: another OS user on this machine cannot take an instance's token.
(Processes of the same OS user can; see docs/iam.md, "Identity".)
"""

from __future__ import annotations

import os

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def peer_uid(client_port: int, server_port: int) -> int | None:
    """The uid owning the client socket `127.0.0.1:client_port -> server_port`, or None when
    it cannot be told (no /proc, or the connection is already gone)."""
    for table in _TABLES:
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) < 8:
                        continue
                    local, remote = fields[1], fields[2]
                    if _port_of(local) == client_port and _port_of(remote) == server_port:
                        return int(fields[7])
        except OSError:
            continue
    return None


def same_user(client_port: int, server_port: int) -> bool:
    """Whether the peer runs as this process's OS user (unknown counts as no)."""
    return peer_uid(client_port, server_port) == os.getuid()
