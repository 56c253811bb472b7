"""The engine: fetch the pages of one numbered list concurrently, yield them in order.

It knows nothing about HTTP or Intercom. A ``PageSource`` says how to request
page N and how to follow a ``next`` link; the engine reads page 1, learns
``total_pages``, and keeps a sliding window of page requests running ahead of
the consumer.

Why plain asyncio tasks and not a task group: the engine is an async
generator, and a task group (or any cancel scope) that stays open across a
``yield`` breaks when the consumer stops early or is cancelled: the scope
would be exited from another task, or cancellation aimed at the consumer
would land in the generator (see anyio's "cancellation" chapter and PEP 789).
Here no scope spans a ``yield``; the window's tasks are owned by the
generator and its ``finally`` cancels and awaits every one of them, whether
the consumer finished, broke out, raised or was cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import anyio

from .._exceptions import PageLimitError, ResponseFormatError

__all__ = ["SWITCHED_TO_SCROLL", "Item", "ListChanges", "Page", "PageSource", "ordered_pages"]

Item = dict[str, Any]
"""One record of a list (a user, a company, a post…), as the API sent it."""

SWITCHED_TO_SCROLL = "pages, then scroll"
"""``ListChanges.method`` of a list that crossed the record cap mid-fetch."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, as the API returned it.

    ``total_pages`` and ``total_count`` are ``None`` when the response did not
    say; ``next_url`` is ``None`` on the last page.
    """

    number: int
    items: list[T]
    total_pages: int | None = None
    total_count: int | None = None
    next_url: str | None = None


class PageSource(Protocol[T]):
    """How the engine gets pages of one list."""

    async def fetch_page(self, number: int) -> Page[T]:
        """Request page ``number`` (counted from 1)."""
        ...

    async def follow(self, url: str, number: int) -> Page[T]:
        """Request a ``next`` link; ``number`` is the page it is expected to be."""
        ...


@dataclass(slots=True)
class ListChanges:
    """What the engine saw of a list that changed while it was fetched."""

    first_total_count: int | None = None
    """The list's length when page 1 was served."""
    last_total_count: int | None = None
    """Its length when the last page that saw a change was served."""
    pages_added: int = 0
    """Pages that appeared during the fetch and were fetched too."""
    pages_refetched: int = 0
    """Pages fetched again because they predated the page before them."""
    duplicates_dropped: int = 0
    """Records seen twice because of the change and dropped (by the caller)."""
    method: str = "pages"
    """How the list was walked: ``"pages"`` (page-numbered), ``"scroll"`` (the
    Scroll API from the start: on request, or page 1 was past the cap), or
    ``SWITCHED_TO_SCROLL`` (page-numbered, then the scroll from where it stopped)."""
    delivered: int = 0
    """Records handed over so far."""
    count_check: str = "not run"
    """What the count check at the end said: ``"passed"``, or why it was not made."""
    stopped_early: bool = False
    """The listing ended on purpose before the end of the list (``updated_since``:
    the records after the stop are older than asked for)."""
    pages_rechecked: int = 0
    """Pages walked again one after another because the list moved while its pages
    were fetched concurrently (``updated_since``; see ``_intercom/_since.py``)."""

    @property
    def changed(self) -> bool:
        return self.first_total_count != self.last_total_count

    def describe(self) -> str:
        """One line for a person: what changed and what was done about it."""
        line = (
            f"the list changed during the fetch (total_count {self.first_total_count} -> "
            f"{self.last_total_count}): fetched {self.pages_added} page(s) that appeared, "
            f"re-fetched {self.pages_refetched} page(s), dropped "
            f"{self.duplicates_dropped} duplicate record(s)"
        )
        first, last = self.first_total_count, self.last_total_count
        if first is not None and last is not None and last < first:
            # Records removed mid-fetch pull later ones onto pages already read.
            line += "; records were removed meanwhile, so some may have been missed"
        return line


