"""An incremental sync sends only the pages it needs.

    python benchmarks/incremental.py                # 10,000 users, 100 changed
    python benchmarks/incremental.py --quick        # 2,000 users, 20 changed

The bundled server with 10,000 users (50 per page, concurrency 16, as the CLI
runs by default); ``asyncfetch users --db`` lands them all in a SQLite file;
the server then updates 100 users (``ServerThread.touch``: their
``updated_at`` becomes now, as an update in Intercom would set it); and
``asyncfetch users --db --incremental`` runs with the default margin. The
server counts the requests of each run. The target (issue 11): the
incremental run sends at most 3 pages plus the window (the pages a listing
may have requested ahead of the one it hands over: ``2 * concurrency``, the
client's default, 32), and the database then holds every update. The run
also asks for page 1 a second time once it stops, to see whether the list
moved under it (``_intercom/_since.py``); that request is counted too.
Counts, not times: the result is the same on any machine.

Writes ``benchmarks/results/incremental.json`` (or ``quick/incremental.json``).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from asyncfetch.testing import ServerConfig, ServerThread

TOKEN = "bench"
CONCURRENCY = 16
WINDOW = 2 * CONCURRENCY  # IntercomClient's default window
PER_PAGE = 50
RESULTS = Path(__file__).parent / "results"


def sync(server: ServerThread, database: Path, *extra: str) -> int:
    """One CLI run into ``database``; the requests the server saw for it."""
    before = server.stats.requests
    subprocess.run(
        [sys.executable, "-m", "asyncfetch", "users", "--db", str(database), "--quiet",
         "--base-url", server.base_url, "--token", TOKEN, "--per-page", str(PER_PAGE),
         "--concurrency", str(CONCURRENCY), *extra],
        check=True,
    )  # fmt: skip
    return server.stats.requests - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 users, 20 changed")
    args = parser.parse_args()
    users, changed = (2_000, 20) if args.quick else (10_000, 100)
    with (
        tempfile.TemporaryDirectory() as folder,
        ServerThread(ServerConfig(users=users, token=TOKEN, latency_ms=5)) as server,
    ):
        database = Path(folder) / "intercom.db"
        full = sync(server, database)
        ids = [str(user["id"]) for user in random.Random(0).sample(server.workspace.users, changed)]
        touched = {str(user["id"]): user["updated_at"] for user in server.touch(ids)}
        incremental = sync(server, database, "--incremental")
        with sqlite3.connect(database) as db:
            stored = dict(db.execute("SELECT id, data ->> 'updated_at' FROM users").fetchall())
    caught = sum(stored.get(key) == value for key, value in touched.items())
    bound = 3 + WINDOW
    result = {
        "users": users,
        "changed": changed,
        "full_run_requests": full,
        "incremental_run_requests": incremental,
        "target_requests": f"<= 3 pages + the window of {WINDOW} = {bound}",
        "met": incremental <= bound and caught == changed,
        "updates_in_the_database": f"{caught} of {changed}",
    }
    out = RESULTS / "quick" if args.quick else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "incremental.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not result["met"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
