"""Which OS user is at the other end of a loopback TCP connection (Linux).

The metadata server answers only processes of the agent's own OS user, as a VM's metadata
server answers only that VM: another OS user on this machine cannot take an instance's token.
(Processes of the same OS user can; see docs/iam.md, "Identity".)

The kernel is asked for the one socket by its addresses (sock_diag over netlink, as `ss`
does: ~5 us). Where netlink is unavailable, /proc/net/tcp is read instead; that scans every
TCP socket of the machine (~3.7 ms with 1,500 of them, most in TIME_WAIT after a load test)
on the agent's event loop, once per metadata request.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_ALL_STATES = 0xFFFFFFFF
_NO_COOKIE = 0xFFFFFFFF
_LOOPBACK = socket.inet_aton("127.0.0.1") + bytes(12)  # an inet_diag address: 16 bytes
# struct nlmsghdr (16 bytes), then struct inet_diag_msg: family, state, timer, retrans (4),
# inet_diag_sockid (48), expires, rqueue, wqueue (12), uid
_UID_OFFSET = 16 + 4 + 48 + 12


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def _diag_request(client_port: int, server_port: int) -> bytes:
    sockid = (
        struct.pack("!HH", client_port, server_port)
        + _LOOPBACK
        + _LOOPBACK
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )
    req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + sockid
    return struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + req


class _Unsupported(Exception):
    pass


def _uid_by_netlink(client_port: int, server_port: int) -> int | None:
    """The uid of the socket 127.0.0.1:client_port -> 127.0.0.1:server_port, None when there
    is no such socket; _Unsupported when the kernel cannot be asked."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as exc:
        raise _Unsupported(str(exc)) from None
    with contextlib.closing(sock):
        try:
            sock.sendto(_diag_request(client_port, server_port), (0, 0))
            data = sock.recv(8192)
        except OSError as exc:
            raise _Unsupported(str(exc)) from None
    if len(data) < 16:
        raise _Unsupported("short answer")
    _, kind = struct.unpack_from("=IH", data)
    if kind == _SOCK_DIAG_BY_FAMILY and len(data) >= _UID_OFFSET + 4:
        return int(struct.unpack_from("=I", data, _UID_OFFSET)[0])
    if kind == 2 and len(data) >= 20:  # NLMSG_ERROR: -ENOENT is "no such socket"
        (error,) = struct.unpack_from("=i", data, 16)
        if -error == 2:
            return None
    raise _Unsupported(f"answer of type {kind}")


def _uid_by_proc(client_port: int, server_port: int) -> int | None:
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


def peer_uid(client_port: int, server_port: int) -> int | None:
    """The uid owning the client socket `127.0.0.1:client_port -> server_port`, or None when
    it cannot be told (no such socket: the connection is already gone)."""
    try:
        return _uid_by_netlink(client_port, server_port)
    except _Unsupported:
        return _uid_by_proc(client_port, server_port)


def same_user(client_port: int, server_port: int) -> bool:
    """Whether the peer runs as this process's OS user (unknown counts as no)."""
    return peer_uid(client_port, server_port) == os.getuid()
