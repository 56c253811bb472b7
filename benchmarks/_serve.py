"""The bundled server as the benchmarks run it: ``asyncfetch serve`` plus two knobs.

    python benchmarks/_serve.py --port P --users N [--latency-ms MS]
        [--rate-limit N --rate-window S] [--page-cap RECORDS] [--log-requests]
        [--stats-endpoint]

It is the same ``IntercomServer`` that ``asyncfetch serve`` runs, in a process
of its own, with what the CLI does not expose:

- ``--page-cap``: the record index past which page-numbered listing is refused
  (``ServerConfig.page_cap_records``, 10,000 like Intercom by default). The
  memory scenario lists 50,000 pages of one user each, so it lifts the cap.
- ``--log-requests``: record when each list request arrived and left
  (``time.monotonic()``, one clock for every process of the machine), served
  at ``GET /_bench/log`` (which also clears it). The slow-consumer scenario
  compares these with the client's own timestamps to count the pages requested
  ahead of the consumer, with the server still in its own process.
- ``--stats-endpoint``: the server's own counters (statuses, and requests per
  rate window, 429s included) at ``GET /_bench/stats`` (which also clears
  them). The shared-budget scenario judges its runs by them.

``/_bench/*`` is answered by an outer middleware before the server's own
(no latency, no authentication, not counted against the rate limit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

import orjson
from aiohttp import web

from asyncfetch.testing import IntercomServer, ServerConfig


class RequestLog:
    """Arrival and departure times of the list requests, for ``/_bench/log``."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.departures: list[float] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: web.Handler) -> web.StreamResponse:
        if request.path.startswith("/_bench/"):
            body = orjson.dumps({"arrivals": self.arrivals, "departures": self.departures})
            self.arrivals, self.departures = [], []
            return web.Response(body=body, content_type="application/json")
        self.arrivals.append(time.monotonic())
        try:
            return await handler(request)
        finally:
            self.departures.append(time.monotonic())


def stats_middleware(server: IntercomServer) -> web.Middleware:
    """Answers ``GET /_bench/stats`` with the server's counters, then clears them."""

    @web.middleware
    async def middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        if request.path != "/_bench/stats":
            return await handler(request)
        stats = server.stats
        body = orjson.dumps(
            {
                "requests": stats.requests,
                "statuses": {str(k): v for k, v in stats.statuses.items()},
                "windows": sorted(stats.windows.items()),
            }
        )
        stats.reset()
        return web.Response(body=body, content_type="application/json")

    return middleware


async def serve(
    config: ServerConfig, host: str, port: int, *, log_requests: bool, stats_endpoint: bool = False
) -> None:
    server = IntercomServer(config)
    if stats_endpoint:
        server.app.middlewares.insert(0, stats_middleware(server))
    if log_requests:
        # Outermost, so /_bench/* never meets the latency, the auth or the rate limit.
        server.app.middlewares.insert(0, RequestLog().middleware)
    await server.start(host, port)
    stop = asyncio.Event()
    # SIGTERM (how the runner stops it) ends the process quietly.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        print(f"listening on {server.base_url}", flush=True)
        await stop.wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--rate-window", type=int, default=10)
    parser.add_argument("--page-cap", type=int, default=10_000)
    parser.add_argument("--log-requests", action="store_true")
    parser.add_argument("--stats-endpoint", action="store_true")
    args = parser.parse_args()
    config = ServerConfig(
        users=args.users,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window,
        page_cap_records=args.page_cap,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                config,
                args.host,
                args.port,
                log_requests=args.log_requests,
                stats_endpoint=args.stats_endpoint,
            )
        )


if __name__ == "__main__":
    main()
