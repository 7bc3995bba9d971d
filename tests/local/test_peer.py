"""The metadata server's check of who is at the other end of a loopback connection: asked of
the kernel by the socket's addresses (netlink), or read from /proc/net/tcp where netlink is
unavailable; both tell the same uid, another OS user's included."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from mlplane.providers.local.agent.auth import peer

NOBODY = 65534


@pytest.fixture
def server() -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    yield srv
    srv.close()


def test_own_connection_is_this_user_by_either_source(server: socket.socket) -> None:
    with socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            ports = client.getsockname()[1], server.getsockname()[1]
            assert peer._uid_by_netlink(*ports) == os.getuid()
            assert peer._uid_by_proc(*ports) == os.getuid()
            assert peer.same_user(*ports)


def test_a_gone_connection_is_nobodys(server: socket.socket) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert peer.peer_uid(port, server.getsockname()[1]) is None
    assert not peer.same_user(port, server.getsockname()[1])


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_another_users_connection_is_told_apart(server: socket.socket) -> None:
    host, port = server.getsockname()
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the client: another OS user, connected until told to go
        try:
            os.setuid(NOBODY)
            client = socket.create_connection((host, port))
            os.write(ready_w, str(client.getsockname()[1]).encode())
            os.read(done_r, 1)
        finally:
            os._exit(0)
    try:
        client_port = int(os.read(ready_r, 16))
        conn, _ = server.accept()
        with conn:
            assert peer._uid_by_netlink(client_port, port) == NOBODY
            assert peer._uid_by_proc(client_port, port) == NOBODY
            assert not peer.same_user(client_port, port)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, done_r, done_w):
            os.close(fd)


def test_without_netlink_proc_is_read(
    server: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> int:
        raise peer._Unsupported("no netlink here")

    monkeypatch.setattr(peer, "_uid_by_netlink", refuse)
    with socket.create_connection(server.getsockname()) as client:
        conn, _ = server.accept()
        with conn:
            assert peer.peer_uid(client.getsockname()[1], server.getsockname()[1]) == os.getuid()
