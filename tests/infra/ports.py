"""Free TCP ports on the loopback address."""

from __future__ import annotations

import random
import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()
_rng = random.SystemRandom()


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing is bound to right now.

    The port is picked *below* the kernel's ephemeral range, so client sockets
    (whose local ports come from that range) can never take it while a service
    is down: a broker stopped and restarted by a test gets its port back.
    A port already returned by this process is never returned twice.
    """
    with _lock:
        lo, _ = _ephemeral_range()
        first = 10000
        if lo - first >= 2000:
            for _ in range(200):
                port = _rng.randrange(first, lo)
                if port not in _handed_out and _bindable(port):
                    _handed_out.add(port)
                    return port
        for _ in range(100):  # fall back on the kernel's choice
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
