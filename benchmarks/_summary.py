"""From the raw runs to the medians and ratios of each scenario, and the targets met."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from _scenarios import (
    CONCURRENCIES,
    CONCURRENCY,
    CPU_SMALL_PAGES,
    CPU_SMALL_PER_PAGE,
    ITEM_DELAY,
    LATENCY_MS,
    LOOPS,
    PER_PAGE,
    RATE_CONCURRENCY,
    RATE_LATENCY_MS,
    RATE_LIMIT,
    RATE_PER_PAGE,
    RATE_WINDOW,
    SHARED_PER_PAGE,
    SHARED_TARGET,
    SINK_BACKENDS,
    SINK_TARGET,
    Plan,
)

Run = dict[str, Any]
CLIENT_ORDER = (
    "asyncfetch",
    "asyncfetch+uvloop",
    "asyncfetch-cli",
    "asyncfetch-cli+uvloop",
    "asyncfetch-engine",
    "bare",
    "bare+uvloop",
    "bare-jsonl",
    "bare-jsonl+uvloop",
    "aiometer",
    "gather",
    "python-intercom",
)
CPU_TARGETS = {"cpu": 1.15, "cpu_small": 1.3}
"""The CPU per page each client may cost against its baseline (issue 12): 50-item pages
and 5-item pages."""


def baseline(client: str) -> str:
    """What a client's CPU is compared with: the bare loop on the same event loop, writing
    the same JSON Lines into a file for the CLI."""
    name, plus, loop = client.partition("+")
    base = "bare-jsonl" if name in ("asyncfetch-cli", "bare-jsonl") else "bare"
    return base + plus + loop


def _median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def _ok(runs: list[Run], **match: Any) -> list[Run]:
    return [
        run
        for run in runs
        if not run.get("error") and all(run.get(key) == value for key, value in match.items())
    ]


def _failures(runs: list[Run], **match: Any) -> int:
    return sum(
        1
        for run in runs
        if run.get("error") and all(run.get(key) == value for key, value in match.items())
    )


def _paired(runs: list[Run], value: str, over: str, under: str, **match: Any) -> list[float]:
    """``over``'s ``value`` divided by ``under``'s, repetition by repetition: the two ran
    within seconds of each other, so drift in the machine's load cancels out."""
    by_rep: dict[int, dict[str, float]] = {}
    for run in _ok(runs, **match):
        if run["client"] in (over, under):
            by_rep.setdefault(run["rep"], {})[run["client"]] = run[value] / run["pages"]
    return [pair[over] / pair[under] for pair in by_rep.values() if len(pair) == 2]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def secs(value: float | None) -> str:
    return "failed" if value is None else f"{value:.3f}"


def latency_limit(pages: int, concurrency: int) -> float:
    return LATENCY_MS / 1000 * (1 + math.ceil((pages - 1) / concurrency))


def rate_best_seconds(pages: int) -> float:
    """The least time for ``pages`` requests starting on a window boundary: the last of
    ceil(pages / limit) windows opens (windows - 1) windows later, and its requests
    need ceil(requests / concurrency) latencies."""
    windows = math.ceil(pages / RATE_LIMIT)
    last = pages - (windows - 1) * RATE_LIMIT
    rounds = math.ceil(last / RATE_CONCURRENCY)
    return (windows - 1) * RATE_WINDOW + rounds * RATE_LATENCY_MS / 1000


def summarise(plan: Plan, runs: list[Run]) -> dict[str, Any]:
    return {
        "latency": _latency(plan, [r for r in runs if r["scenario"] == "latency"]),
        "rate": _rate(plan, [r for r in runs if r["scenario"] == "rate"]),
        "cpu": _cpu([r for r in runs if r["scenario"] == "cpu"], PER_PAGE, None),
        "cpu_small": _cpu(
            [r for r in runs if r["scenario"] == "cpu-small"], CPU_SMALL_PER_PAGE, CPU_SMALL_PAGES
        ),
        "memory": _memory(plan, [r for r in runs if r["scenario"] == "memory"]),
        "slow_consumer": _slow([r for r in runs if r["scenario"] == "slow-consumer"]),
        "sink": _sink(plan, [r for r in runs if r["scenario"] == "sink"]),
        "shared": _shared([r for r in runs if r["scenario"] == "shared"]),
    }


def _seconds(runs: list[Run], **match: Any) -> float | None:
    return _median(run["seconds"] for run in _ok(runs, **match))