async def ordered_pages(
    source: PageSource[T],
    *,
    window: int,
    changes: ListChanges | None = None,
    start: int = 1,
) -> AsyncGenerator[Page[T], None]:
    """Yield every page of ``source`` in page order.

    ``start`` is the first page to fetch (to resume a fetch that stopped after
    page ``start - 1``); it is requested alone, and its ``total_pages`` says
    how many follow.

    ``window`` bounds the pages the engine holds at once: requested but not
    answered, or answered but not yet taken by the consumer. Memory stays at
    ``window`` pages whatever the list's length, and a slow consumer slows the
    fetching instead of growing a buffer. How many of the window's requests
    are actually on the wire at once is the page source's business (the
    client's concurrency limit and rate limiter).

    When a page fails, the pages before it have been yielded already and its
    exception propagates; the rest of the window is cancelled.

    A list can change while it is fetched. Each page says how long the list
    was when it was served (``total_count``, ``total_pages``); the engine
    compares them with the page before it and records what it saw in
    ``changes``:

    - pages that appeared (``total_pages`` grew) are fetched too;
    - a page served from an older state of the list than the page before it
      (a smaller ``total_count``) is fetched once more: in a newest-first
      list, records pushed down by new ones would otherwise slip between the
      two pages unseen. Records seen twice as a result are for the caller to
      drop (the Intercom client drops repeated ids).
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if start < 1:
        raise ValueError(f"start must be a page number of at least 1, got {start}")
    if changes is None:
        changes = ListChanges()
    first = await source.fetch_page(start)
    changes.first_total_count = changes.last_total_count = first.total_count
    if first.next_url is None:
        # No next link (null or absent): the list has this one page, whatever
        # total_pages says, as every Intercom SDK reads it.
        yield first
        return
    if first.total_pages is None:
        yield first
        async with aclosing(_follow_next_links(source, first)) as links:
            async for page in links:
                yield page
        return

    pending: deque[asyncio.Future[Page[T]]] = deque()
    next_number = start + 1
    last = first.total_pages
    previous_count = first.total_count
    refetched = 0  # the page number last fetched again, so none is fetched twice over
    page = first
    try:
        while True:
            # Top the window up before handing a page over, so requests run
            # while the consumer works.
            while next_number <= last and len(pending) < window:
                pending.append(asyncio.ensure_future(source.fetch_page(next_number)))
                next_number += 1
            yield page
            if not pending:
                return
            # The head of the window is the next page in order; pages behind it
            # may finish first and simply wait their turn.
            page = await pending[0]
            count = page.total_count
            while count is not None and previous_count is not None and count < previous_count:
                changes.last_total_count = count
                if refetched == page.number:
                    break
                refetched = page.number
                changes.pages_refetched += 1
                pending[0] = asyncio.ensure_future(source.fetch_page(page.number))
                page = await pending[0]
                count = page.total_count
            pending.popleft()
            if not page.items and page.number < last:
                # An empty page with pages still to come is never the end of the
                # list: Intercom's companies list answers its cap that way.
                raise PageLimitError(
                    f"page {page.number} of {last} came back empty (total_count "
                    f"{page.total_count}): the API stopped page-numbered listing before "
                    "the end of the list",
                    page=page.number,
                )
            if count is not None and count != previous_count:
                changes.last_total_count = previous_count = count
            if page.total_pages is not None and page.total_pages > last:
                changes.pages_added += page.total_pages - last
                last = page.total_pages
    finally:
        for task in pending:
            task.cancel()
        # Await them so no request outlives the generator and no exception is
        # left unretrieved; shielded, because a cancelled caller (an anyio
        # cancel scope) would otherwise interrupt this wait too.
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*pending, return_exceptions=True)


async def _follow_next_links(
    source: PageSource[T], first: Page[T]
) -> AsyncGenerator[Page[T], None]:
    """Fallback for responses without ``total_pages``: one page after another."""
    page = first
    while page.next_url is not None:
        url = page.next_url
        page = await source.follow(url, page.number + 1)
        if page.next_url == url:
            raise ResponseFormatError(
                "the next link points back to the page just fetched", url=url, page=page.number
            )
        yield page
