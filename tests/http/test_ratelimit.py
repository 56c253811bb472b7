"""RateBudget on its own, with a clock the test sets: no sleeping on the window."""

from __future__ import annotations

import asyncio

import pytest

from asyncfetch._http._ratelimit import RateBudget

from .budget_clock import NOW, Clock, rate_headers, settle

pytestmark = pytest.mark.anyio


def headers(remaining: int, reset: float, limit: int = 10) -> dict[str, str]:
    return rate_headers(remaining, reset, limit)


async def test_without_headers_nothing_is_held_back() -> None:
    budget = RateBudget(clock=Clock())
    assert [await budget.acquire() for _ in range(100)] == list(range(1, 101))
    budget.update(1, {})
    assert await budget.acquire() == 101


async def test_requests_in_flight_count_against_the_window() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    first = await budget.acquire()
    # Request 1 saw 3 left: with or without itself counted (the docs' examples
    # show Remaining == Limit after a window's first request), requests 2 and 3 may start.
    budget.update(first, headers(remaining=3, reset=NOW + 5))
    assert [await budget.acquire() for _ in range(2)] == [2, 3]
    fourth = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not fourth.done()
    fourth.cancel()


async def test_the_lowest_ceiling_of_the_window_wins_whatever_the_arrival_order() -> None:
    budget = RateBudget(clock=Clock())
    for _ in range(5):
        await budget.acquire()
    # Request 5 (answered first) saw 3 left; request 3 (answered later) saw 7 left.
    budget.update(5, headers(remaining=3, reset=NOW + 5))
    budget.update(3, headers(remaining=7, reset=NOW + 5))
    assert [await budget.acquire() for _ in range(2)] == [6, 7]
    eighth = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not eighth.done()
    eighth.cancel()


async def test_after_the_reset_one_probe_goes_then_the_new_window_opens() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.update(await budget.acquire(), headers(remaining=0, reset=NOW + 5))
    waiters = [asyncio.ensure_future(budget.acquire()) for _ in range(4)]
    await settle()
    assert not any(w.done() for w in waiters)

    clock.now = NOW + 5  # the window has reset
    budget.forget(999)  # any event wakes the waiters to look at the clock
    await settle()
    probes = [w for w in waiters if w.done()]
    assert [p.result() for p in probes] == [2]  # exactly one probe
    assert budget.pauses == 1

    # The probe's answer opens the new window: 9 left.
    budget.update(2, headers(remaining=9, reset=NOW + 15))
    await settle()
    assert sorted(w.result() for w in waiters) == [2, 3, 4, 5]


async def test_a_probe_that_lands_in_the_old_window_waits_and_tries_again() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.update(await budget.acquire(), headers(remaining=0, reset=NOW + 5))
    clock.now = NOW + 5
    probe = await budget.acquire()
    # The server's clock is behind ours: still the old window, nothing left.
    budget.update(probe, headers(remaining=0, reset=NOW + 5))
    waiter = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not waiter.done()
    clock.now = NOW + 6
    budget.forget(999)
    await asyncio.wait_for(waiter, 1)
    assert waiter.result() == probe + 1


async def test_retry_after_holds_every_new_request() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.update(await budget.acquire(), headers(remaining=50, reset=NOW + 5))
    budget.throttled(1, retry_after=2.0, told=True)
    waiter = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not waiter.done()
    clock.now = NOW + 2
    budget.forget(1)
    await asyncio.wait_for(waiter, 1)


async def test_a_429_without_rate_headers_pauses_then_lets_everyone_go() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.throttled(await budget.acquire(), retry_after=1.0, told=False)
    waiters = [asyncio.ensure_future(budget.acquire()) for _ in range(4)]
    await settle()
    assert not any(w.done() for w in waiters)
    clock.now = NOW + 1
    budget.forget(1)
    await settle()
    # No budget was ever announced: once the pause is over, nobody is held back.
    assert sorted(w.result() for w in waiters) == [2, 3, 4, 5]


async def test_a_new_window_is_known_by_the_servers_reset_whatever_our_clock() -> None:
    clock = Clock()
    clock.now = NOW + 7  # our clock runs 7 s ahead of the server's
    budget = RateBudget(clock=clock)
    budget.update(await budget.acquire(), headers(remaining=0, reset=NOW + 5))
    probe = await budget.acquire()  # by our clock the reset has passed: a probe goes
    budget.update(probe, headers(remaining=0, reset=NOW + 5))  # still the old window
    waiter = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not waiter.done()
    clock.now = NOW + 7.6
    budget.forget(999)
    second_probe = await asyncio.wait_for(waiter, 1)
    # The server's next window: whatever our clock says, it opens.
    budget.update(second_probe, headers(remaining=5, reset=NOW + 15))
    assert [await budget.acquire() for _ in range(4)] == list(
        range(second_probe + 1, second_probe + 5)
    )


async def test_headers_gone_the_last_limit_is_counted_per_window_of_our_own() -> None:
    clock = Clock()
    budget = RateBudget(clock=clock)
    budget.update(await budget.acquire(), headers(remaining=0, reset=NOW + 1, limit=10))
    clock.now = NOW + 1
    probe = await budget.acquire()
    assert probe == 2
    # The probe's answer says nothing of the budget: the last Limit still holds,
    # counted from the window's edge (where the probe was the first request).
    budget.update(probe, {})
    assert [await budget.acquire() for _ in range(9)] == list(range(3, 12))
    twelfth = asyncio.ensure_future(budget.acquire())
    await settle()
    assert not twelfth.done()
    # Our own window: as long as Intercom's 10 s (no two resets seen yet).
    clock.now = NOW + 10.9
    budget.forget(999)
    await settle()
    assert not twelfth.done()
    clock.now = NOW + 11
    budget.forget(999)
    assert await asyncio.wait_for(twelfth, 1) == 12


async def test_a_wait_longer_than_max_wait_raises_at_once() -> None:
    from asyncfetch import RateLimitError

    budget = RateBudget(clock=Clock())
    budget.update(await budget.acquire(), headers(remaining=0, reset=NOW + 3600))
    with pytest.raises(RateLimitError, match=r"asks to wait 3600 s, longer than the 120 s"):
        await asyncio.wait_for(budget.acquire(max_wait=120), 1)
