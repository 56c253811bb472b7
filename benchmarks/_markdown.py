"""``results.md``: the targets first, then one table per scenario, ratios before raw figures."""

from __future__ import annotations

import math
import statistics
from typing import Any

from _scenarios import Plan
from _summary import fmt, secs


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(
    plan: Plan, summary: dict[str, Any], found: list[dict[str, Any]], info: dict[str, Any]
) -> str:
    reps = (
        f"latency {plan.latency_reps}, rate {plan.rate_reps}, CPU {plan.cpu_reps}, "
        f"CPU small pages {plan.cpu_small_reps}, "
        f"memory {plan.memory_reps}, slow consumer {plan.slow_reps}, sink {plan.sink_reps}, "
        f"shared budget {plan.shared_reps}"
    )
    command = info.get("command") or (
        "python benchmarks/run.py" + (" --quick" if plan.name == "quick" else "")
    )
    out = [
        f"# asyncfetch benchmarks ({plan.name} run)",
        "",
        f"`{command}` on {info['cpu_model']}, {info['cores']} cores, "
        f"{info['memory_gib']} GiB, {info['platform']}, Python {info['python']}, "
        f"asyncfetch {info['packages']['asyncfetch']} (git {info['git']}), "
        f"{info['finished_at']}. Each figure is the median of the runs "
        f"(repetitions: {reps}); every raw number is in `results.json`. Each client "
        "run is a fresh process; the server runs in another one; the two share the "
        f"machine's {info['cores']} cores (load average at the start: "
        f"{info['load_average_start']}, at the end: {info['load_average_end']}).",
        "",
        "## Targets",
        "",
    ]
    if plan.name == "quick":
        out += [
            "A quick run: smaller lists and one repetition, to check the harness end to "
            "end. The targets are judged on the full run (`benchmarks/results/`).",
            "",
        ]
    out += _table(
        ["target", "measured", "met"],
        [
            [t["target"], t["measured"], {True: "yes", False: "**no**", None: "—"}[t["met"]]]
            for t in found
        ],
        "llc",
    )
    out += _latency_md(summary["latency"])
    out += _rate_md(summary["rate"])
    out += _cpu_md(summary["cpu"])
    out += _cpu_md(summary.get("cpu_small", {}))
    out += _memory_md(summary["memory"])
    out += _slow_md(summary["slow_consumer"])
    out += _sink_md(summary.get("sink", {}))
    out += _shared_md(summary.get("shared", {}))
    return "\n".join(out) + "\n"


def _latency_md(latency: dict[str, Any]) -> list[str]:
    if not latency:
        return []
    out = [
        "",
        f"## Latency-bound: {latency['pages']} pages of {latency['per_page']}, "
        f"{latency['latency_ms']:g} ms per request",
        "",
        f"Limit = {latency['latency_ms']:g} ms x (1 + ⌈{latency['pages'] - 1} / concurrency⌉). "
        f"python-intercom 3.1.0 (sequential): {secs(latency['python_intercom_seconds'])} s; "
        f"naive gather (aiohttp's 100 connections): {secs(latency['gather_seconds'])} s. "
        "Times in seconds. Speed ÷ bare is the ratio of the medians and, in brackets, the "
        "median of each repetition's ratio (its two runs ran seconds apart).",
        "",
    ]
    rows = []
    for row in latency["rows"]:
        t, of = row["seconds"], row["of_limit"]
        rows.append(
            [
                str(row["concurrency"]),
                f"{fmt(row['speed_vs_bare'])} ({fmt(row['speed_vs_bare_paired'])})",
                fmt(of["asyncfetch"]),
                f"{fmt(row['speedup_vs_python_intercom'], 1)}x (target "
                f"{row['speedup_target']:g}x; at the limit "
                f"{fmt(row['best_possible_speedup'], 1)}x)",
                fmt(of["bare"]),
                fmt(of["aiometer"]),
                f"{row['limit_seconds']:.3f}",
                secs(t["asyncfetch"]),
                secs(t["bare"]),
                secs(t["aiometer"]),
            ]
        )
    out += _table(
        [
            "concurrency", "asyncfetch speed ÷ bare (paired)", "asyncfetch of limit",
            "speedup over python-intercom", "bare of limit", "aiometer of limit",
            "limit", "asyncfetch", "bare", "aiometer",
        ],
        rows,
    )  # fmt: skip
    return out


