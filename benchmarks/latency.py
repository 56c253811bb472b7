"""Latency-bound fetch: 100 pages at 50 ms per request, asyncfetch against its limit.

Starts ``asyncfetch serve`` in its own process (so the server's CPU is not the
client's), then fetches the users of the largest tag (100 pages of 50) with
concurrency 1 (sequential, what every other Intercom client does) and with the
chosen concurrencies, interleaved, several repetitions, and prints medians as
ratios: against the formula limit ``latency * (1 + ceil(99 / concurrency))``
and as speedup over the sequential fetch of the same run.

    .venv/bin/python benchmarks/latency.py [--repeat 5] [--concurrency 10 16]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time

from _common import bundled_server

from asyncfetch import IntercomClient

USERS = 10_000  # the largest tag holds half of them: 5,000 users, 100 pages of 50
TAG_ID = "100003"
LATENCY_MS = 50.0
PAGES = 100


async def fetch_seconds(base_url: str, concurrency: int) -> float:
    async with IntercomClient(token="bench", base_url=base_url, concurrency=concurrency) as client:
        started = time.perf_counter()
        pages = 0
        async for _page in client.users(tag_id=TAG_ID).pages():
            pages += 1
        seconds = time.perf_counter() - started
    if pages != PAGES:
        raise RuntimeError(f"expected {PAGES} pages, got {pages}")
    return seconds


async def run(base_url: str, concurrencies: list[int], repeat: int) -> dict[int, list[float]]:
    times: dict[int, list[float]] = {c: [] for c in [1, *concurrencies]}
    for _ in range(repeat):
        for concurrency in times:  # interleaved, so drift hits every case alike
            times[concurrency].append(await fetch_seconds(base_url, concurrency))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 10, 16])
    args = parser.parse_args()
    with bundled_server("--users", str(USERS), "--latency-ms", str(LATENCY_MS)) as base_url:
        times = asyncio.run(run(base_url, args.concurrency, args.repeat))
    sequential = statistics.median(times[1])
    print(f"{PAGES} pages, {LATENCY_MS:g} ms latency, median of {args.repeat}")
    print("| concurrency | median s | limit s | of limit | speedup vs sequential |")
    print("|---:|---:|---:|---:|---:|")
    for concurrency, samples in times.items():
        median = statistics.median(samples)
        limit = LATENCY_MS / 1000 * (1 + math.ceil((PAGES - 1) / concurrency))
        print(
            f"| {concurrency} | {median:.3f} | {limit:.3f} | {limit / median:.2f} "
            f"| {sequential / median:.1f}x |"
        )


if __name__ == "__main__":
    main()
