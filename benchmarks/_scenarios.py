"""The seven scenarios: which servers they need, which client runs they make.

Every measurement is one client run in a fresh worker process
(``_worker.py``) against a server in a process of its own (``_serve.py``).
Within a repetition the runs of a scenario go in a shuffled order (seeded by
the repetition), so drift and warm-up hit asyncfetch and its baselines alike.

The servers that are not the rate-bound one advertise (and enforce) a budget
no run reaches, ``NO_LIMIT`` requests per window. Left to its default, the
bundled server advertises Intercom's 1,667 requests per 10-second window, and
asyncfetch (alone) obeys what a server advertises: a fast scenario would then
measure the budget, not the client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import _worker
from _clients import Job
from _common import BENCHMARKS, ServerSpec

WORKER_TIMEOUT = 900
"""Seconds one client run may take."""
CONCURRENCIES = (1, 4, 16, 64)
NO_LIMIT = 1_000_000_000
"""Requests per window advertised by the servers of the scenarios that are not rate-bound."""

LATENCY_MS = 50.0
PER_PAGE = 50

RATE_LIMIT = 50
"""Requests per window of the rate-bound server."""
RATE_WINDOW = 1
"""Seconds per window of the rate-bound server."""
RATE_PER_PAGE = 10
RATE_LATENCY_MS = 20.0
RATE_CONCURRENCY = 16

CPU_LIST_PAGES = 200
"""The CPU scenario's list: all 10,000 users, 200 pages of 50 (Intercom's record cap)."""
CPU_SMALL_PER_PAGE = 5
CPU_SMALL_PAGES = 1_800
"""The small-page CPU scenario's list: 9,000 users, 1,800 pages of 5 (issue 12)."""
LOOPS = ("asyncio", "uvloop")
"""The event loops the CPU scenarios run asyncfetch, its CLI and the bare loop on."""
LOOP_CLIENTS = ("asyncfetch", "asyncfetch-cli", "bare", "bare-jsonl")
"""The clients the CPU scenarios run on each of ``LOOPS``: the library and its bare
loop, the CLI and the bare loop writing the same JSON Lines file."""
CONCURRENCY = 16
"""asyncfetch's default; the concurrency of every scenario but the latency-bound one."""

SINK_BACKENDS = ("jsonl", "sqlite", "postgresql")
"""The sink scenario's runs: JSON Lines (the reference), then each database of ``--db``."""
SINK_TARGET = 0.8
"""Each database's throughput, at least this share of the JSON Lines run's."""

SHARED_SERVERS = {"shared-1s": (50, 1), "shared-10s": (166, 10)}
"""The shared-budget scenario's servers: (requests per window, window seconds), the
issue's 50 per second and Intercom's 1,000 a minute as it meters them (166 per 10 s)."""
SHARED_PROCESSES = (2, 4)
SHARED_MODES = ("file", "headers")
"""``file``: ``shared_budget=`` (one budget file); ``headers``: the adaptive mode alone."""
SHARED_PER_PAGE = 10
SHARED_LATENCY_MS = 20.0
SHARED_CONCURRENCY = 8
"""Per process: 4 processes hold 32 requests in flight, most of a 50-request window."""
SHARED_TARGET = 0.9
"""Requests served per full window, at least this share of the limit."""

MEMORY_PER_PAGE = 1
ITEM_DELAY = 0.001
"""Seconds the slow consumer takes per item."""


@dataclass(frozen=True)
class Plan:
    """How big and how often: the full run or the quick one."""

    name: str
    latency_pages: int
    latency_reps: int
    rate_pages: int
    rate_reps: int
    cpu_lists: int
    """The CPU scenario fetches its 200-page list this many times in each run."""
    cpu_reps: int
    cpu_python_intercom: bool
    memory_sizes: tuple[int, ...]
    memory_reps: int
    python_intercom_memory_sizes: tuple[int, ...]
    """The memory sizes python-intercom runs in every repetition."""
    slow_pages: int
    slow_per_page: int
    slow_reps: int
    python_intercom_largest_once: bool = False
    """Whether python-intercom also runs the largest memory size, in the first repetition
    only (sequential, 1.5 ms a page: 50,000 pages take over a minute a run)."""
    sink_pages: int = 200
    """The sink scenario: all users, this many pages of 50, into each backend."""
    sink_reps: int = 5
    cpu_small_lists: int = 2
    """The small-page CPU scenario fetches its 1,800-page list this many times a run."""
    cpu_small_reps: int = 9
    shared_windows: int = 4
    """The shared-budget scenario: 2 processes' lists together fill about this many
    windows of each server (4 processes, twice as many)."""
    shared_servers: tuple[str, ...] = tuple(SHARED_SERVERS)
    shared_processes: tuple[int, ...] = SHARED_PROCESSES
    shared_reps: int = 1


