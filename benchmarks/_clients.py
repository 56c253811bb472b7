"""The clients a benchmark compares: asyncfetch and the baselines, one function each.

Every client fetches the same list from the same server and does the same
work with it: each page's items go out as JSON Lines (``orjson.dumps`` with
``OPT_APPEND_NEWLINE``, one ``write`` per page, like ``asyncfetch``'s own
export) to ``/dev/null``. Only python-intercom writes nothing: it hands out
its own ``User`` objects, which no JSON encoder takes as they are, so its
cost is a lower bound.

A consumer that takes time (``Job.item_delay`` seconds per item) awaits
``asyncio.sleep`` per item, so the fetching can go on meanwhile; when it is
set, each client records the moment it hands each page to the consumer
(``time.monotonic()``), which the slow-consumer scenario compares with the
server's log of request arrivals.

``asyncfetch-cli`` is the command itself (``asyncfetch users --out FILE``,
in process, see ``run_cli``), its file, checkpoint and ``fsync`` included;
its baseline is ``bare-jsonl``, the bare loop writing the same JSON Lines
into a real file. Every async client runs on the loop the job names
(``Job.loop``: asyncio's own or uvloop), the CLI through its ``--loop``.

The baselines:

- ``python-intercom``: the v1 SDK users run today, sequential, ``requests``,
  following ``pages.next``;
- ``gather``: page 1, then ``asyncio.gather`` of every other page on one
  aiohttp session (its default pool of 100 connections), then write;
- ``aiometer``: page 1, then ``aiometer.run_all`` with ``max_at_once`` = the
  concurrency and ``max_per_second`` = the rate, then write;
- ``bare``: page 1, then a sliding window of page tasks under an
  ``asyncio.Semaphore``, awaited in order and written as each completes,
  with nothing else (no retries, no checks): the least work a concurrent
  in-order client can do, the floor for client CPU. Its window is
  asyncfetch's default (``2 * concurrency`` pages), so it holds as much.

The baselines that know no rate limit retry a 429 once the window named by
``X-RateLimit-Reset`` is over, and count it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp
import aiometer
import orjson
from yarl import URL

import asyncfetch
from asyncfetch._http._transport import Transport
from asyncfetch._intercom._errors import decode_error
from asyncfetch._intercom._pages import IntercomList

TOKEN = "bench"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
_LINE = orjson.OPT_APPEND_NEWLINE
_MAX_TRIES = 50


@dataclass(frozen=True, kw_only=True)
class Job:
    """One client run: which client, which list, how."""

    client: str
    base_url: str
    params: dict[str, str] = field(default_factory=dict)
    """Filters of ``GET /users`` (``tag_id``…)."""
    per_page: int = 50
    concurrency: int | None = 16
    """Requests in flight; ``None`` for the naive gather (its pool's 100)."""
    rate: float | None = None
    """Requests per second, for aiometer only: asyncfetch is never given one."""
    lists: int = 1
    """Fetch the list this many times over, one client (the CPU scenario)."""
    item_delay: float = 0.0
    """Seconds the consumer takes per item."""
    expect_pages: int | None = None
    """Pages per list; a different count fails the run."""
    align_window: int | None = None
    """Start at the next boundary of the server's rate windows of this many seconds."""
    sink: str | None = None
    """The sink scenario: a ``.jsonl`` file to write, or a database URL (``--db``)."""
    loop: str = "asyncio"
    """The event loop: ``asyncio``'s own or ``uvloop`` (the CLI's ``--loop``)."""
    shared_budget: str | None = None
    """asyncfetch's ``shared_budget`` folder (the shared-budget scenario's file mode)."""
    start_at: float | None = None
    """Epoch seconds to start at: the shared-budget scenario's processes start together."""


@dataclass
class Counts:
    """What a client run did."""

    pages: int = 0
    items: int = 0
    requests: int = 0
    throttled: int = 0
    """429 responses."""
    handoffs: list[float] = field(default_factory=list)
    """``time.monotonic()`` when each page went to the consumer (slow consumer only)."""


class Consumer:
    """Takes the pages in order: writes their items, waits ``item_delay`` per item."""

    def __init__(self, out: IO[bytes], item_delay: float) -> None:
        self.out = out
        self.item_delay = item_delay
        self.counts = Counts()

    async def page(self, items: list[Any]) -> None:
        counts = self.counts
        counts.pages += 1
        counts.items += len(items)
        if not self.item_delay:
            dumps = orjson.dumps
            self.out.write(b"".join([dumps(item, option=_LINE) for item in items]))
            return
        counts.handoffs.append(time.monotonic())
        for item in items:
            self.out.write(orjson.dumps(item, option=_LINE))
            await asyncio.sleep(self.item_delay)


# -- asyncfetch -----------------------------------------------------------------------


async def run_asyncfetch(job: Job, consumer: Consumer) -> None:
    """The public client, as a user runs it: ``IntercomClient``, default options."""
    assert job.concurrency is not None
    client = asyncfetch.IntercomClient(
        token=TOKEN,
        base_url=job.base_url,
        concurrency=job.concurrency,
        per_page=job.per_page,
        shared_budget=job.shared_budget or False,
    )
    async with client:
        for _ in range(job.lists):
            async with client.users(**job.params) as users:
                if job.item_delay:
                    await _consume_items(users, job, consumer)
                else:
                    async for page in users.pages():
                        await consumer.page(page.items)
        consumer.counts.requests = client.stats.requests
        consumer.counts.throttled = client.stats.statuses[429]


async def _consume_items(
    users: asyncfetch.Listing[asyncfetch.Item], job: Job, consumer: Consumer
) -> None:
    """Item by item, as ``async for user in users``; a page is handed over with its first item."""
    counts = consumer.counts
    out, delay, per_page = consumer.out, job.item_delay, job.per_page
    async for user in users:
        if counts.items % per_page == 0:
            counts.handoffs.append(time.monotonic())
            counts.pages += 1
        counts.items += 1
        out.write(orjson.dumps(user, option=_LINE))
        await asyncio.sleep(delay)


async def run_asyncfetch_engine(job: Job, consumer: Consumer) -> None:
    """asyncfetch's engine (``ordered_pages``) over its HTTP transport and Intercom page
    reader, with no record cap: what ``IntercomClient`` runs, minus the cap check and
    the per-list set of ids seen (both bounded by Intercom's 10,000 records)."""
    assert job.concurrency is not None
    transport = Transport(
        headers=HEADERS,
        concurrency=job.concurrency,
        rate=None,
        timeout=30.0,
        retries=asyncfetch.Retries(),
        decode_error=decode_error,
    )
    await transport.open()
    try:
        for _ in range(job.lists):
            source = IntercomList(
                transport=transport,
                url=URL(job.base_url) / "users",
                items_key="users",
                params={**job.params, "per_page": str(job.per_page)},
                record_cap=None,
            )
            pages = asyncfetch.ordered_pages(source, window=2 * job.concurrency)
            async with contextlib.aclosing(pages):
                async for page in pages:
                    await consumer.page(page.items)
    finally:
        await transport.close()
    consumer.counts.requests = transport.stats.requests
    consumer.counts.throttled = transport.stats.statuses[429]


async def run_sink(job: Job, consumer: Consumer) -> None:
    """All users into ``job.sink`` as the CLI does it: a ``.jsonl`` file (one write per
    page, like ``--out``), or a database through the sink (``--db``: ``open_sink``,
    ``begin_run``, ``write_pages``, ``finish_run``, as ``_cli/_db.py`` runs them)."""
    assert job.concurrency is not None
    assert job.sink is not None
    counts = consumer.counts
    client = asyncfetch.IntercomClient(
        token=TOKEN, base_url=job.base_url, concurrency=job.concurrency, per_page=job.per_page
    )
    async with client:
        if job.sink.endswith(".jsonl"):
            # As the CLI's --out: a buffered file, one write per page, on the loop.
            with open(job.sink, "wb") as out:  # noqa: ASYNC230
                async with client.users(**job.params) as users:
                    async for page in users.pages():
                        counts.pages += 1
                        counts.items += len(page.items)
                        out.write(b"".join([orjson.dumps(i, option=_LINE) for i in page.items]))
        else:

            def written(page: asyncfetch.Page[Any]) -> None:
                counts.pages += 1
                counts.items += len(page.items)

            def requests() -> int:
                return client.stats.requests

            async with asyncfetch.open_sink(job.sink) as sink:
                run = await sink.begin_run(
                    list_name="users",
                    kind="users",
                    per_page=job.per_page,
                    base_url=job.base_url,
                    whole=True,
                )
                async with client.users(**job.params) as users:
                    await asyncfetch.write_pages(
                        sink, run, users.pages(start=run.next_page), requests=requests,
                        on_written=written,
                    )  # fmt: skip
                await sink.finish_run(run, complete=True, requests=requests())
        counts.requests = client.stats.requests
        counts.throttled = client.stats.statuses[429]


def run_cli(job: Job, consumer: Consumer) -> None:
    """The command a user runs, in this process: ``asyncfetch users --per-page N
    --concurrency C --out FILE --loop L`` once per list, each into a new file of a
    temporary folder (so with its partial file, checkpoint, lock, ``fsync`` and
    rename), through click's ``main`` as the console script calls it. Imports are
    done already (the fork server's); what each invocation costs on top of its pages
    (parsing the options, the lock, making and closing the loop, the final ``fsync``)
    is in the figure, a few milliseconds per list."""
    from asyncfetch._cli import cli

    assert job.concurrency is not None
    assert not job.params, "the CLI client fetches all users"
    counts = consumer.counts
    with tempfile.TemporaryDirectory(prefix="asyncfetch-bench-cli-") as folder:
        out, stats = os.path.join(folder, "users.jsonl"), os.path.join(folder, "stats.json")
        args = [
            "users", "--base-url", job.base_url, "--token", TOKEN,
            "--per-page", str(job.per_page), "--concurrency", str(job.concurrency),
            "--out", out, "--stats", stats, "--quiet", "--loop", job.loop,
        ]  # fmt: skip
        for _ in range(job.lists):
            try:
                cli.main(args, prog_name="asyncfetch", standalone_mode=False)
            except SystemExit as exc:  # a failed fetch: one line on stderr, an exit code
                raise RuntimeError(f"asyncfetch exited with {exc.code}") from None
            with open(stats, "rb") as file:
                figures = orjson.loads(file.read())
            counts.pages += figures["pages"]
            counts.items += figures["items"]
            counts.requests += figures["requests"]
            counts.throttled += figures["statuses"].get("429", 0)


# -- aiohttp baselines ----------------------------------------------------------------


class PageGetter:
    """``GET /users?page=N`` on one aiohttp session: the baselines' request."""

    def __init__(self, session: aiohttp.ClientSession, job: Job, counts: Counts) -> None:
        self.session = session
        self.url = f"{job.base_url}/users"
        self.params = {**job.params, "per_page": str(job.per_page)}
        self.counts = counts

    async def __call__(self, number: int) -> dict[str, Any]:
        for _ in range(_MAX_TRIES):
            self.counts.requests += 1
            params = {**self.params, "page": str(number)}
            async with self.session.get(self.url, params=params) as response:
                body = await response.read()
                if response.status == 429:
                    self.counts.throttled += 1
                    reset = float(response.headers.get("X-RateLimit-Reset", "0"))
                    await asyncio.sleep(max(reset - time.time(), 0.01))
                    continue
                if response.status != 200:
                    raise RuntimeError(f"page {number}: HTTP {response.status}: {body[:200]!r}")
            page: dict[str, Any] = orjson.loads(body)
            return page
        raise RuntimeError(f"page {number}: still 429 after {_MAX_TRIES} tries")


@contextlib.asynccontextmanager
async def _session(limit: int | None) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=limit) if limit else aiohttp.TCPConnector()
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        yield session


