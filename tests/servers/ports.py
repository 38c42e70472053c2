"""Loopback ports for the test servers."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """Ports the OS has free on 127.0.0.1, all different: each socket is held until all are
    bound (ports taken one after another, each released before the next, can repeat)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