FULL = Plan(
    name="full",
    latency_pages=200,
    latency_reps=5,
    rate_pages=300,
    rate_reps=3,
    cpu_lists=10,
    cpu_reps=9,
    cpu_python_intercom=True,
    memory_sizes=(1_000, 10_000, 50_000),
    memory_reps=3,
    python_intercom_memory_sizes=(1_000, 10_000),
    slow_pages=100,
    slow_per_page=20,
    slow_reps=3,
    python_intercom_largest_once=True,
    sink_pages=200,
    sink_reps=5,
)
QUICK = Plan(
    name="quick",
    latency_pages=12,
    latency_reps=1,
    rate_pages=60,  # two windows of 50: one full, one begun
    rate_reps=1,
    cpu_lists=1,  # the CLI, the bare loop into a file and both loops: 10 runs, not 4
    cpu_reps=1,
    cpu_python_intercom=False,
    memory_sizes=(200, 1_000),
    memory_reps=1,
    python_intercom_memory_sizes=(200,),
    slow_pages=40,
    slow_per_page=10,
    slow_reps=1,
    sink_pages=20,
    sink_reps=1,
    cpu_small_lists=1,
    cpu_small_reps=1,
    # 2 processes on the 1-second windows only: the 10-second windows, or 4 processes'
    # twice as many requests, would not fit make bench-quick's minute.
    shared_windows=2,
    shared_servers=("shared-1s",),
    shared_processes=(2,),
    shared_reps=1,
)


def server_specs(plan: Plan, scenarios: Iterable[str] | None = None) -> dict[str, ServerSpec]:
    """The servers the scenarios need (all of them by default), by name."""
    wanted = set(SCENARIOS if scenarios is None else scenarios)
    specs = {
        # The largest tag holds every other user and every other lead (a lead for 4
        # users): 0.625 of `users` records, some 0.94 x latency_pages pages of 50, below
        # the API's page cap (10,000 records: page 201 of 50 is refused with "page limit
        # reached, please use scroll API", which the baselines cannot get past).
        "latency": ServerSpec(
            users=2 * PER_PAGE * plan.latency_pages * 3 // 4,
            latency_ms=LATENCY_MS,
            rate_limit=NO_LIMIT,
        ),
        "rate": ServerSpec(
            users=RATE_PER_PAGE * plan.rate_pages,
            latency_ms=RATE_LATENCY_MS,
            rate_limit=RATE_LIMIT,
            rate_window=RATE_WINDOW,
        ),
        "cpu": ServerSpec(users=PER_PAGE * CPU_LIST_PAGES, rate_limit=NO_LIMIT),
        "cpu-small": ServerSpec(users=CPU_SMALL_PER_PAGE * CPU_SMALL_PAGES, rate_limit=NO_LIMIT),
        "slow": ServerSpec(
            users=plan.slow_per_page * plan.slow_pages,
            latency_ms=LATENCY_MS,
            rate_limit=NO_LIMIT,
            log_requests=True,
        ),
        # All users: sink_pages pages of 50.
        "sink": ServerSpec(
            users=PER_PAGE * plan.sink_pages, latency_ms=LATENCY_MS, rate_limit=NO_LIMIT
        ),
    }
    for name in plan.shared_servers:
        limit, window = SHARED_SERVERS[name]
        specs[name] = ServerSpec(
            users=SHARED_PER_PAGE * _shared_pages(plan, limit),
            latency_ms=SHARED_LATENCY_MS,
            rate_limit=limit,
            rate_window=window,
            stats_endpoint=True,
        )
    for pages in plan.memory_sizes:
        specs[f"memory-{pages}"] = ServerSpec(
            users=pages * MEMORY_PER_PAGE, page_cap=pages * MEMORY_PER_PAGE, rate_limit=NO_LIMIT
        )
    # Each scenario's servers are named after it ("slow" for slow-consumer).
    return {
        name: spec
        for name, spec in specs.items()
        if any(scenario.startswith(name.split("-")[0]) for scenario in wanted)
    }


