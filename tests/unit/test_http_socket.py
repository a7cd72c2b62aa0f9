"""The HTTP listeners' connections must not wait on Nagle: asyncio turns TCP_NODELAY on for accepted
connections only when the listening socket says it is TCP (proto IPPROTO_TCP)."""
import socket

from resonate.api.http.transport import listening_socket


def test_the_listening_socket_is_tcp_with_nodelay():
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        with socket.create_connection(sock.getsockname()[:2]):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_a_taken_port_is_refused():
    first = listening_socket("127.0.0.1", 0)
    try:
        try:
            listening_socket("127.0.0.1", first.getsockname()[1])
        except OSError:
            return
        raise AssertionError("a second listener bound a port already listened on")
    finally:
        first.close()
