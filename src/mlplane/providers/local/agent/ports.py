"""Free ports on 127.0.0.1 for replicas and metadata endpoints.

The kernel picks a free port (bind to 0); the allocator remembers which ones it handed out so
two live replicas never get the same one, and `release` frees a port when its process is gone.
"""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


class PortAllocator:
    def __init__(self) -> None:
        self.in_use: set[int] = set()

    def allocate(self, prefer: int | None = None) -> int:
        """A free port: `prefer` when nothing uses it, else one the kernel picks."""
        if prefer is not None and prefer not in self.in_use:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                # as servers bind: a port whose last connections linger in TIME_WAIT is free
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((HOST, prefer))
                except OSError:
                    pass
                else:
                    self.in_use.add(prefer)
                    return prefer
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = int(s.getsockname()[1])
            if port not in self.in_use:
                self.in_use.add(port)
                return port
        raise OSError("no free port on 127.0.0.1 after 100 tries")

    def release(self, port: int | None) -> None:
        if port is not None:
            self.in_use.discard(port)
