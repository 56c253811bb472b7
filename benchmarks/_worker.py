"""Run one client once, in a process of its own, and report what it measured.

    python benchmarks/_worker.py '{"client": "asyncfetch", "base_url": "http://...", ...}'

The runner makes a new process per measurement, forked from a fork server
(``multiprocessing``'s "forkserver") that imported this module, and so every
library any client uses, once: each run starts from the same clean state, no
event loop has ever run in it, its memory and CPU are its own (the server
runs in another process, and so does the runner), and starting it costs a
fork rather than 0.4 s of imports. Run from the command line, it takes the
job as JSON and prints the result (to profile one client run alone).

Measured, over the fetch alone (imports and interpreter start-up excluded):
wall seconds (``time.perf_counter``); CPU seconds of this process
(``time.process_time``: user + system, all threads), and how many of them the
cyclic garbage collector took (``gc.callbacks``); the peak resident set size
before and after (``getrusage(RUSAGE_SELF).ru_maxrss``).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import resource
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

import intercom.client  # noqa: F401  (imported by every run alike, used by one client)
import orjson
import uvloop
from _clients import ASYNC_CLIENTS, SYNC_CLIENTS, Consumer, Job

import asyncfetch._cli  # noqa: F401  (the CLI's modules, click and rich: imported once, too)


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def wait_for_window(seconds: int) -> None:
    """Sleep until just after the next boundary of the server's rate windows (aligned to
    the epoch), so the run starts with a whole, unspent window."""
    now = time.time()
    time.sleep(math.ceil(now / seconds) * seconds - now + 0.005)


class Clock:
    """Wall and CPU seconds of the ``with`` block (up to the failure, if it fails), and
    the CPU seconds the cyclic garbage collector took meanwhile."""

    seconds = cpu_seconds = gc_seconds = 0.0
    gc_collections = 0

    def __enter__(self) -> None:
        gc.callbacks.append(self._gc)
        self._started, self._cpu_started = time.perf_counter(), time.process_time()

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = time.perf_counter() - self._started
        self.cpu_seconds = time.process_time() - self._cpu_started
        gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            self.gc_seconds += time.process_time() - self._gc_started
            self.gc_collections += 1


async def _timed(fetch: Coroutine[Any, Any, None], clock: Clock) -> None:
    # Timed inside the loop: the loop's own start and shutdown are no client's work.
    with clock:
        await fetch


def _runner(loop: str) -> asyncio.Runner:
    """``asyncio.run``'s runner on asyncio's own loop or on uvloop's."""
    if loop == "uvloop":
        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    if loop != "asyncio":
        raise ValueError(f"unknown loop {loop!r}")
    return asyncio.Runner()


def run(job: Job) -> dict[str, Any]:
    rss_before = peak_rss_kib()
    result: dict[str, Any] = {"error": None}
    with open(os.devnull, "wb") as out:
        consumer = Consumer(out, job.item_delay)
        if job.align_window:
            wait_for_window(job.align_window)
        if job.start_at is not None:
            time.sleep(max(job.start_at - time.time(), 0.0))
        clock = Clock()
        try:
            if job.client in SYNC_CLIENTS:
                with clock:
                    SYNC_CLIENTS[job.client](job, consumer)
            else:
                with _runner(job.loop) as runner:
                    runner.run(_timed(ASYNC_CLIENTS[job.client](job, consumer), clock))
        except Exception as exc:  # reported, not hidden: the table shows the failure
            result["error"] = f"{type(exc).__name__}: {exc}"[:300]
        result["seconds"] = clock.seconds
        result["cpu_seconds"] = clock.cpu_seconds
        result["gc_seconds"] = clock.gc_seconds
        result["gc_collections"] = clock.gc_collections
    counts = consumer.counts
    if result["error"] is None and job.expect_pages is not None:
        expected = job.expect_pages * job.lists
        if counts.pages != expected:
            result["error"] = f"expected {expected} pages, got {counts.pages}"
    result.update(asdict(counts))
    result["rss_before_kib"] = rss_before
    result["rss_peak_kib"] = peak_rss_kib()
    return result


def run_and_send(job: dict[str, Any], connection: Connection) -> None:
    """The runner's entry point: a process forked from its fork server, which imported
    this module (and so every library) once; the result goes back on ``connection``."""
    connection.send_bytes(orjson.dumps(run(Job(**job))))
    connection.close()


def main() -> None:
    """Run the job given as JSON on the command line (to profile one client run alone)."""
    job = Job(**orjson.loads(sys.argv[1]))
    sys.stdout.buffer.write(orjson.dumps(run(job)) + b"\n")


if __name__ == "__main__":
    main()
