"""Free TCP ports on the loopback interface, and waiting for a child process to listen on one."""

from __future__ import annotations

import random
import socket
import subprocess
import time

# Listening ports come from below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): a port
# the kernel hands out as "free" is also what the next of the thousands of outgoing connections a benchmark makes may
# take as its local port before the server binds it (a benchmark's gateway once failed with "Address already in use").
LISTEN_PORTS = range(20000, 32000)

_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now and not handed out before in this process (the same free port offered
    twice, to a gateway for two listeners, would make it refuse to start)."""
    for _ in range(1000):
        port = random.choice(LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {LISTEN_PORTS} on {host}")


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Return once `process` accepts connections on host:port; fail when it exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")
