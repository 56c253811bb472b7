"""Instructions per page of each client, counted by callgrind: repeatable on a busy machine.

    python benchmarks/callgrind.py                       # 5-item pages, every client, both loops
    python benchmarks/callgrind.py --per-page 50 --clients asyncfetch bare --loops uvloop

Wall-clock and even CPU seconds swing by 30% when other work shares the
cores; the instructions a process executes do not. Each client run of
``_worker.py`` runs under ``valgrind --tool=callgrind`` twice, fetching the
list ``--lists`` (default 1) and ``--lists + --more`` (default 3) times; the
difference of the two instruction counts, divided by the extra pages, is the
cost of a page with the start-up (interpreter, imports, first connection)
taken out. Counts for the client process only; the bundled server runs
outside valgrind, in a process of its own (``_serve.py``), and answers far
faster than the client under valgrind asks, so every response is waiting
when the client reads: a CPU-bound run, as in the CPU scenarios.

``asyncfetch-cli`` is the command in process (``_clients.run_cli``), whose
baseline is ``bare-jsonl``; ``asyncfetch`` (the library) is compared with
``bare``. The result is printed as a Markdown table and written as JSON to
``--out`` if given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import BENCHMARKS, ServerSpec, bench_servers

CLIENTS = ("asyncfetch", "bare", "asyncfetch-cli", "bare-jsonl")
BASELINE = {"asyncfetch": "bare", "asyncfetch-cli": "bare-jsonl"}


# Parts of a page's instructions, by where callgrind found them: the function's
# name first (the garbage collector lives in the interpreter), then its ELF object.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("garbage collector", ("fn:gc_", "fn:visit_", "fn:subtract_refs", "fn:move_", "fn:update_refs",
                           "fn:deduce_unreachable", "fn:_PyObject_GC_", "fn:gc_collect")),
    ("orjson (parse, serialise)", ("ob:/orjson/",)),
    ("_json.py's exact-integer check (bytes.translate)", ("fn:bytes_translate",)),
    ("uvloop and libuv", ("ob:/uvloop/",)),
    ("aiohttp, multidict, yarl, propcache C extensions",
     ("ob:/aiohttp/", "ob:/multidict/", "ob:/yarl/", "ob:/propcache/", "ob:/frozenlist/")),
    ("libc (memory, bytes, system call wrappers)", ("ob:/libc.", "ob:/libm.", "ob:/ld-linux")),
    ("CPython: the interpreter running Python code, its objects, its C modules", ("ob:/",)),
)  # fmt: skip


def _part(obj: str, fn: str) -> str:
    """The part of ``PARTS`` a function belongs to, by its name, else by its object's
    path (site-packages/uvloop/loop.cpython-311-….so is uvloop's)."""
    for part, keys in PARTS:
        for key in keys:
            kind, _, text = key.partition(":")
            if fn.startswith(text) if kind == "fn" else text in obj:
                return part
    return "other"


def _by_part(out: str) -> dict[str, int]:
    """Exclusive instructions by part, from a callgrind output file (name compression
    and call lines as documented in valgrind's "Callgrind Format Specification")."""
    names: dict[str, str] = {}
    parts: dict[str, int] = {}
    obj = fn = ""
    skip_next = False

    def name(value: str) -> str:
        value = value.strip()
        if value.startswith("("):
            key, _, rest = value.partition(")")
            if rest.strip():
                names[key] = rest.strip()
            return names.get(key, "")
        return value

    current = ""
    with open(out) as file:
        for line in file:
            if line.startswith("ob="):
                obj = name(line[3:])
            elif line.startswith("fn="):
                fn = name(line[3:])
                current = _part(obj, fn)
            elif line.startswith(("cob=", "cfn=", "cfi=", "cfl=")):
                if line.startswith(("cob=", "cfn=")):
                    name(line[4:])  # learn the compressed name
            elif line.startswith("calls="):
                skip_next = True  # the next cost line is the call's inclusive cost
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                fields = line.split()
                if len(fields) >= 2:
                    parts[current] = parts.get(current, 0) + int(fields[1])
    return parts


def instructions(job: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """Instructions the worker process executed for ``job`` (callgrind's ``Ir``),
    in all and by part."""
    with tempfile.TemporaryDirectory(prefix="asyncfetch-callgrind-") as folder:
        out = os.path.join(folder, "callgrind.out")
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, str(BENCHMARKS / "_worker.py"), json.dumps(job),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        result = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout else {}
        if done.returncode or result.get("error"):
            raise RuntimeError(f"{job['client']}: {result.get('error') or done.stderr[-500:]}")
        with open(out) as file:
            for line in file:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1]), _by_part(out)
    raise RuntimeError("no totals in callgrind's output")


