"""Free TCP ports on the loopback interface."""

import socket


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now and not handed out before in this test session (the kernel may offer
    the same free port twice in a row, and a gateway given it for two listeners refuses to start)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
