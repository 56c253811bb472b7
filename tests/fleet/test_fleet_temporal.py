"""The fleet on a real Temporal server, real workers, real PostgreSQL (issue 13).

The done-when test: five workspaces (five bundled servers, five tokens, each
enforcing its own rate limit, one injecting faults) synced by two ``fleet
worker`` processes, one of them killed with SIGKILL mid-run; every
workspace's tables equal the server's own records, each once; no 429; no
token anywhere in any workflow's history. Then: a second ``fleet run`` finds
the running workflow instead of starting another; a refused token fails its
own workspace at once (one attempt, its line shown), and the other finishes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from asyncfetch._fleet._temporal_workflow import SyncWorkspace, WorkspaceProgress
from asyncfetch.testing import FaultConfig, ServerConfig, ServerThread

from ..postgres_cluster import PostgresUrl
from ..sink.db import query
from .conftest import StartWorkers, clean_env, fleet_command
from .helpers import assert_tables_exact, fleet_toml

LISTS = ["users", "companies"]


def workflow_id(name: str) -> str:
    return f"asyncfetch-sync-{name}"


async def _histories(target: str, ids: list[str]) -> dict[str, bytes]:
    """Each workflow's whole history, every event serialized: in the protobuf
    form the payloads (inputs, results, heartbeats, failures) are their raw
    bytes, not the base64 of the JSON form, so a token in any is found."""
    client = await Client.connect(target)
    found = {}
    for wid in ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        found[wid] = b"".join(event.SerializeToString() for event in history.events)
    return found


async def _results(target: str, ids: list[str]) -> dict[str, WorkspaceProgress]:
    client = await Client.connect(target)
    return {
        wid: await client.get_workflow_handle_for(SyncWorkspace.run, wid).result() for wid in ids
    }


async def _executions(target: str, wid: str) -> int:
    client = await Client.connect(target)
    return len([each async for each in client.list_workflows(f"WorkflowId = '{wid}'")])


@pytest.fixture
def five_servers() -> Iterator[list[tuple[str, ServerThread]]]:
    """Five workspaces' servers: each its own token and its own enforced limit
    (20 requests per 1-second window, advertised); the third injects faults."""
    servers = []
    try:
        for number in range(5):
            faults = (
                FaultConfig(seed=5, error_rate=0.05, reset_rate=0.03, bad_body_rate=0.03)
                if number == 2
                else None
            )
            config = ServerConfig(
                users=300 + 40 * number,
                seed=number,
                latency_ms=10,
                rate_limit=20,
                rate_window_seconds=1,
                token=f"secret-token-{number}-{uuid.uuid4().hex}",
                faults=faults,
            )
            server = ServerThread(config)
            server.__enter__()
            servers.append((f"ws-{number}_{uuid.uuid4().hex[:6]}", server))
        yield servers
    finally:
        for _, server in servers:
            server.__exit__(None, None, None)


def _served_pages(servers: list[tuple[str, ServerThread]]) -> int:
    return sum(server.stats.statuses[200] for _, server in servers)


def test_five_workspaces_survive_a_killed_worker(
    temporal_server: str,
    start_workers: StartWorkers,
    postgres_database_url: PostgresUrl,
    five_servers: list[tuple[str, ServerThread]],
    tmp_path: Path,
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    tokens = {f"WS{number}_TOKEN": server.token for number, (_, server) in enumerate(five_servers)}
    fleet = fleet_toml(
        tmp_path / "FLEET.toml",
        [
            {
                "name": name,
                "base_url": server.base_url,
                "token_env": f"WS{number}_TOKEN",
                "lists": LISTS,
                "per_page": 10,
            }
            for number, (name, server) in enumerate(five_servers)
        ],
    )
    # The first worker takes every workspace; the second joins, then the first dies.
    (first,) = start_workers(1, task_queue=queue, db=postgres_database_url, tokens=tokens)
    # fleet run reads no token: none in its environment.
    run = subprocess.Popen(
        fleet_command(
            "run", str(fleet), "--temporal", temporal_server, "--task-queue", queue, "--wait"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    deadline = time.monotonic() + 60
    while _served_pages(five_servers) < 25:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no pages served"
        time.sleep(0.05)
    start_workers(1, task_queue=queue, db=postgres_database_url, tokens=tokens)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    served_at_kill = _served_pages(five_servers)
    stdout, stderr = run.communicate(timeout=100)
    assert run.returncode == 0, stderr
    assert stderr == ""
    for name, _ in five_servers:
        assert f"{name}: started (workflow {workflow_id(name)})" in stdout
        assert f"{name}: users done (1/2 lists): " in stdout
        assert f"{name}: companies done (2/2 lists): " in stdout
        assert f"{name}: completed: " in stdout
    # Killed mid-run: the servers had pages left to serve.
    assert _served_pages(five_servers) > served_at_kill > 0

    for name, server in five_servers:
        assert_tables_exact(postgres_database_url, server, LISTS, schema=name)
        # Each list one run, complete: a retried list continued its run (from the
        # database's record of its last page), it did not start another.
        runs = query(
            postgres_database_url, f'SELECT list, status FROM "{name}".sync_runs ORDER BY list'
        )
        assert runs == [("companies", "complete"), ("users", "complete")], name
        # Each server's own limit, advertised, was never exceeded.
        assert server.stats.statuses[429] == 0, name
    faulty = five_servers[2][1]
    assert sum(faulty.stats.faults.values()) > 0

    ids = [workflow_id(name) for name, _ in five_servers]
    results = asyncio.run(_results(temporal_server, ids))
    # Some list was retried on the worker left (an attempt after the first).
    assert any(report.attempt > 1 for result in results.values() for report in result.done)
    histories = asyncio.run(_histories(temporal_server, ids))
    for number, wid in enumerate(ids):
        history = histories[wid]
        # The history holds the workspace's input (its token's variable)...
        assert f'"token_env":"WS{number}_TOKEN"'.encode() in history
        # ... and no token, of any workspace.
        for token in tokens.values():
            assert token.encode() not in history


def test_a_second_fleet_run_follows_the_running_workflow(
    temporal_server: str,
    start_workers: StartWorkers,
    tmp_path: Path,
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    name = f"solo-{uuid.uuid4().hex[:8]}"
    with ServerThread(ServerConfig(users=120, token="solo-secret-token-1234567890")) as server:
        fleet = fleet_toml(
            tmp_path / "FLEET.toml",
            [
                {
                    "name": name,
                    "base_url": server.base_url,
                    "token_env": "SOLO_TOKEN",
                    "lists": ["users"],
                    "per_page": 20,
                }
            ],
        )
        command = fleet_command(
            "run", str(fleet), "--temporal", temporal_server, "--task-queue", queue
        )
        # No worker yet: the first run's workflow stays running, waiting for one.
        first = subprocess.run(
            command, capture_output=True, text=True, env=clean_env(), timeout=60, check=False
        )
        assert first.returncode == 0, first.stderr
        assert first.stdout == f"{name}: started (workflow {workflow_id(name)})\n"
        again = subprocess.Popen(
            [*command, "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        # Its first line before any worker: once one has run the workflow to its
        # end, a new fleet run starts the next sync, as it should.
        assert again.stdout is not None
        followed = again.stdout.readline()
        assert followed == f"{name}: already running, followed (workflow {workflow_id(name)})\n"
        db = f"sqlite://{tmp_path / 'fleet.db'}"
        start_workers(1, task_queue=queue, db=db, tokens={"SOLO_TOKEN": server.token})
        stdout, stderr = again.communicate(timeout=60)
        assert again.returncode == 0, stderr
        assert f"{name}: completed: 6 pages, 120 records" in stdout
        # One workflow, one pass: every page served once.
        assert asyncio.run(_executions(temporal_server, workflow_id(name))) == 1
        pages = [page for path, page in server.stats.pages if path == "/users"]
        assert sorted(pages) == [1, 2, 3, 4, 5, 6]
        assert_tables_exact(f"sqlite://{tmp_path / f'fleet-{name}.db'}", server, ["users"])


def test_a_refused_token_fails_only_its_workspace_at_once(
    temporal_server: str,
    start_workers: StartWorkers,
    tmp_path: Path,
) -> None:
    queue = f"q-{uuid.uuid4().hex}"
    good, bad = f"good-{uuid.uuid4().hex[:6]}", f"bad-{uuid.uuid4().hex[:6]}"
    with (
        ServerThread(ServerConfig(users=150, token="good-secret-token-123456789")) as ok,
        ServerThread(ServerConfig(users=150, token="the-accepted-token-98765432")) as refusing,
    ):
        fleet = fleet_toml(
            tmp_path / "FLEET.toml",
            [
                {
                    "name": good,
                    "base_url": ok.base_url,
                    "token_env": "GOOD_TOKEN",
                    "lists": ["users", "companies"],
                },
                {
                    "name": bad,
                    "base_url": refusing.base_url,
                    "token_env": "BAD_TOKEN",
                    "lists": ["users", "companies"],
                },
            ],
        )
        db = f"sqlite://{tmp_path / 'fleet.db'}"
        start_workers(
            1,
            task_queue=queue,
            db=db,
            tokens={"GOOD_TOKEN": ok.token, "BAD_TOKEN": "revoked-token-0000000000"},
        )
        result = subprocess.run(
            fleet_command(
                "run", str(fleet), "--temporal", temporal_server, "--task-queue", queue, "--wait"
            ),
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=90,
            check=False,
        )
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"asyncfetch: error: {bad}: users: HTTP 401 unauthorized: Access Token Invalid "
            f"(page 1, {refusing.base_url}/users?per_page=50&page=1)"
        ]
        assert f"{good}: completed: " in result.stdout
        # Not retried: one request, refused; the workspace's later list never tried.
        assert refusing.stats.statuses[401] == 1
        assert refusing.stats.requests == 1
        assert "revoked-token" not in result.stdout + result.stderr
        assert_tables_exact(f"sqlite://{tmp_path / f'fleet-{good}.db'}", ok, ["users", "companies"])