def _latency(plan: Plan, runs: list[Run]) -> dict[str, Any]:
    if not runs:
        return {}
    sequential = _seconds(runs, client="python-intercom")
    # The tag's size is the workspace's: the pages the runs fetched, not the plan's.
    pages = max((run["pages"] for run in _ok(runs)), default=plan.latency_pages)
    rows = []
    for c in CONCURRENCIES:
        limit = latency_limit(pages, c)
        times = {
            client: _seconds(runs, client=client, case=f"c={c}")
            for client in ("asyncfetch", "bare", "aiometer")
        }
        asyncfetch = times["asyncfetch"]
        by_rep = _paired(runs, "seconds", "bare", "asyncfetch", case=f"c={c}")
        rows.append(
            {
                "concurrency": c,
                "limit_seconds": limit,
                "seconds": times,
                "of_limit": {client: _ratio(limit, t) for client, t in times.items()},
                "speed_vs_bare": _ratio(times["bare"], asyncfetch),
                "speed_vs_bare_by_rep": by_rep,
                "speed_vs_bare_paired": _median(by_rep),
                "speedup_vs_python_intercom": _ratio(sequential, asyncfetch),
                "speedup_target": 0.9 * c,
                "best_possible_speedup": _ratio(sequential, limit),
                "failures": _failures(runs, case=f"c={c}"),
            }
        )
    return {
        "pages": pages,
        "latency_ms": LATENCY_MS,
        "per_page": PER_PAGE,
        "rows": rows,
        "python_intercom_seconds": sequential,
        "gather_seconds": _seconds(runs, client="gather"),
        "failures": {client: _failures(runs, client=client) for client in CLIENT_ORDER},
    }


def _rate(plan: Plan, runs: list[Run]) -> dict[str, Any]:
    if not runs:
        return {}
    ideal = plan.rate_pages / RATE_LIMIT * RATE_WINDOW
    best = rate_best_seconds(plan.rate_pages)
    clients = {}
    for client in CLIENT_ORDER:
        ok = _ok(runs, client=client)
        if not ok and not _failures(runs, client=client):
            continue
        seconds = _median(run["seconds"] for run in ok)
        clients[client] = {
            "seconds": seconds,
            "of_best": _ratio(best, seconds),
            "of_ideal": _ratio(ideal, seconds),
            "throttled_total": sum(run.get("throttled", 0) for run in ok),
            "throttled_median": _median(run.get("throttled", 0) for run in ok),
            "requests_median": _median(run.get("requests", 0) for run in ok),
            "runs": len(ok),
            "failures": _failures(runs, client=client),
            "errors": sorted({run["error"] for run in runs if run.get("error")})[:3],
        }
    return {
        "pages": plan.rate_pages,
        "per_page": RATE_PER_PAGE,
        "limit": RATE_LIMIT,
        "window_seconds": RATE_WINDOW,
        "latency_ms": RATE_LATENCY_MS,
        "concurrency": RATE_CONCURRENCY,
        "ideal_seconds": ideal,
        "best_seconds": best,
        "clients": clients,
    }


def _cpu(runs: list[Run], per_page: int, pages: int | None) -> dict[str, Any]:
    """CPU per page of each client, against its baseline (``baseline``) and against that
    baseline on asyncio's loop; the CLI's own cost per page (the CLI's CPU per page
    less the library's, paired by repetition, each loop)."""
    if not runs:
        return {}
    clients = {}
    for client in CLIENT_ORDER:
        ok = _ok(runs, client=client)
        if not ok:
            continue
        clients[client] = {
            "cpu_per_1000_pages": _median(r["cpu_seconds"] / r["pages"] * 1000 for r in ok),
            "gc_per_1000_pages": _median(r.get("gc_seconds", 0) / r["pages"] * 1000 for r in ok),
            "wall_per_1000_pages": _median(r["seconds"] / r["pages"] * 1000 for r in ok),
            "pages_per_run": ok[0]["pages"],
            "runs": len(ok),
            "failures": _failures(runs, client=client),
        }
    for client, figures in clients.items():
        base = baseline(client)
        base_asyncio = base.partition("+")[0]
        figures["baseline"] = base
        figures["vs_bare"] = _ratio(
            figures["cpu_per_1000_pages"], clients.get(base, {}).get("cpu_per_1000_pages")
        )
        figures["vs_bare_by_rep"] = _paired(runs, "cpu_seconds", client, base)
        figures["vs_bare_paired"] = 1.0 if client == base else _median(figures["vs_bare_by_rep"])
        figures["vs_bare_asyncio"] = _ratio(
            figures["cpu_per_1000_pages"],
            clients.get(base_asyncio, {}).get("cpu_per_1000_pages"),
        )
        figures["vs_bare_asyncio_paired"] = (
            1.0
            if client == base_asyncio
            else _median(_paired(runs, "cpu_seconds", client, base_asyncio))
        )
    cli_cost = {}
    for loop in LOOPS:
        plus = "" if loop == "asyncio" else "+" + loop
        by_rep = _differences(runs, "asyncfetch-cli" + plus, "asyncfetch" + plus)
        cli_ms = clients.get("asyncfetch-cli" + plus, {}).get("cpu_per_1000_pages")
        cli_cost[loop] = {
            "us_per_page_by_rep": by_rep,
            "us_per_page": _median(by_rep),
            # µs per page over the CLI's µs per page (its seconds per 1,000 pages x 1e3).
            "share_of_cli": _ratio(_median(by_rep), cli_ms * 1000 if cli_ms else None),
        }
    return {
        "per_page": per_page,
        "pages": pages,
        "concurrency": CONCURRENCY,
        "clients": clients,
        "cli_cost": cli_cost,
    }