def _rate_md(rate: dict[str, Any]) -> list[str]:
    if not rate:
        return []
    out = [
        "",
        f"## Rate-bound: {rate['pages']} pages of {rate['per_page']}, the server enforces "
        f"{rate['limit']} requests per {rate['window_seconds']} s window",
        "",
        f"{rate['latency_ms']:g} ms per request; each run starts on a window boundary. "
        f"Ideal (pages ÷ limit) = {rate['ideal_seconds']:.2f} s; best possible "
        f"= {rate['best_seconds']:.2f} s (the last window opens "
        f"{math.ceil(rate['pages'] / rate['limit']) - 1} windows after the first; its requests "
        f"take ⌈{rate['limit']} / {rate['concurrency']}⌉ latencies). asyncfetch is given "
        "no rate: it reads `X-RateLimit-*`; aiometer gets `max_per_second` = the limit; "
        "bare and gather know no limit and retry each 429 after the window's reset.",
        "",
    ]
    rows = [
        [
            client,
            fmt(c["of_best"]),
            fmt(c["of_ideal"]),
            f"{c['throttled_total']} in {c['runs']} runs",
            secs(c["seconds"]),
            fmt(c["requests_median"], 0),
            f"{c['failures']} ({'; '.join(c['errors'])})" if c["failures"] else "0",
        ]
        for client, c in rate["clients"].items()
    ]
    out += _table(
        ["client", "of best possible", "of pages ÷ limit", "429s", "seconds", "requests",
         "failed runs"],
        rows,
    )  # fmt: skip
    return out


def _cpu_md(cpu: dict[str, Any]) -> list[str]:
    if not cpu:
        return []
    size = (
        f"{cpu['pages']:,} pages of {cpu['per_page']}"
        if cpu.get("pages")
        else (f"{cpu['per_page']} per page")
    )
    out = [
        "",
        f"## CPU-bound: user objects of ~1.4 KB, {size}, no latency",
        "",
        "CPU seconds (user + system) of the client process alone, over the fetch, per "
        "1,000 pages, and how many of them the cyclic garbage collector took. The library "
        "clients write every item as JSON Lines to /dev/null (python-intercom builds its "
        "`User` objects and writes nothing); `asyncfetch-cli` is `asyncfetch users --out "
        "FILE` run in process (imports excluded; its lock, checkpoints, final fsync and "
        "rename included) and `bare-jsonl` the bare loop writing the same JSON Lines into a "
        "file. `+uvloop`: on uvloop's event loop. CPU ÷ baseline: against the bare loop on "
        "the same event loop (`bare-jsonl` for the CLI); the ratio of the medians and, in "
        "brackets, the median of each repetition's ratio. ÷ bare on asyncio: against the "
        "baseline on asyncio's own loop, what changing the loop gains.",
        "",
    ]
    rows = [
        [
            client,
            c["baseline"],
            f"{fmt(c['vs_bare'], 3)} ({fmt(c['vs_bare_paired'], 3)})",
            f"{fmt(c['vs_bare_asyncio'], 3)} ({fmt(c['vs_bare_asyncio_paired'], 3)})",
            f"{c['cpu_per_1000_pages']:.3f}",
            f"{c['gc_per_1000_pages']:.3f}",
            f"{c['wall_per_1000_pages']:.3f}",
            f"{c['pages_per_run']:,}",
        ]
        for client, c in cpu["clients"].items()
    ]
    out += _table(
        ["client", "baseline", "CPU ÷ baseline (paired)", "÷ baseline on asyncio (paired)",
         "CPU s / 1,000 pages", "of which GC", "wall s / 1,000 pages", "pages per run"],
        rows,
        "llrrrrrr",
    )  # fmt: skip
    costs = [
        f"{fmt(cost['us_per_page'], 0)} µs per page on {loop} "
        f"({fmt((cost['share_of_cli'] or 0) * 100, 0)}% of the CLI's CPU)"
        for loop, cost in cpu.get("cli_cost", {}).items()
        if cost["us_per_page"] is not None
    ]
    if costs:
        out += [
            "",
            "The CLI's own cost (formatting and writing the file, checkpoints, progress and "
            "stats, option parsing, the loop's start and end): its CPU per page less the "
            "library's, paired by repetition: " + "; ".join(costs) + ".",
        ]
    return out


def _memory_md(memory: dict[str, Any]) -> list[str]:
    if not memory:
        return []
    sizes = memory["sizes"]
    out = [
        "",
        "## Memory: peak RSS of the client process, 1 user per page",
        "",
        f"Concurrency {memory['concurrency']} (asyncfetch's window: {memory['window']} "
        "pages). `asyncfetch-engine` is asyncfetch's engine (`ordered_pages` over its "
        "transport and Intercom page reader) without the 10,000-record cap; `asyncfetch` "
        "is `IntercomClient` itself, which refuses lists over 10,000 records. "
        "RSS after imports (before the fetch) is about "
        f"{_rss_before(memory):.0f} MiB in every run. MiB.",
        "",
    ]
    most_runs = max(
        (size["runs"] for c in memory["clients"].values() for size in c["sizes"].values()),
        default=0,
    )
    rows = []
    for client, c in memory["clients"].items():
        cells = [
            client,
            fmt(c["largest_over_smallest"], 3) + f" ({c['largest']:,} ÷ {c['smallest']:,})",
        ]
        for pages in sizes:
            size = c["sizes"].get(pages)
            if size is None:
                cells.append("—")
            else:
                runs = f" ({size['runs']} run{'s' * (size['runs'] > 1)})"
                cells.append(
                    f"{size['peak_rss_mib']:.1f}{runs if size['runs'] < most_runs else ''}"
                )
        rows.append(cells)
    out += _table(
        ["client", "peak at largest ÷ at smallest"] + [f"{pages:,} pages" for pages in sizes],
        rows,
    )
    return out


