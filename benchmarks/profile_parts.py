"""Where a client's CPU per page goes, by part of the hot path: cProfile's own time of
every function, summed by the module it lives in.

    python benchmarks/_serve.py --port 8001 --users 9000 --rate-limit 1000000000 &
    python benchmarks/profile_parts.py '{"client": "asyncfetch", "base_url":
        "http://127.0.0.1:8001", "per_page": 5, "lists": 3, "expect_pages": 1800}'

The job is ``_worker.py``'s (any client, ``"loop": "uvloop"`` too); only the
fetch is profiled (``_worker.run``), not the imports. cProfile slows Python
functions more than C ones, so the parts are shares of a profiled run, in µs
per page of that run: good for comparing two versions of one part, not for
absolute costs (``callgrind.py`` counts those).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from collections import defaultdict

import _worker
import orjson
from _clients import Job

# (part, substring of the function's file or name), first match wins.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "JSON (_json.loads: exact-integer check, orjson.loads)",
        ("asyncfetch/_json.py", "orjson.loads", "method 'translate'"),
    ),
    ("rate budget (_http/_ratelimit.py)", ("asyncfetch/_http/_ratelimit.py",)),
    ("transport (_http/_transport.py: gate, retries, stats)", ("asyncfetch/_http/_transport.py",)),
    ("Intercom pages (_intercom/: URL, page reading)", ("asyncfetch/_intercom/",)),
    ("engine, listing, dedupe (_core/)", ("asyncfetch/_core/",)),
    (
        "writing (_cli/ export, formats, checkpoint; orjson.dumps, file writes)",
        ("asyncfetch/_cli/", "orjson.dumps", "BufferedWriter", "posix.", "io.open"),
    ),
    ("aiohttp (request, response, connection pool)", ("aiohttp/", "multidict", "yarl/")),
    (
        "event loop (asyncio, uvloop, sockets, tasks)",
        ("asyncio/", "uvloop", "_socket", "select.", "_asyncio", "Context' objects"),
    ),
    ("benchmark consumer (_clients.py)", ("benchmarks/_clients.py",)),
)


def main() -> None:
    job = Job(**orjson.loads(sys.argv[1]))
    profile = cProfile.Profile()
    profile.enable()
    result = _worker.run(job)
    profile.disable()
    if result["error"]:
        raise SystemExit(result["error"])
    pages = result["pages"]
    stats = pstats.Stats(profile)
    parts: dict[str, float] = defaultdict(float)
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename} {name}"
        part = next((p for p, keys in PARTS if any(k in where for k in keys)), "other")
        parts[part] += own
    total = sum(parts.values())
    print(f"{job.client} on {job.loop}, {job.per_page}-item pages, {pages} pages: "
          f"{total / pages * 1e6:.0f} µs per page profiled\n")  # fmt: skip
    print("| part | µs per page | share |")
    print("| --- | ---: | ---: |")
    for part, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {seconds / pages * 1e6:.1f} | {seconds / total:.0%} |")


if __name__ == "__main__":
    main()