class Runner:
    """Runs workers one at a time, keeps every result, reports progress on stderr."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.started = time.monotonic()
        # The fork server imports the runner's main module and every client library
        # once; Python 3.11's fork server ignores the parent's sys.path, hence PYTHONPATH.
        path = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCHMARKS), path]))
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["__main__", "_worker"])

    def measure(self, scenario: str, case: str, rep: int, job: Job) -> dict[str, Any]:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker.run_and_send, args=(dataclasses.asdict(job), sender)
        )
        process.start()
        sender.close()
        result: dict[str, Any]
        try:
            if receiver.poll(WORKER_TIMEOUT):
                result = json.loads(receiver.recv_bytes())
            else:
                process.kill()
                result = {"error": f"no result within {WORKER_TIMEOUT} s"}
        except EOFError:
            result = {"error": f"the worker died (exit code {process.exitcode})"}
        finally:
            receiver.close()
            process.join()
        if not result.get("handoffs"):
            result.pop("handoffs", None)
        # A client on uvloop is a client of its own in the tables: "bare+uvloop".
        client = job.client + ("+uvloop" if job.loop == "uvloop" else "")
        run = {"scenario": scenario, "case": case, "client": client, "loop": job.loop,
               "rep": rep, **result}  # fmt: skip
        self.runs.append(run)
        shown = f"{result['seconds']:.3f} s" if "seconds" in result else ""
        if result.get("error"):
            shown += f" FAILED: {result['error']}"
        print(
            f"[{time.monotonic() - self.started:6.1f} s] {scenario:<14} {case:<12} "
            f"{client:<22} rep {rep + 1}: {shown}",
            file=sys.stderr,
            flush=True,
        )
        return run


def _shuffled(items: list[Any], rep: int) -> Iterator[Any]:
    order = list(items)
    random.Random(rep).shuffle(order)
    return iter(order)


def _largest_tag_id(base_url: str) -> str:
    request = urllib.request.Request(f"{base_url}/tags", headers={"Authorization": "Bearer bench"})
    with urllib.request.urlopen(request, timeout=10) as response:
        tags = json.loads(response.read())["tags"]
    return str(next(tag["id"] for tag in tags if tag["name"] == "newsletter"))


def _total_pages(base_url: str, params: dict[str, str], per_page: int) -> int:
    """The list's ``pages.total_pages``, as its page 1 says."""
    query = urllib.parse.urlencode({**params, "per_page": per_page})
    request = urllib.request.Request(
        f"{base_url}/users?{query}", headers={"Authorization": "Bearer bench"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.loads(response.read())["pages"]["total_pages"])


def run_latency(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """The pages of 50 users of the largest tag (about latency_pages: the workspace
    decides the tag's size, so the runs expect what its page 1 says), 50 ms per
    request."""
    base_url = urls["latency"]
    tag = {"tag_id": _largest_tag_id(base_url)}
    pages = _total_pages(base_url, tag, PER_PAGE)
    cases: list[tuple[str, str, int | None]] = [
        (f"c={c}", client, c)
        for c in CONCURRENCIES
        for client in ("asyncfetch", "bare", "aiometer")
    ]
    cases += [("sequential", "python-intercom", 1), ("unbounded", "gather", None)]
    for rep in range(plan.latency_reps):
        for case, client, concurrency in _shuffled(cases, rep):
            job = Job(
                client=client,
                base_url=base_url,
                params=tag,
                per_page=PER_PAGE,
                concurrency=concurrency,
                expect_pages=pages,
            )
            runner.measure("latency", case, rep, job)


def run_rate(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """rate_pages pages against a server enforcing RATE_LIMIT per RATE_WINDOW s; each run
    starts on a window boundary. asyncfetch gets no rate: it reads the headers."""
    rate = RATE_LIMIT / RATE_WINDOW
    cases: list[tuple[str, int | None, float | None]] = [
        ("asyncfetch", RATE_CONCURRENCY, None),
        ("aiometer", RATE_CONCURRENCY, rate),
        ("bare", RATE_CONCURRENCY, None),
        ("gather", None, None),
        ("python-intercom", 1, None),
    ]
    for rep in range(plan.rate_reps):
        for client, concurrency, client_rate in _shuffled(cases, rep):
            job = Job(
                client=client,
                base_url=urls["rate"],
                per_page=RATE_PER_PAGE,
                concurrency=concurrency,
                rate=client_rate,
                expect_pages=plan.rate_pages,
                align_window=RATE_WINDOW,
            )
            runner.measure("rate", "rate", rep, job)


def _loop_cases(clients: Iterable[str]) -> list[tuple[str, str]]:
    """(client, loop): each of ``LOOP_CLIENTS`` on every loop, the others on asyncio's."""
    return [
        (client, loop)
        for client in clients
        for loop in (LOOPS if client in LOOP_CLIENTS else ("asyncio",))
    ]


def run_cpu(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """The 200-page list of all users (50 per page, ~1.4 KB each), no latency, fetched
    cpu_lists times per run; python-intercom (slow) fetches it once. The library, the
    CLI and the bare loops on both event loops; the other baselines on asyncio's."""
    clients = [*LOOP_CLIENTS, "aiometer", "gather"]
    if plan.cpu_python_intercom:
        clients.append("python-intercom")
    cases = _loop_cases(clients)
    for rep in range(plan.cpu_reps):
        for client, loop in _shuffled(cases, rep):
            job = Job(
                client=client,
                base_url=urls["cpu"],
                per_page=PER_PAGE,
                concurrency=None if client == "gather" else CONCURRENCY,
                lists=1 if client == "python-intercom" else plan.cpu_lists,
                expect_pages=CPU_LIST_PAGES,
                loop=loop,
            )
            runner.measure("cpu", "cpu", rep, job)


def run_cpu_small(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """1,800 pages of 5 users, no latency, fetched cpu_small_lists times per run: the
    per-request cost. The library, the CLI and the bare loops, on both event loops."""
    cases = _loop_cases(LOOP_CLIENTS)
    for rep in range(plan.cpu_small_reps):
        for client, loop in _shuffled(cases, rep):
            job = Job(
                client=client,
                base_url=urls["cpu-small"],
                per_page=CPU_SMALL_PER_PAGE,
                concurrency=CONCURRENCY,
                lists=plan.cpu_small_lists,
                expect_pages=CPU_SMALL_PAGES,
                loop=loop,
            )
            runner.measure("cpu-small", "cpu-small", rep, job)


def run_memory(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """Lists of 1 user per page, one server per size, no latency; peak RSS of each run.

    ``asyncfetch-engine`` runs asyncfetch's engine without the 10,000-record cap
    (no Intercom list is longer, so ``IntercomClient`` refuses more);
    ``asyncfetch`` is ``IntercomClient`` itself, on the sizes within the cap.
    """
    for rep in range(plan.memory_reps):
        cases: list[tuple[int, str]] = []
        for pages in plan.memory_sizes:
            clients = ["asyncfetch-engine", "bare", "aiometer", "gather"]
            if pages * MEMORY_PER_PAGE <= 10_000:
                clients.append("asyncfetch")
            if pages in plan.python_intercom_memory_sizes or (
                rep == 0 and plan.python_intercom_largest_once and pages == max(plan.memory_sizes)
            ):
                clients.append("python-intercom")
            cases += [(pages, client) for client in clients]
        for pages, client in _shuffled(cases, rep):
            job = Job(
                client=client,
                base_url=urls[f"memory-{pages}"],
                per_page=MEMORY_PER_PAGE,
                concurrency=None if client == "gather" else CONCURRENCY,
                expect_pages=pages,
            )
            runner.measure("memory", str(pages), rep, job)


def run_slow_consumer(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """A consumer taking ITEM_DELAY s per item; the server logs when each request came
    and went, the client when it handed each page to the consumer."""
    base_url = urls["slow"]
    clients = ["asyncfetch", "bare", "aiometer", "gather", "python-intercom"]
    for rep in range(plan.slow_reps):
        for client in _shuffled(clients, rep):
            _server_log(base_url)  # start from an empty log
            job = Job(
                client=client,
                base_url=base_url,
                per_page=plan.slow_per_page,
                concurrency=None if client == "gather" else CONCURRENCY,
                item_delay=ITEM_DELAY,
                expect_pages=plan.slow_pages,
            )
            run = runner.measure("slow-consumer", "slow", rep, job)
            log = _server_log(base_url)
            run.update(ahead_and_in_flight(log["arrivals"], log["departures"], run))


def _server_log(base_url: str) -> dict[str, list[float]]:
    with urllib.request.urlopen(f"{base_url}/_bench/log", timeout=10) as response:
        log: dict[str, list[float]] = json.loads(response.read())
    return log


def ahead_and_in_flight(
    arrivals: list[float], departures: list[float], run: dict[str, Any]
) -> dict[str, Any]:
    """The most requests the server had at once, and the most pages requested but not
    yet handed to the consumer, from the server's and the client's timestamps (one
    monotonic clock for every process)."""
    handoffs = sorted(run.pop("handoffs", None) or [])
    events = sorted([(t, 1) for t in arrivals] + [(t, -1) for t in departures])
    in_flight = max_in_flight = 0
    for _, step in events:
        in_flight += step
        max_in_flight = max(max_in_flight, in_flight)
    max_ahead = handed = 0
    for requested, arrival in enumerate(sorted(arrivals), start=1):
        while handed < len(handoffs) and handoffs[handed] <= arrival:
            handed += 1
        max_ahead = max(max_ahead, requested - handed)
    origin = min(arrivals, default=0.0)
    return {
        "max_in_flight": max_in_flight,
        "max_ahead": max_ahead,
        "server_requests": len(arrivals),
        # Raw timelines, in ms from the first request.
        "arrivals_ms": [round((t - origin) * 1000, 3) for t in sorted(arrivals)],
        "handoffs_ms": [round((t - origin) * 1000, 3) for t in handoffs],
    }


def run_sink(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """All users (sink_pages pages of 50, 50 ms per request, concurrency 16) into a
    JSON Lines file, a SQLite database and a PostgreSQL database, each run into a new
    file or database. PostgreSQL is a throwaway server with its default durability
    (fsync on), started here, unless ASYNCFETCH_TEST_POSTGRES_URL names one."""
    folder = tempfile.mkdtemp(prefix="asyncfetch-bench-sink-")
    try:
        with _postgres() as (postgres_url, on_server, with_database):
            for rep in range(plan.sink_reps):
                for backend in _shuffled(list(SINK_BACKENDS), rep):
                    database = f"bench_sink_{rep}"
                    if backend == "jsonl":
                        target = os.path.join(folder, f"users-{rep}.jsonl")
                    elif backend == "sqlite":
                        target = os.path.join(folder, f"sync-{rep}.db")
                    else:
                        on_server(postgres_url, f"CREATE DATABASE {database}")
                        target = with_database(postgres_url, database)
                    job = Job(
                        client="sink",
                        base_url=urls["sink"],
                        per_page=PER_PAGE,
                        concurrency=CONCURRENCY,
                        expect_pages=plan.sink_pages,
                        sink=target,
                    )
                    runner.measure("sink", backend, rep, job)
                    if backend == "postgresql":
                        on_server(postgres_url, f"DROP DATABASE {database} WITH (FORCE)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, Any, Any]]:
    """A PostgreSQL server's URL, with the helpers to make and drop its databases: the
    test suite's throwaway cluster (tests/postgres_cluster.py), made durable."""
    sys.path.insert(0, str(BENCHMARKS.parent))
    from tests.postgres_cluster import ENV, on_server, throwaway_cluster, with_database

    given = os.environ.get(ENV)
    if given:
        yield given, on_server, with_database
        return
    with throwaway_cluster(durable=True) as cluster:
        yield cluster.url, on_server, with_database


def _shared_pages(plan: Plan, limit: int) -> int:
    """Pages of each process's list (all users): 2 processes together fill about
    ``shared_windows`` windows, 4 processes twice as many."""
    return max(limit * plan.shared_windows // 2, 1)


def _bench_stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_bench/stats", timeout=10) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def run_shared(plan: Plan, urls: dict[str, str], runner: Runner) -> None:
    """2 and 4 processes on one token each fetch every user from ONE server enforcing
    its limit, all starting at the same window boundary; with the shared budget file,
    and with the headers alone. Judged by the server's own counters: requests per
    window, 429s."""
    cases = [
        (server, processes, mode)
        for server in plan.shared_servers
        for processes in plan.shared_processes
        for mode in SHARED_MODES
    ]
    for rep in range(plan.shared_reps):
        for server, processes, mode in _shuffled(cases, rep):
            limit, window = SHARED_SERVERS[server]
            base_url = urls[server]
            pages = _shared_pages(plan, limit)
            with tempfile.TemporaryDirectory() as state:
                _bench_stats(base_url)  # clears the counters
                # The processes start together on a window boundary, 1.5 s or more
                # away (their imports and the interpreter's start are done by then).
                start_at = float(math.ceil((time.time() + 1.5) / window) * window)
                job = Job(
                    client="asyncfetch",
                    base_url=base_url,
                    per_page=SHARED_PER_PAGE,
                    concurrency=SHARED_CONCURRENCY,
                    shared_budget=state if mode == "file" else None,
                    start_at=start_at,
                )
                results = _run_together(job, processes)
                server_stats = _bench_stats(base_url)
            run = _shared_run(server, processes, mode, rep, limit, window, pages, results)
            run["server"] = server_stats
            runner.runs.append(run)
            throttled = server_stats["statuses"].get("429", 0)
            print(
                f"[{time.monotonic() - runner.started:6.1f} s] shared         "
                f"{limit}/{window}s x{processes} {mode:<8} rep {rep + 1}: "
                f"{run.get('seconds', 0):.2f} s, {server_stats['requests']} requests, "
                f"{throttled} 429s" + (f" FAILED: {run['error']}" if run.get("error") else ""),
                file=sys.stderr,
                flush=True,
            )


def _run_together(job: Job, processes: int) -> list[dict[str, Any]]:
    """Run ``processes`` workers of ``job`` at once (``_worker.py`` from the command
    line, each a process of its own); their results, or their errors."""
    command = [sys.executable, str(BENCHMARKS / "_worker.py"), json.dumps(dataclasses.asdict(job))]
    started = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(processes)
    ]
    results = []
    for process in started:
        try:
            out, err = process.communicate(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        try:
            results.append(json.loads(out))
        except ValueError:
            results.append({"error": f"the worker failed: {err.decode()[-300:]}"})
    return results


def _shared_run(
    server: str,
    processes: int,
    mode: str,
    rep: int,
    limit: int,
    window: int,
    pages: int,
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    errors = [r["error"] for r in results if r.get("error")]
    delivered = [r.get("pages") for r in results]
    if not errors and delivered != [pages] * processes:
        errors.append(f"expected {pages} pages from each process, got {delivered}")
    return {
        "scenario": "shared",
        "case": f"{server} x{processes} {mode}",
        "client": "asyncfetch",
        "rep": rep,
        "server_name": server,
        "processes": processes,
        "mode": mode,
        "limit": limit,
        "window": window,
        "pages_per_process": pages,
        "pages": sum(r.get("pages") or 0 for r in results),
        "items": sum(r.get("items") or 0 for r in results),
        "seconds": max((r.get("seconds") or 0.0) for r in results),
        "cpu_seconds": sum((r.get("cpu_seconds") or 0.0) for r in results),
        "error": "; ".join(errors) or None,
    }


SCENARIOS = {
    "latency": run_latency,
    "rate": run_rate,
    "cpu": run_cpu,
    "cpu-small": run_cpu_small,
    "memory": run_memory,
    "slow-consumer": run_slow_consumer,
    "sink": run_sink,
    "shared": run_shared,
}
