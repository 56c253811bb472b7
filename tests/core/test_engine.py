"""The engine on its own, with an in-memory page source whose pages finish out of order."""

from __future__ import annotations

import asyncio
import random

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncfetch import Page, ordered_pages

from ..helpers import TaskWatch

pytestmark = pytest.mark.anyio


class FakeSource:
    """``total`` pages of ``per_page`` numbers; each page takes a random few milliseconds.

    Counts what the engine holds: ``outstanding`` is pages requested but not
    yet handed to the consumer, ``running`` is fetches not yet finished.
    """

    def __init__(
        self,
        total: int,
        *,
        per_page: int = 3,
        seed: int = 0,
        fail_on: int | None = None,
        with_total_pages: bool = True,
    ) -> None:
        self.total = total
        self.per_page = per_page
        self.rng = random.Random(seed)
        self.fail_on = fail_on
        self.with_total_pages = with_total_pages
        self.requested: list[int] = []
        self.running = 0
        self.max_running = 0
        self.cancelled = 0

    def _page(self, number: int) -> Page[int]:
        start = (number - 1) * self.per_page
        has_next = number < self.total
        return Page(
            number=number,
            items=list(range(start, start + self.per_page)),
            total_pages=self.total if self.with_total_pages else None,
            next_url=f"next:{number + 1}" if has_next else None,
        )

    async def fetch_page(self, number: int) -> Page[int]:
        self.requested.append(number)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.rng.uniform(0, 0.004))
            if number == self.fail_on:
                raise RuntimeError(f"page {number} failed")
            return self._page(number)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1

    async def follow(self, url: str, number: int) -> Page[int]:
        assert url == f"next:{number}"
        return await self.fetch_page(number)


@pytest.mark.parametrize(("total", "window"), [(1, 4), (2, 1), (7, 3), (60, 8), (60, 64)])
async def test_every_page_once_in_order(total: int, window: int) -> None:
    source = FakeSource(total, seed=total * window)
    numbers = [page.number async for page in ordered_pages(source, window=window)]
    assert numbers == list(range(1, total + 1))
    assert sorted(source.requested) == numbers


async def test_pages_finish_out_of_order_but_are_yielded_in_order() -> None:
    source = FakeSource(40, seed=7)
    items = [item async for page in ordered_pages(source, window=10) for item in page.items]
    assert items == list(range(40 * 3))
    # The random delays really did reorder completions: the window had many running at once.
    assert source.max_running > 1


async def test_window_bounds_pages_held_for_a_slow_consumer() -> None:
    source = FakeSource(50)
    window = 5
    consumed = 0
    async for page in ordered_pages(source, window=window):
        consumed += 1
        assert page.number == consumed
        # Requested but not yet consumed never exceeds the window (plus the page in hand).
        assert len(source.requested) - consumed <= window
        await asyncio.sleep(0.002)
    assert consumed == 50


async def test_failure_yields_earlier_pages_then_raises_and_cancels_the_rest() -> None:
    tasks = TaskWatch()
    source = FakeSource(30, fail_on=12)
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="page 12 failed"):
        async for page in ordered_pages(source, window=8):
            seen.append(page.number)
    assert seen == list(range(1, 12))
    assert source.running == 0
    assert not tasks.started()


class StuckSource(FakeSource):
    """Pages after the third never finish: whatever is still requested at a stop
    is certainly in flight, and must be cancelled."""

    async def fetch_page(self, number: int) -> Page[int]:
        if number <= 3:
            return await super().fetch_page(number)
        self.requested.append(number)
        self.running += 1
        try:
            await anyio.sleep_forever()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        raise AssertionError("unreachable")


async def test_break_with_aclose_cancels_every_request_in_flight() -> None:
    tasks = TaskWatch()
    source = StuckSource(100)
    pages = ordered_pages(source, window=10)
    async for page in pages:
        if page.number == 3:
            await asyncio.sleep(0.01)  # let the window's requests start
            break
    await pages.aclose()
    assert source.running == 0
    assert source.cancelled == len(source.requested) - 3 > 0
    assert not tasks.started()
    assert len(source.requested) <= 3 + 10


async def test_cancelling_the_consumer_leaves_nothing_running() -> None:
    tasks = TaskWatch()
    source = FakeSource(100)
    got: list[int] = []

    async def consume() -> None:
        async for page in ordered_pages(source, window=10):
            got.append(page.number)
            if page.number == 5:
                await anyio.sleep_forever()

    with anyio.move_on_after(0.2):
        await consume()
    assert got == [1, 2, 3, 4, 5]
    assert source.running == 0
    assert not tasks.started()


async def test_without_total_pages_follows_next_links_one_by_one() -> None:
    source = FakeSource(6, with_total_pages=False)
    numbers = [page.number async for page in ordered_pages(source, window=10)]
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert source.max_running == 1


async def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        await ordered_pages(FakeSource(1), window=0).__anext__()


class ScheduledSource(FakeSource):
    """Pages finish after a chosen number of event-loop turns: any completion order,
    reproducibly, with no timing involved."""

    def __init__(self, total: int, turns: list[int], fail_on: int | None) -> None:
        super().__init__(total, fail_on=fail_on)
        self.turns = turns
        self.max_outstanding = 0
        self.consumed = 0

    async def fetch_page(self, number: int) -> Page[int]:
        self.requested.append(number)
        self.max_outstanding = max(self.max_outstanding, len(self.requested) - self.consumed)
        self.running += 1
        try:
            for _ in range(self.turns[(number - 1) % len(self.turns)]):
                await asyncio.sleep(0)
            if number == self.fail_on:
                raise RuntimeError(f"page {number} failed")
            return self._page(number)
        finally:
            self.running -= 1


@settings(max_examples=150, deadline=None)
@given(
    total=st.integers(1, 40),
    window=st.integers(1, 12),
    turns=st.lists(st.integers(0, 15), min_size=1, max_size=40),
    fail_on=st.none() | st.integers(1, 40),
    stop_after=st.none() | st.integers(0, 40),
)
async def test_ordered_merge_properties(
    total: int, window: int, turns: list[int], fail_on: int | None, stop_after: int | None
) -> None:
    """Whatever the completion order, failures and early exits: pages come in order,
    none lost or repeated, never more than the window held, nothing left running."""
    tasks = TaskWatch()
    source = ScheduledSource(total, turns, fail_on if fail_on and fail_on <= total else None)
    pages = ordered_pages(source, window=window)
    seen: list[int] = []
    failed = False
    try:
        async for page in pages:
            seen.append(page.number)
            source.consumed += 1
            if stop_after is not None and len(seen) >= stop_after:
                break
    except RuntimeError:
        failed = True
    finally:
        await pages.aclose()
    wanted = total if stop_after is None else min(total, max(stop_after, 1))
    fails = source.fail_on is not None and source.fail_on <= wanted
    expected_end = source.fail_on - 1 if fails and source.fail_on is not None else wanted
    assert seen == list(range(1, expected_end + 1))
    assert failed == fails
    assert source.max_outstanding <= window + 1  # the window plus page 1, asked for alone
    assert len(set(source.requested)) == len(source.requested)  # no page requested twice
    assert source.running == 0
    assert not tasks.started()