def _differences(runs: list[Run], over: str, under: str) -> list[float]:
    """``over``'s CPU per page less ``under``'s, in µs, repetition by repetition."""
    by_rep: dict[int, dict[str, float]] = {}
    for run in _ok(runs):
        if run["client"] in (over, under):
            by_rep.setdefault(run["rep"], {})[run["client"]] = run["cpu_seconds"] / run["pages"]
    return [(pair[over] - pair[under]) * 1e6 for pair in by_rep.values() if len(pair) == 2]


def _memory(plan: Plan, runs: list[Run]) -> dict[str, Any]:
    if not runs:
        return {}
    clients: dict[str, Any] = {}
    for client in CLIENT_ORDER:
        by_size = {}
        for pages in plan.memory_sizes:
            ok = _ok(runs, client=client, case=str(pages))
            if ok:
                by_size[pages] = {
                    "peak_rss_mib": _median(r["rss_peak_kib"] for r in ok) / 1024,
                    "rss_before_mib": _median(r["rss_before_kib"] for r in ok) / 1024,
                    "seconds": _median(r["seconds"] for r in ok),
                    "runs": len(ok),
                }
        if by_size:
            smallest, largest = min(by_size), max(by_size)
            clients[client] = {
                "sizes": by_size,
                "largest_over_smallest": _ratio(
                    by_size[largest]["peak_rss_mib"], by_size[smallest]["peak_rss_mib"]
                ),
                "smallest": smallest,
                "largest": largest,
            }
    return {
        "per_page": 1,
        "sizes": list(plan.memory_sizes),
        "concurrency": CONCURRENCY,
        "window": 2 * CONCURRENCY,
        "clients": clients,
    }


def _slow(runs: list[Run]) -> dict[str, Any]:
    if not runs:
        return {}
    clients = {}
    for client in CLIENT_ORDER:
        ok = _ok(runs, client=client)
        if not ok:
            continue
        clients[client] = {
            "max_ahead": max(r["max_ahead"] for r in ok),
            "max_in_flight": max(r["max_in_flight"] for r in ok),
            "pages": ok[0]["pages"],
            "seconds": _median(r["seconds"] for r in ok),
            "peak_rss_mib": _median(r["rss_peak_kib"] for r in ok) / 1024,
            "runs": len(ok),
        }
    return {
        "item_delay_ms": ITEM_DELAY * 1000,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "window": 2 * CONCURRENCY,
        "clients": clients,
    }


def _sink(plan: Plan, runs: list[Run]) -> dict[str, Any]:
    """Each backend's throughput (items per second) against the JSON Lines run's: the
    ratio of the medians, and the median of each repetition's ratio."""
    if not runs:
        return {}
    throughput = {
        backend: _median(r["items"] / r["seconds"] for r in _ok(runs, case=backend))
        for backend in SINK_BACKENDS
    }
    by_rep: dict[int, dict[str, float]] = {}
    for run in _ok(runs):
        by_rep.setdefault(run["rep"], {})[run["case"]] = run["items"] / run["seconds"]
    backends = {}
    for backend in SINK_BACKENDS:
        ok = _ok(runs, case=backend)
        paired = [pair[backend] / pair["jsonl"] for pair in by_rep.values()
                  if backend in pair and "jsonl" in pair]  # fmt: skip
        backends[backend] = {
            "items_per_second": throughput[backend],
            "seconds": _median(r["seconds"] for r in ok),
            "cpu_seconds": _median(r["cpu_seconds"] for r in ok),
            "vs_jsonl": _ratio(throughput[backend], throughput["jsonl"]),
            "vs_jsonl_by_rep": paired,
            "vs_jsonl_paired": _median(paired),
            "items": ok[0]["items"] if ok else None,
            "runs": len(ok),
            "failures": _failures(runs, case=backend),
            "errors": sorted({r["error"] for r in runs if r.get("error") and r["case"] == backend}),
        }
    return {
        "pages": plan.sink_pages,
        "per_page": PER_PAGE,
        "latency_ms": LATENCY_MS,
        "concurrency": CONCURRENCY,
        "limit_seconds": latency_limit(plan.sink_pages, CONCURRENCY),
        "backends": backends,
    }


def shared_figures(run: Run) -> dict[str, Any]:
    """One shared-budget run, as the server counted it: requests served per window
    over the limit, 429s over requests. The first and the last window are left out
    when there are more: the processes start and finish in them, so they are partly
    filled whatever the client does."""
    limit = run["limit"]
    counts = [count for _, count in run["server"]["windows"]]
    full = counts[1:-1] or counts
    requests = run["server"]["requests"]
    throttled = run["server"]["statuses"].get("429", 0)
    return {
        "of_limit": statistics.mean(min(c, limit) for c in full) / limit if full else None,
        "throttled": throttled,
        "requests": requests,
        "throttled_share": throttled / requests if requests else None,
        "most_in_a_window": max(counts, default=0),
        "windows": len(counts),
    }


