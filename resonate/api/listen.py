"""The listening sockets of the API transports (HTTP, gRPC), bound before the transport starts serving."""
from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP listening socket whose connections get TCP_NODELAY. asyncio sets it on accepted connections
    only when the socket's proto is IPPROTO_TCP, which `socket.create_server` leaves at 0; without it a
    response written in two parts waits for the client's delayed ACK (about 40 ms per request)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock
