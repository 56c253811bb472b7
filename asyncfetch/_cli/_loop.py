"""Which event loop a command runs on: uvloop where it is installed, asyncio's own elsewhere.

uvloop (libuv under asyncio's API) does the loop's share of each request
(sockets, callbacks, timers) in C instead of asyncio's Python; the README's
"Benchmarks" measure what that saves the client and the bare aiohttp loop (a
few percent of the instructions per page on small pages). It is a
dependency on the platforms it supports (CPython, not Windows: the marker in
pyproject.toml), so ``auto``, the default, finds it there and falls back
to the standard loop elsewhere. ``--loop asyncio`` keeps the standard loop;
``--loop uvloop`` where it is not installed is a usage error (exit 2)
before anything is sent.

The garbage collector. Each page's records are new containers (a dict per
record, more per nested object) that live until the page is written, so the
window's pages are what the collector's young generations hold and traverse
again and again: on 50-item pages it took a quarter of the CPU of the
library and of the bare loop alike (the CPU scenario's "of which GC"
column). Parsed JSON holds no reference cycles, so counting fewer
allocations between collections frees nothing later than refcounting does;
the CLI owns its process, so ``run`` raises the first generation's threshold
(700 to ``GC_THRESHOLD``) and freezes what the imports made (never garbage)
for the run, and puts both back after it (a test running the CLI in its own
process keeps its settings).

The choice is checked by the option's callback and kept in the click
context of the invocation (``ctx.meta``), so every ``run`` of that command
uses it and nothing leaks into the next invocation in the same process
(``CliRunner``). Commands without the option (``tags``, ``demo``…) run on
the ``auto`` choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, TypeVar

import click

__all__ = ["GC_THRESHOLD", "LOOPS", "choose_loop", "run"]

T = TypeVar("T")

LOOPS: Final = ("auto", "asyncio", "uvloop")
GC_THRESHOLD: Final = 10_000
"""Allocations between two collections of the youngest generation during a run (700 by
default): about seven 50-item pages' records instead of half of one."""
_KEY: Final = "asyncfetch.loop"

logger = logging.getLogger("asyncfetch")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _uvloop_factory() -> LoopFactory | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def choose_loop(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--loop``'s callback: check the choice, keep its loop factory for ``run``."""
    factory = None if value == "asyncio" else _uvloop_factory()
    if value == "uvloop" and factory is None:
        from ._run import LineUsageError

        raise LineUsageError(
            "--loop uvloop: uvloop is not installed (pip install uvloop; it runs on "
            "CPython on Linux and macOS), or use --loop asyncio"
        )
    ctx.meta[_KEY] = factory
    return value


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop the command chose (``auto`` when it has no
    ``--loop``): the same Ctrl-C handling, the same shutdown."""
    ctx = click.get_current_context(silent=True)
    factory = ctx.meta[_KEY] if ctx is not None and _KEY in ctx.meta else _uvloop_factory()
    with _fewer_collections(), asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_logged(main))


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    # A process that froze objects itself manages its permanent generation.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(GC_THRESHOLD, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()


async def _logged(main: Coroutine[Any, Any, T]) -> T:
    if logger.isEnabledFor(logging.DEBUG):
        loop = type(asyncio.get_running_loop())
        logger.debug("event loop: %s.%s", loop.__module__, loop.__qualname__)
    return await main