async def run_gather(job: Job, consumer: Consumer) -> None:
    async with _session(None) as session:
        get = PageGetter(session, job, consumer.counts)
        for _ in range(job.lists):
            first = await get(1)
            rest = await asyncio.gather(
                *(get(n) for n in range(2, first["pages"]["total_pages"] + 1))
            )
            for page in (first, *rest):
                await consumer.page(page["users"])


async def run_aiometer(job: Job, consumer: Consumer) -> None:
    async with _session(job.concurrency) as session:
        get = PageGetter(session, job, consumer.counts)
        for _ in range(job.lists):
            first = await get(1)
            calls = [functools.partial(get, n) for n in range(2, first["pages"]["total_pages"] + 1)]
            rest = await aiometer.run_all(
                calls, max_at_once=job.concurrency, max_per_second=job.rate
            )
            for page in (first, *rest):
                await consumer.page(page["users"])


async def run_bare(job: Job, consumer: Consumer) -> None:
    """The least a concurrent in-order client can do: a sliding window of page tasks
    (``2 * concurrency``, like asyncfetch's default) under a semaphore, awaited in
    order; no retries, no checks, no rate budget."""
    assert job.concurrency is not None
    gate = asyncio.Semaphore(job.concurrency)
    window = 2 * job.concurrency
    async with _session(job.concurrency) as session:
        get = PageGetter(session, job, consumer.counts)

        async def gated(number: int) -> dict[str, Any]:
            async with gate:
                return await get(number)

        for _ in range(job.lists):
            first = await get(1)
            last = first["pages"]["total_pages"]
            pending: deque[asyncio.Future[dict[str, Any]]] = deque()
            following = 2
            page = first
            try:
                while True:
                    while following <= last and len(pending) < window:
                        pending.append(asyncio.ensure_future(gated(following)))
                        following += 1
                    await consumer.page(page["users"])
                    if not pending:
                        break
                    page = await pending.popleft()
            finally:
                for task in pending:
                    task.cancel()


