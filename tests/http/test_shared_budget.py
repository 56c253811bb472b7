"""Several processes, one token, one rate budget (issue 12): measured by the server.

Real processes (the file lock is only the truth between processes) fetch a
list each from ONE bundled server enforcing 50 requests per 1-second window;
what is checked is what the server counted: the 429s it sent, the requests
that fell in each window, and every record of every list, once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncfetch._http._shared import SharedRateBudget, shared_budget_path
from asyncfetch.testing import ServerThread

from ..helpers import ids
from .budget_clock import NOW, Clock
from .budget_clock import rate_headers as budget_headers

LIMIT = 50
TOKEN = "tok_shared_budget_7f3a9c0e5b"

# One process: fetch every user, page by page, and write what it got and sent.
WORKER = """
import asyncio, json, sys
from asyncfetch import IntercomClient, Retries

async def main(base_url, token, shared, out):
    options = {"shared_budget": shared} if shared else {}
    client = IntercomClient(
        token=token, base_url=base_url, per_page=10, concurrency=8,
        retries=Retries(attempts=20, max_wait=None), **options,
    )
    async with client:
        got = [user["id"] async for user in client.users()]
    with open(out, "w") as file:
        json.dump({"ids": got, "requests": client.stats.requests}, file)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def limited_server() -> Iterator[ServerThread]:
    with ServerThread(users=600, rate_limit=LIMIT, rate_window_seconds=1, token=TOKEN) as server:
        yield server


def run_processes(server: ServerThread, count: int, shared: str, tmp_path: Path) -> list[list[str]]:
    """Start ``count`` worker processes at once; return the ids each fetched."""
    outs = [tmp_path / f"out-{n}.json" for n in range(count)]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, server.base_url, TOKEN, shared, str(out)], env=env
        )
        for out in outs
    ]
    for process in processes:
        assert process.wait(timeout=100) == 0
    return [json.loads(out.read_text())["ids"] for out in outs]


def assert_within_budget(server: ServerThread, *, most_429s: float) -> None:
    stats = server.server.stats
    throttled = stats.statuses[429]
    assert throttled <= most_429s * stats.requests, (throttled, stats.requests)
    # The server counts every request of a window, 429s included: none went over
    # the limit by more than the 429s it sent.
    assert max(stats.windows.values()) <= LIMIT + throttled, stats.windows


@pytest.mark.parametrize("count", [2, 4])
def test_processes_sharing_the_budget_file_stay_within_the_limit(
    limited_server: ServerThread, count: int, tmp_path: Path
) -> None:
    expected = ids(limited_server.server.workspace.users)
    fetched = run_processes(limited_server, count, str(tmp_path / "state"), tmp_path)
    assert fetched == [expected] * count
    stats = limited_server.server.stats
    assert stats.statuses[429] == 0, stats.statuses
    assert max(stats.windows.values()) <= LIMIT, stats.windows
    # Every process's pages were fetched (60 requests each, no more).
    assert stats.requests == count * 60


@pytest.mark.parametrize("count", [2, 4])
def test_processes_with_headers_only_adapt_to_each_other(
    limited_server: ServerThread, count: int, tmp_path: Path
) -> None:
    expected = ids(limited_server.server.workspace.users)
    fetched = run_processes(limited_server, count, "", tmp_path)
    assert fetched == [expected] * count
    assert_within_budget(limited_server, most_429s=0.01)


