"""What the benchmark scripts share: the bundled server in a process of its own."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


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
        _wait_until_up(base_url, server, timeout=60)
        yield base_url
    finally:
        server.terminate()
        server.wait()


BENCHMARKS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ServerSpec:
    """How to run one bundled server for the benchmarks (see ``_serve.py``)."""

    users: int
    latency_ms: float = 0.0
    rate_limit: int | None = None
    rate_window: int = 10
    page_cap: int = 10_000
    log_requests: bool = False
    stats_endpoint: bool = False

    def options(self) -> list[str]:
        options = [
            "--users", str(self.users), "--latency-ms", str(self.latency_ms),
            "--rate-window", str(self.rate_window), "--page-cap", str(self.page_cap),
        ]  # fmt: skip
        if self.rate_limit is not None:
            options += ["--rate-limit", str(self.rate_limit)]
        if self.log_requests:
            options.append("--log-requests")
        if self.stats_endpoint:
            options.append("--stats-endpoint")
        return options


@contextlib.contextmanager
def bench_servers(specs: Mapping[str, ServerSpec]) -> Iterator[dict[str, str]]:
    """Start one server process per spec, all at once (their workspaces are generated
    in parallel), and yield their base URLs by name once every one answers."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for name, spec in specs.items():
            port = free_port()
            processes[name] = subprocess.Popen(
                [sys.executable, str(BENCHMARKS / "_serve.py"), "--port", str(port),
                 *spec.options()],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            _wait_until_up(url, processes[name], timeout=180)
        yield urls
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(base_url: str, process: subprocess.Popen[bytes], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(
                f"{base_url}/tags", headers={"Authorization": "Bearer bench"}
            )
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the bundled server at {base_url} did not start") from None
            time.sleep(0.1)