def per_page(job: dict[str, Any], lists: int, more: int, pages: int) -> dict[str, float]:
    """Instructions per page, in all (``"total"``) and by part."""
    low, low_parts = instructions({**job, "lists": lists, "expect_pages": pages})
    high, high_parts = instructions({**job, "lists": lists + more, "expect_pages": pages})
    figures = {"total": (high - low) / (more * pages)}
    for part in sorted(set(low_parts) | set(high_parts)):
        figures[part] = (high_parts.get(part, 0) - low_parts.get(part, 0)) / (more * pages)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-page", type=int, default=5)
    parser.add_argument("--pages", type=int, default=200, help="pages in the list")
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"),
                        default=["asyncio", "uvloop"])  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--lists", type=int, default=1)
    parser.add_argument("--more", type=int, default=2)
    parser.add_argument("--base-url", help="a running _serve.py with --users per-page x pages")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    spec = ServerSpec(users=args.per_page * args.pages, rate_limit=1_000_000_000)
    with contextlib.ExitStack() as stack:
        base_url = args.base_url or stack.enter_context(bench_servers({"cpu": spec}))["cpu"]
        figures: dict[str, dict[str, dict[str, float]]] = {}
        for loop in args.loops:
            for client in args.clients:
                job = {
                    "client": client,
                    "base_url": base_url,
                    "per_page": args.per_page,
                    "concurrency": args.concurrency,
                    "loop": loop,
                }
                figures.setdefault(client, {})[loop] = per_page(
                    job, args.lists, args.more, args.pages
                )
                print(f"{client:<15} {loop:<8} {figures[client][loop]['total']:>12,.0f} "
                      "instructions per page", file=sys.stderr, flush=True)  # fmt: skip
    print(f"\n{args.per_page}-item pages, concurrency {args.concurrency}, instructions per page "
          "(callgrind, start-up subtracted):\n")  # fmt: skip
    print("| client | " + " | ".join(args.loops) + " | ÷ its baseline |")
    print("| --- | " + " | ".join("---:" for _ in args.loops) + " | ---: |")
    for client, by_loop in figures.items():
        base = figures.get(BASELINE.get(client, ""), {})
        ratios = [f"{by_loop[loop]['total'] / base[loop]['total']:.2f} ({loop})"
                  for loop in args.loops if loop in base and loop in by_loop]  # fmt: skip
        cells = [f"{by_loop[loop]['total']:,.0f}" for loop in args.loops]
        print(f"| {client} | " + " | ".join(cells) + f" | {', '.join(ratios) or '—'} |")
    columns = [(client, loop) for loop in args.loops for client in figures]
    parts = sorted({p for c, lp in columns for p in figures[c][lp]} - {"total"})
    print("\nBy part (thousands of instructions per page):\n")
    print("| part | " + " | ".join(f"{c} ({lp})" for c, lp in columns) + " |")
    print("| --- | " + " | ".join("---:" for _ in columns) + " |")
    for part in [*parts, "total"]:
        cells = [f"{figures[c][lp].get(part, 0) / 1000:,.0f}" for c, lp in columns]
        print(f"| {part} | " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "per_page": figures}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