async def run_bare_jsonl(job: Job, consumer: Consumer) -> None:
    """The bare loop as the CLI's baseline: each list on a session of its own into a
    new JSON Lines file of a temporary folder (one write per page, like the CLI),
    as ``asyncfetch users --out FILE`` does it once per invocation."""
    with tempfile.TemporaryDirectory(prefix="asyncfetch-bench-bare-") as folder:
        path = os.path.join(folder, "users.jsonl")
        for _ in range(job.lists):
            with open(path, "wb") as consumer.out:  # noqa: ASYNC230 - as the CLI writes
                await run_bare(dataclasses.replace(job, lists=1), consumer)


# -- python-intercom ------------------------------------------------------------------


def run_python_intercom(job: Job, consumer: Consumer) -> None:
    """The v1 SDK: ``client.users.find_all(...)``, one page after another."""
    from intercom.client import Client

    client = Client(personal_access_token=TOKEN)
    client.base_url = job.base_url
    counts = consumer.counts
    for _ in range(job.lists):
        for _user in client.users.find_all(**job.params, per_page=job.per_page):
            if counts.items % job.per_page == 0:
                counts.pages += 1
                counts.requests += 1
                if job.item_delay:
                    counts.handoffs.append(time.monotonic())
            counts.items += 1
            if job.item_delay:
                time.sleep(job.item_delay)  # sequential: nothing to overlap with


ASYNC_CLIENTS: dict[str, Callable[[Job, Consumer], Awaitable[None]]] = {
    "asyncfetch": run_asyncfetch,
    "asyncfetch-engine": run_asyncfetch_engine,
    "bare": run_bare,
    "bare-jsonl": run_bare_jsonl,
    "gather": run_gather,
    "aiometer": run_aiometer,
    "sink": run_sink,
}
SYNC_CLIENTS: dict[str, Callable[[Job, Consumer], None]] = {
    "python-intercom": run_python_intercom,
    "asyncfetch-cli": run_cli,
}
CLIENTS: tuple[str, ...] = (*ASYNC_CLIENTS, *SYNC_CLIENTS)
