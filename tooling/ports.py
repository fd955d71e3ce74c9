"""Loopback ports for the servers tests and benchmarks start next to each other."""

from __future__ import annotations

import socket

from myaiserv.evaluation.harness import free_port


def free_port_range(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports (a web tier's instances)."""
    for _ in range(100):
        first = free_port()
        free = True
        for port in range(first, first + n):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return first
    raise RuntimeError(f"no {n} consecutive free ports")