def _shared(runs: list[Run]) -> dict[str, Any]:
    """Each (server, processes, mode): the medians of its runs' figures."""
    if not runs:
        return {}
    rows = []
    for case in sorted({r["case"] for r in runs}):
        of_case = [r for r in runs if r["case"] == case]
        ok = [shared_figures(r) for r in of_case if not r.get("error")]
        first = of_case[0]
        rows.append(
            {
                "case": case,
                "limit": first["limit"],
                "window": first["window"],
                "processes": first["processes"],
                "mode": first["mode"],
                "pages_per_process": first["pages_per_process"],
                "of_limit": _median(f["of_limit"] for f in ok if f["of_limit"] is not None),
                "throttled_share": _median(
                    f["throttled_share"] for f in ok if f["throttled_share"] is not None
                ),
                "throttled_total": sum(f["throttled"] for f in ok),
                "requests_total": sum(f["requests"] for f in ok),
                "most_in_a_window": max((f["most_in_a_window"] for f in ok), default=None),
                "seconds": _median(r["seconds"] for r in of_case if not r.get("error")),
                "runs": len(ok),
                "failures": sum(1 for r in of_case if r.get("error")),
                "errors": sorted({r["error"] for r in of_case if r.get("error")}),
            }
        )
    return {
        "per_page": SHARED_PER_PAGE,
        "target_of_limit": SHARED_TARGET,
        "rows": rows,
    }


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(name: str, measured: str, met: bool | None) -> None:
        found.append({"target": name, "measured": measured, "met": met})

    # Against the bare loop, two estimates: the ratio of the medians, and the median of
    # the ratios of each repetition's pair of runs. The target is judged on the worse.
    latency = summary["latency"]
    for row in latency.get("rows", []):
        c, ratio, paired = row["concurrency"], row["speed_vs_bare"], row["speed_vs_bare_paired"]
        of_limit = row["of_limit"]["asyncfetch"]
        add(
            f"latency-bound c={c}: ≥ 0.95 of the bare loop's speed",
            f"{fmt(ratio)} of bare (paired: {fmt(paired)}; {fmt(of_limit)} of the formula limit)",
            None if ratio is None or paired is None else min(ratio, paired) >= 0.95,
        )
    for row in latency.get("rows", []):
        c, speedup = row["concurrency"], row["speedup_vs_python_intercom"]
        add(
            f"latency-bound c={c}: speedup over python-intercom ≥ 0.9 x {c} = {0.9 * c:g}",
            f"{fmt(speedup, 1)}x (at the formula limit: {fmt(row['best_possible_speedup'], 1)}x)",
            None if speedup is None else speedup >= 0.9 * c,
        )
    rate = summary["rate"].get("clients", {}).get("asyncfetch")
    if rate:
        add(
            "rate-bound: ≥ 0.95 of the limit, zero 429s, no rate option",
            f"{fmt(rate['of_best'])} of the best possible, {fmt(rate['of_ideal'])} of "
            f"pages ÷ limit; {rate['throttled_total']} 429s in {rate['runs']} runs",
            rate["of_best"] is not None
            and rate["of_best"] >= 0.95
            and rate["throttled_total"] == 0
            and not rate["failures"],
        )
    for key, size in (("cpu", "50-item"), ("cpu_small", "5-item")):
        cpu = summary.get(key, {})
        for client, what in (("asyncfetch", "library"), ("asyncfetch-cli", "CLI")):
            for loop in LOOPS:
                name = client + ("" if loop == "asyncio" else "+" + loop)
                figures = cpu.get("clients", {}).get(name)
                if not figures:
                    continue
                by_rep = sorted(figures["vs_bare_by_rep"])
                spread = f", by repetition {by_rep[0]:.2f}-{by_rep[-1]:.2f}" if by_rep else ""
                ratio, paired, limit = (
                    figures["vs_bare"],
                    figures["vs_bare_paired"],
                    CPU_TARGETS[key],
                )
                add(
                    f"CPU, {size} pages, the {what} on {loop}: ≤ {limit}x {figures['baseline']}",
                    f"{fmt(ratio, 3)}x (paired: {fmt(paired, 3)}x{spread}; "
                    f"{figures['cpu_per_1000_pages'] * 1000:.0f} µs per page)",
                    None if ratio is None or paired is None else max(ratio, paired) <= limit,
                )
    memory = summary["memory"].get("clients", {})
    engine = memory.get("asyncfetch-engine")
    if engine:
        gather = memory.get("gather", {}).get("largest_over_smallest")
        add(
            f"memory: peak RSS at {engine['largest']:,} pages within 10% of that at "
            f"{engine['smallest']:,} (the gather baseline grows)",
            f"{fmt(engine['largest_over_smallest'], 3)}x (gather: {fmt(gather)}x)",
            engine["largest_over_smallest"] is not None and engine["largest_over_smallest"] <= 1.10,
        )
    slow = summary["slow_consumer"]
    asyncfetch = slow.get("clients", {}).get("asyncfetch")
    if asyncfetch:
        add(
            f"slow consumer: pages requested ahead ≤ window ({slow['window']}), "
            f"in flight ≤ concurrency ({slow['concurrency']})",
            f"{asyncfetch['max_ahead']} ahead, {asyncfetch['max_in_flight']} in flight "
            f"(of {asyncfetch['pages']} pages)",
            asyncfetch["max_ahead"] <= slow["window"]
            and asyncfetch["max_in_flight"] <= slow["concurrency"],
        )
    sink = summary.get("sink", {})
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    for backend, name in names.items():
        figures = sink.get("backends", {}).get(backend)
        if not figures:
            continue
        ratio, paired = figures["vs_jsonl"], figures["vs_jsonl_paired"]
        add(
            f"sink: {sink['pages'] * sink['per_page']:,} users into {name} at ≥ "
            f"{SINK_TARGET} of the JSON Lines run's throughput",
            f"{fmt(ratio)} (paired: {fmt(paired)}; {fmt(figures['items_per_second'], 0)} "
            f"users/s, {figures['failures']} failed runs)",
            None
            if ratio is None or paired is None
            else min(ratio, paired) >= SINK_TARGET and not figures["failures"],
        )
    modes = {"file": "a shared budget file", "headers": "the headers alone (adaptive)"}
    for row in summary.get("shared", {}).get("rows", []):
        share = row["throttled_share"]
        add(
            f"shared budget: {row['processes']} processes, {row['limit']} per "
            f"{row['window']} s, {modes[row['mode']]}: ≥ {SHARED_TARGET} of the limit, "
            "429s ≤ 1% of requests, every record",
            f"{fmt(row['of_limit'])} of the limit; {row['throttled_total']} 429s in "
            f"{row['requests_total']} requests; at most {row['most_in_a_window']} in a "
            f"window; {row['failures']} failed runs",
            None
            if row["of_limit"] is None or share is None
            else row["of_limit"] >= SHARED_TARGET and share <= 0.01 and not row["failures"],
        )
    return found
