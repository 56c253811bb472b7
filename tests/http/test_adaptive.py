"""RateBudget's adaptive mode (issue 12): others seen in the headers alone; a test clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from asyncfetch import RateLimitError
from asyncfetch._http._adaptive import OtherSpenders
from asyncfetch._http._ratelimit import RateBudget

from .budget_clock import NOW, Clock, rate_headers, settle

pytestmark = pytest.mark.anyio


def headers(remaining: int, reset: float, limit: int = 50) -> dict[str, str]:
    return rate_headers(remaining, reset, limit)


@pytest.mark.parametrize("counts_request", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_a_process_alone_never_sees_others_whatever_the_order(
    counts_request: bool, seed: int
) -> None:
    """A server counts one process's requests in any order, answers them in any
    other, across windows: the headers never show another spender."""
    rng = random.Random(seed)
    others = OtherSpenders()
    limit = rng.choice([5, 10, 50])
    length = rng.choice([None, 1])  # the windows' length: unknown, or known
    counted = 0
    window = 1000
    in_flight: list[int] = []  # our requests on the wire, not yet counted
    waiting: list[tuple[int, int, int]] = []  # counted, not answered: (reset, remaining, n)
    sent = 0
    for _ in range(300):
        action = rng.random()
        if action < 0.35 and len(in_flight) + len(waiting) < 16:
            sent += 1
            in_flight.append(sent)
        elif action < 0.65 and in_flight:
            in_flight.pop(rng.randrange(len(in_flight)))  # counted in arrival order
            counted += 1
            remaining = max(limit - counted + (0 if counts_request else 1), 0)
            waiting.append((window, remaining, counted))
        elif action < 0.95 and waiting:
            reset, remaining, _ = waiting.pop(rng.randrange(len(waiting)))
            if rng.random() < 0.1:
                # A proxy's error page: counted, but no headers say in which window.
                others.lost(window - 0.5)
            else:
                others.answered(reset, remaining, limit, len(in_flight) + len(waiting), length)
        else:
            window += 1  # the server's window resets (windows of 1 s: now is window - 0.5)
            counted = 0
        assert others.start_at(0.0, float(window), 3) == 0.0, "paced with nobody else"


async def test_a_fall_our_own_requests_explain_changes_nothing() -> None:
    results = []
    for adaptive in (False, True):
        budget = RateBudget(clock=Clock(), adaptive=adaptive)
        started = [await budget.acquire() for _ in range(3)]
        # The server had counted all three when it answered the first.
        budget.update(started[0], headers(remaining=47, reset=NOW + 1))
        results.append([await budget.acquire() for _ in range(40)])
    assert results[0] == results[1] == list(range(4, 44))


async def test_others_seen_in_the_headers_make_it_pace() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock, adaptive=True)
    first = await budget.acquire()
    # Eleven counted, one of them ours: others are spending the same budget.
    budget.update(first, headers(remaining=39, reset=NOW + 1))
    assert await budget.acquire() == 2  # the first goes at once ...
    third = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not third.done()  # ... the next waits its turn instead of a burst
    clock.now = NOW + 0.5
    budget.forget(999)  # any event makes the waiters look at the clock again
    assert await asyncio.wait_for(third, 1) == 3


async def test_with_as_few_places_left_as_spenders_it_waits_for_the_reset() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock, adaptive=True)
    first = await budget.acquire()
    budget.update(first, headers(remaining=3, reset=NOW + 1))  # 47 counted, 1 of ours
    waiter = asyncio.ensure_future(budget.acquire())
    await settle()
    clock.now = NOW + 0.9
    budget.forget(999)
    await settle()
    assert not waiter.done()
    clock.now = NOW + 1
    budget.forget(999)
    assert await asyncio.wait_for(waiter, 1) == 2


async def test_a_paced_wait_longer_than_max_wait_raises_at_once() -> None:
    """Pacing for others is a wait like a window's reset: ``max_wait``
    (--max-retry-wait) bounds it the same way, not an hour-long window."""
    budget = RateBudget(clock=Clock(), adaptive=True)
    first = await budget.acquire()
    # A 1-hour window; 48 of 50 counted, 1 of them ours: wait for the reset.
    budget.update(first, headers(remaining=2, reset=NOW + 3600))
    with pytest.raises(RateLimitError, match="longer than the 60 s left of max_wait"):
        await asyncio.wait_for(budget.acquire(max_wait=60), 1)


async def test_an_answer_without_headers_may_have_been_counted() -> None:
    """A proxy's error page (no rate headers) to a request the API counted: the
    next answer's fall is still ours alone, so nothing is paced."""
    budget = RateBudget(clock=Clock(), adaptive=True)
    first, second = await budget.acquire(), await budget.acquire()
    budget.update(first, {})  # counted by the API, answered by a proxy
    budget.update(second, headers(remaining=48, reset=NOW + 1))  # 2 counted: both ours
    assert [await budget.acquire() for _ in range(20)] == list(range(3, 23))


async def test_a_server_without_rate_headers_keeps_its_memory_bounded() -> None:
    # The adaptive mode is always on, and an answer without the headers is a
    # "loss" it remembers until a window's answer drops it: one never comes here.
    budget = RateBudget(clock=Clock(), adaptive=True)
    for _ in range(20_000):
        budget.update(await budget.acquire(), {})
    others = budget._others
    assert others is not None
    assert len(others._losses) <= 4096