def test_an_unseen_spender_on_the_same_token_is_adapted_to(
    limited_server: ServerThread, tmp_path: Path
) -> None:
    """Another program spends the token's budget at 20 requests a second; the
    client sees it only in ``X-RateLimit-Remaining``."""
    stop = threading.Event()
    spent = []

    def other_spender() -> None:
        request = urllib.request.Request(
            limited_server.base_url + "/admins", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        while not stop.is_set():
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    spent.append(response.status)
            except urllib.error.HTTPError as error:
                spent.append(error.code)
                error.close()
            time.sleep(0.05)

    spender = threading.Thread(target=other_spender)
    spender.start()
    try:
        time.sleep(0.5)  # it is spending before the client starts
        fetched = run_processes(limited_server, 1, "", tmp_path)
    finally:
        stop.set()
        spender.join()
    assert fetched == [ids(limited_server.server.workspace.users)]
    assert len(spent) >= 10
    stats = limited_server.server.stats
    # The client's own 429s: the server's, but those the other spender got.
    clients = stats.statuses[429] - spent.count(429)
    assert clients <= 0.01 * (stats.requests - len(spent)), (clients, stats.requests)
    assert_within_budget(limited_server, most_429s=0.01)


def test_the_budget_file_never_holds_the_token(
    limited_server: ServerThread, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run_processes(limited_server, 1, str(state), tmp_path)
    files = list(state.iterdir())
    assert len(files) == 1
    (budget,) = files
    data = budget.read_bytes()
    assert data, "the budget file was written"
    assert TOKEN.encode() not in data
    assert TOKEN not in budget.name
    # Only its owner may read it.
    assert budget.stat().st_mode & 0o077 == 0


# -- the budget file's rules, two budgets on one file and a clock the test sets ----------


def rate_headers(remaining: int, reset: float) -> dict[str, str]:
    return budget_headers(remaining, reset, 10)


def two_budgets(path: Path, clock: Clock) -> tuple[SharedRateBudget, SharedRateBudget]:
    """Two processes' budgets, as far as the file goes: nothing else is shared."""
    return SharedRateBudget(path, clock=clock), SharedRateBudget(path, clock=clock)


async def granted_within(budget: SharedRateBudget, seconds: float = 0.2) -> bool:
    waiter = asyncio.ensure_future(budget.acquire())
    done, _ = await asyncio.wait([waiter], timeout=seconds)
    if not done:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    return bool(done)


@pytest.mark.anyio
async def test_one_answer_caps_every_process_sharing_the_file(tmp_path: Path) -> None:
    clock = Clock()
    first, second = two_budgets(tmp_path / "budget", clock)
    probe = await first.acquire()  # nothing known: one probe, the other waits for it
    assert not await granted_within(second)
    # 4 left when the probe was counted: it and 3 more, from either process.
    first.update(probe, rate_headers(remaining=4, reset=NOW + 5))
    assert await granted_within(second)
    assert await granted_within(first)
    assert await granted_within(second)
    assert not await granted_within(first)
    assert not await granted_within(second)


@pytest.mark.anyio
async def test_a_probe_that_never_answers_holds_the_others_one_window_at_most(
    tmp_path: Path,
) -> None:
    clock = Clock()
    dead, alive = two_budgets(tmp_path / "budget", clock)
    dead.update(await dead.acquire(), rate_headers(remaining=1, reset=NOW + 5))
    clock.now = NOW + 5  # the window has reset: the next request is the probe
    await dead.acquire()  # ... and its process dies before the answer
    del dead
    assert not await granted_within(alive)
    clock.now = NOW + 14.9  # the hold is one window (10 s until two resets were seen)
    assert not await granted_within(alive)
    clock.now = NOW + 15
    assert await granted_within(alive)


@pytest.mark.anyio
async def test_a_window_from_another_server_is_dropped(tmp_path: Path) -> None:
    clock = Clock()
    other, mine = two_budgets(tmp_path / "budget", clock)
    # Two resets 10 s apart: windows of 10 s.
    other.update(await other.acquire(), rate_headers(remaining=5, reset=NOW + 5))
    clock.now = NOW + 5
    other.update(await other.acquire(), rate_headers(remaining=5, reset=NOW + 15))
    # Then a server (a test's clock, say) on the same URL told of a window an hour away.
    clock.now = NOW + 6
    other.update(await other.acquire(), rate_headers(remaining=0, reset=NOW + 3600))
    # Not a wait of an hour: no window ends that far ahead, so it starts afresh.
    assert await granted_within(mine)
    assert not await granted_within(mine)  # ... with one probe


@pytest.mark.anyio
async def test_a_spent_window_holds_the_others_until_its_reset(tmp_path: Path) -> None:
    clock = Clock()
    first, second = two_budgets(tmp_path / "budget", clock)
    first.update(await first.acquire(), rate_headers(remaining=0, reset=NOW + 5))
    assert not await granted_within(second)
    clock.now = NOW + 5
    assert await granted_within(second)  # the probe of the new window


@pytest.mark.parametrize("value", [3, "", b"dir", 1.5])
def test_the_option_is_checked(value: object) -> None:
    from asyncfetch import IntercomClient, PagesClient

    with pytest.raises(ValueError, match="shared_budget must be True, False or a folder"):
        IntercomClient(token=TOKEN, shared_budget=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared_budget must be True, False or a folder"):
        PagesClient(base_url="https://example.org", shared_budget=value)  # type: ignore[arg-type]


def test_one_file_per_token_and_base_url(tmp_path: Path) -> None:
    def path(token: str, base_url: str) -> Path | None:
        return shared_budget_path(tmp_path, secret=token, base_url=base_url)

    assert path(TOKEN, "https://api.intercom.io") == path(TOKEN, "https://api.intercom.io/")
    assert path(TOKEN, "https://api.intercom.io") != path(TOKEN + "x", "https://api.intercom.io")
    assert path(TOKEN, "https://api.intercom.io") != path(TOKEN, "https://api.eu.intercom.io")
    assert shared_budget_path(False, secret=TOKEN, base_url="https://x.org") is None