def _rss_before(memory: dict[str, Any]) -> float:
    values = [
        size["rss_before_mib"]
        for client in memory["clients"].values()
        for size in client["sizes"].values()
    ]
    return statistics.median(values) if values else 0.0


def _slow_md(slow: dict[str, Any]) -> list[str]:
    if not slow:
        return []
    out = [
        "",
        f"## Slow consumer: {slow['item_delay_ms']:g} ms per item",
        "",
        f"{slow['latency_ms']:g} ms per request, concurrency {slow['concurrency']} "
        f'(asyncfetch\'s window: {slow["window"]} pages). "Ahead": pages the server had '
        "been asked for but the client had not yet handed to the consumer (server's "
        'arrival times against the client\'s hand-over times); "in flight": requests the '
        "server held at once. Maxima over all runs.",
        "",
    ]
    rows = [
        [
            client,
            str(c["max_ahead"]),
            str(c["max_in_flight"]),
            str(c["pages"]),
            f"{c['peak_rss_mib']:.1f}",
            secs(c["seconds"]),
        ]
        for client, c in slow["clients"].items()
    ]
    out += _table(
        ["client", "max pages ahead", "max in flight", "pages", "peak RSS MiB", "seconds"], rows
    )
    return out


def _sink_md(sink: dict[str, Any]) -> list[str]:
    if not sink:
        return []
    users = sink["pages"] * sink["per_page"]
    out = [
        "",
        f"## Sink: {users:,} users into a file and into databases",
        "",
        f"All users ({sink['pages']} pages of {sink['per_page']}, {sink['latency_ms']:g} ms "
        f"per request, concurrency {sink['concurrency']}; the formula limit is "
        f"{sink['limit_seconds']:.2f} s) written as the CLI writes them: JSON Lines to a "
        "file (`--out`), or through the sink (`--db`) into a new SQLite file or a new "
        "PostgreSQL database (a throwaway server on a Unix socket, fsync on) each run. "
        "Throughput ÷ JSON Lines: the ratio of the medians and, in brackets, the median "
        "of each repetition's ratio.",
        "",
    ]
    rows = [
        [
            backend,
            f"{fmt(b['vs_jsonl'])} ({fmt(b['vs_jsonl_paired'])})",
            fmt(b["items_per_second"], 0),
            secs(b["seconds"]),
            fmt(b["cpu_seconds"], 3),
            f"{b['runs']} ({b['failures']} failed)",
        ]
        for backend, b in sink["backends"].items()
    ]
    out += _table(
        ["into", "throughput ÷ JSON Lines (paired)", "users/s", "seconds", "client CPU s",
         "runs"],
        rows,
    )  # fmt: skip
    errors = [e for b in sink["backends"].values() for e in b["errors"]]
    if errors:
        out += ["", "Failures: " + "; ".join(f"`{e}`" for e in errors[:3])]
    return out


def _shared_md(shared: dict[str, Any]) -> list[str]:
    if not shared:
        return []
    out = [
        "",
        "## Several processes, one token: a shared rate budget",
        "",
        "2 and 4 `asyncfetch` processes (`IntercomClient`, concurrency 8 each, pages of "
        f"{shared['per_page']}, 20 ms per request) each fetch every user from ONE server "
        "that enforces the limit, all starting on the same window boundary. *file*: "
        "`shared_budget=` (one lock-protected budget file); *headers*: nothing shared, "
        "each process adapts when `X-RateLimit-Remaining` falls faster than its own "
        "requests explain. Of the limit: requests served per window ÷ the limit, the "
        "first and last windows (partly filled: the processes start and finish in "
        "them) left out, from the server's own counters.",
        "",
    ]
    rows = [
        [
            f"{r['limit']} / {r['window']} s",
            str(r["processes"]),
            r["mode"],
            fmt(r["of_limit"]),
            f"{r['throttled_total']} of {r['requests_total']}",
            str(r["most_in_a_window"]),
            secs(r["seconds"]),
            f"{r['runs']} ({r['failures']} failed)",
        ]
        for r in shared["rows"]
    ]
    out += _table(
        ["limit", "processes", "mode", "of the limit", "429s", "most in a window", "seconds",
         "runs"],
        rows,
        "lrlrrrrr",
    )  # fmt: skip
    errors = [e for r in shared["rows"] for e in r["errors"]]
    if errors:
        out += ["", "Failures: " + "; ".join(f"`{e}`" for e in errors[:3])]
    return out
