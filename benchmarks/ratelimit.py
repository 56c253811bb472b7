"""Rate-bound fetch: the server enforces and advertises a limit per window.

No ``rate`` is given to the client: it must learn the budget from the
``X-RateLimit-*`` headers, spend it fully and never trip it. The ideal is
``pages / limit`` windows; the first window may be partly spent already.

    .venv/bin/python benchmarks/ratelimit.py [--pages 500] [--limit 50] [--window 1]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _common import bundled_server

from asyncfetch import IntercomClient, Retries


async def fetch(base_url: str, pages: int, concurrency: int) -> tuple[float, int, int, int]:
    client = IntercomClient(
        token="bench", base_url=base_url, per_page=10, concurrency=concurrency,
        retries=Retries(attempts=10, max_wait=None),
    )  # fmt: skip
    async with client:
        started = time.perf_counter()
        got = 0
        async for _page in client.users().pages():
            got += 1
        seconds = time.perf_counter() - started
    if got != pages:
        raise RuntimeError(f"expected {pages} pages, got {got}")
    stats = client.stats
    return seconds, stats.requests, stats.statuses[429], stats.rate_limit_pauses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--limit", type=int, default=50, help="requests per window")
    parser.add_argument("--window", type=int, default=1, help="window length in seconds")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    server_options = (
        "--users", str(args.pages * 10), "--latency-ms", "20",
        "--rate-limit", str(args.limit), "--rate-window", str(args.window),
    )  # fmt: skip
    with bundled_server(*server_options) as base_url:
        seconds, requests, throttled, pauses = asyncio.run(
            fetch(base_url, args.pages, args.concurrency)
        )
    ideal = args.pages / args.limit * args.window
    print(
        f"{args.pages} pages, limit {args.limit} per {args.window} s window, "
        f"concurrency {args.concurrency}, no --rate"
    )
    print("| seconds | ideal (pages / limit) | of ideal | requests | 429s | pauses |")
    print("|---:|---:|---:|---:|---:|---:|")
    cells = [
        f"{seconds:.2f}",
        f"{ideal:.2f}",
        f"{ideal / seconds:.2f}",
        requests,
        throttled,
        pauses,
    ]
    print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
