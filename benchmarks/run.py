"""asyncfetch against what users run today and against the physical limits.

    python benchmarks/run.py            # the full run (~20 minutes), into benchmarks/results/
    python benchmarks/run.py --quick    # under a minute, into benchmarks/results/quick/
    python benchmarks/run.py --only latency cpu cpu-small --out /tmp/bench
    python benchmarks/run.py --only sink --out benchmarks/results/sink
    python benchmarks/run.py --report-only    # rebuild results.md and plots from results.json

Starts the bundled server in processes of its own (one per scenario, see
``_serve.py``), then runs each scenario for asyncfetch and its baselines
(python-intercom 3.1.0, a naive ``asyncio.gather``, ``aiometer.run_all`` and a
bare aiohttp + orjson loop; see ``_clients.py``), interleaved, several
repetitions, each run in a fresh process (``_worker.py``), and writes
``results.md`` (medians, ratios first), ``results.json`` (every raw number
and the machine) and the plots ``latency.png`` and ``memory.png``.

The scenarios (``_scenarios.py``):

- latency-bound: the 188 pages of 50 users of one tag (below the page cap), 50 ms per request,
  concurrency 1, 4, 16, 64, against the limit 50 ms x (1 + ⌈187 / c⌉);
- rate-bound: 300 pages against a server enforcing 50 requests per 1-second
  window; asyncfetch gets no rate option;
- CPU-bound: 2,000 pages of 50 realistic users (~1.4 KB) with no latency;
  CPU seconds of the client process per 1,000 pages, every item written as
  JSON Lines by every client; the library, the CLI (``asyncfetch users --out
  FILE``, in process) and the bare loop (into /dev/null, and into a file for
  the CLI's comparison), each on asyncio's loop and on uvloop;
- CPU-bound, small pages: the same for 1,800 pages of 5 users, where the
  per-request cost shows;
- memory: peak RSS of the client process for lists of 1,000, 10,000 and
  50,000 pages;
- slow consumer: 1 ms per item; pages requested ahead of the consumer and
  requests in flight.
- sink: all 10,000 users (200 pages of 50, 50 ms, concurrency 16) into a JSON
  Lines file, a SQLite database and a PostgreSQL database (a throwaway server
  with fsync on, started from tests/postgres_cluster.py unless
  ASYNCFETCH_TEST_POSTGRES_URL names one), each database's throughput against
  the JSON Lines run's.
- shared budget: 2 and 4 processes on one token, each fetching every user from
  ONE server enforcing 50 requests per 1-second window, and 166 per 10 s
  (Intercom's 1,000 a minute); with ``shared_budget=`` (one budget file) and
  with the headers alone (the adaptive mode); judged by the server's own
  counters (requests per window, 429s). ``--quick``: 4 processes, 1-second
  windows only.

How the memory scenario lists 50,000 pages. Intercom stops page-numbered
listing at 10,000 records, and so do the bundled server (``page_cap_records``)
and ``IntercomClient`` (it refuses a longer list up front, ``PageLimitError``):
no Intercom list has 50,000 pages for the client to fetch. What must stay flat
with the list's length is the engine's window, so the scenario serves one user
per page from servers whose cap is lifted (``_serve.py --page-cap``) and runs
asyncfetch's own engine (``asyncfetch.ordered_pages`` over its ``Transport``
and an ``IntercomList`` with ``record_cap=None``: what ``IntercomClient``
runs, minus the cap check and the set of ids seen that drops duplicates,
which the cap bounds at 10,000). ``IntercomClient`` itself runs the sizes
within the cap (1,000 and 10,000 pages) beside it. One user per page keeps
the largest workspace at 50,000 users (2 s to generate) and the gather
baseline, which holds every page, at a few hundred MiB.

Instructions per page, repeatable on a busy machine: ``benchmarks/callgrind.py``;
profiled CPU per page by part of the hot path: ``benchmarks/profile_parts.py``.
To profile one client run, run the worker alone against a server, e.g.:

    python benchmarks/_serve.py --port 8001 --users 10000 --rate-limit 1000000000 &
    py-spy record -r 1000 -f raw -o asyncfetch.txt -- python benchmarks/_worker.py \
      '{"client": "asyncfetch", "base_url": "http://127.0.0.1:8001", "lists": 10}'
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from _common import BENCHMARKS, bench_servers
from _report import machine, write
from _scenarios import FULL, QUICK, SCENARIOS, Plan, Runner, server_specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small lists, one repetition (under a minute)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(SCENARIOS), help="run these scenarios only"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the results (default benchmarks/results, or results/quick with --quick)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rebuild results.md and the plots from the folder's results.json",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    out = args.out or BENCHMARKS / "results" / ("quick" if args.quick else "")
    if args.report_only:
        saved = json.loads((out / "results.json").read_text())
        plan = Plan(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["plan"].items()})
        _, found = write(out, plan, saved["runs"], saved["machine"], saved["scenarios"])
        _show(out, found)
        return
    scenarios = args.only or list(SCENARIOS)
    info = machine()
    info["command"] = " ".join(["python benchmarks/run.py", *sys.argv[1:]])
    info["load_average_start"] = _load()
    started = time.monotonic()
    runner = Runner()
    specs = server_specs(plan, scenarios)
    # A SIGTERM stops the run like Ctrl-C: the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"starting {len(specs)} server(s)…", file=sys.stderr, flush=True)
    with bench_servers(specs) as urls:
        for scenario in scenarios:
            SCENARIOS[scenario](plan, urls, runner)
    info["load_average_end"] = _load()
    info["seconds"] = round(time.monotonic() - started, 1)
    _, found = write(out, plan, runner.runs, info, scenarios)
    _show(out, found)


def _show(out: Path, found: list[dict[str, Any]]) -> None:
    print(f"\n{out / 'results.md'}", file=sys.stderr)
    for target in found:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[target["met"]]
        print(f"  {mark} {target['target']}: {target['measured']}", file=sys.stderr)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
