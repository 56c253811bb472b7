"""What the benchmark scripts share: the bundled server in a process of its own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def bundled_server(*options: str) -> Iterator[str]:
    """Run ``asyncfetch serve OPTIONS`` in its own process (so its CPU is not the
    client's); yield its base URL once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "asyncfetch", "serve", "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(
                    f"{base_url}/tags", headers={"Authorization": "Bearer bench"}
                )
                with urllib.request.urlopen(request, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the bundled server did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        server.wait()
