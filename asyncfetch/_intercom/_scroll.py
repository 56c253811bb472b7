"""Intercom's Scroll API: the way past the 10,000-record cap of page-numbered lists.

``GET /users/scroll`` starts a walk over every user; each answer carries the
next batch and a ``scroll_param`` for the one after; an empty batch ends it.
A scroll is sequential by nature (each request needs the previous answer)
and has no filters: a tag's, segment's or company's members are picked out
locally, from the ``tags``/``segments``/``companies`` each record carries.
Those lists are users *and leads* (Intercom's List by Tag, Segment, Company),
so their fallback walks ``/users/scroll`` and then ``/contacts/scroll``: the
users first, in scroll order, then the leads. Intercom allows one open
scroll per workspace, so the two never overlap.

A scroll is fragile, and no scroll request goes through the client's
generic retry: the cursor lives on the server (the SDKs' fixtures return the
same ``scroll_param`` batch after batch), so re-sending a request whose
answer was lost (a timeout, a reset, a 5xx, a garbled body) does not repeat
the lost batch, it moves on past it. The 1.x docs say any error or timeout
during a scroll means starting it again, and that is what happens: every
failure starts the scroll afresh. Records already handed over are remembered
by id, so a restarted scroll skips them and the result stays every record
once. The scroll a failure left open blocks a fresh start (``scroll_exists``)
until it expires, a minute unused; the restart waits for that, polling with
a short backoff. One answer is not a failure of the scroll: a 429 is the rate
limit refusing the request before it reaches the scroll (the cursor has not
moved; the bundled server models it so), so the same request is sent again
once the rate budget allows, up to `MAX_THROTTLED` times in a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from yarl import URL

from .._core._dedupe import drop_seen
from .._core._engine import Page
from .._exceptions import (
    APIError,
    AsyncFetchError,
    PageLimitError,
    RateLimitError,
    ResponseFormatError,
    TransportError,
)
from .._http._transport import Transport
from ._pages import Item, read_items

__all__ = ["Scroll", "carries"]

logger = logging.getLogger("asyncfetch")

MAX_RESTARTS = 5
"""Fresh starts in a row, none of which got a new record, before a scroll gives up."""
MAX_THROTTLED = 5
"""429s in a row for one scroll request before it counts as a failure (and the scroll
starts again), as a page-numbered request gives up after its tries."""
SCROLL_EXISTS_FIRST_PAUSE = 0.25
SCROLL_EXISTS_MAX_PAUSE = 5.0
SCROLL_EXISTS_WAIT = 75.0
"""A scroll left open expires after a minute unused: wait a little longer than that
in all, polling from a quarter second up to every 5 s."""


def carries(nested: str, key: str, value: str) -> Callable[[Item], bool]:
    """A filter: does the record's ``nested`` list (``tags``, ``segments``,
    ``companies``) hold an entry whose ``key`` is ``value``?

    A record with no ``nested`` list at all cannot say: that raises
    ``PageLimitError`` (the scroll cannot stand in for the filter) rather than
    counting as "not a member", which would quietly give an empty list.
    """

    def keep(item: Item) -> bool:
        nested_list = item.get(nested)
        entries = nested_list.get(nested) if isinstance(nested_list, dict) else None
        if not isinstance(entries, list):
            raise PageLimitError(
                f"the list is past the 10,000-record cap of page-numbered listing, and the "
                f"Scroll API cannot filter it: a {item.get('type', 'record')} from the scroll "
                f"carries no {nested!r} list to pick the {nested[:-1]}'s members from"
            )
        return any(isinstance(entry, dict) and str(entry.get(key)) == value for entry in entries)

    return keep


@dataclass(frozen=True, slots=True)
class Scroll:
    """A scroll over one or more collections (``users``, ``contacts``,
    ``companies``), one after the other, keeping the records ``keep`` accepts
    (all when ``None``). ``sources`` pairs each scroll URL with its items key."""

    transport: Transport
    lock: asyncio.Lock
    """Held for the whole walk: Intercom allows one open scroll per workspace."""
    sources: tuple[tuple[URL, str], ...]
    keep: Callable[[Item], bool] | None = None

    async def pages(
        self, *, start: int = 1, skip: set[Any] | None = None, first_number: int = 1
    ) -> AsyncGenerator[Page[Item], None]:
        """Yield the scroll's batches as pages numbered from ``first_number``.

        ``start`` skips the batches numbered before it (a resumed export; exact
        as long as the collections have not changed). ``skip`` holds ids
        already handed over (by page-numbered listing before the switch):
        those records are left out.
        """
        async with self.lock:
            seen: set[Any] = set(skip) if skip else set()
            # Pages handed over, across restarts and sources: numbers stay consecutive.
            yielded = [first_number - 1]
            for url, items_key in self.sources:
                async with aclosing(self._one(url, items_key, seen, yielded)) as batches:
                    async for page in batches:
                        if page.number >= start:
                            yield page

    async def _one(
        self, url: URL, items_key: str, seen: set[Any], yielded: list[int]
    ) -> AsyncGenerator[Page[Item], None]:
        """One collection's scroll, started again after each failure."""
        fruitless = 0  # restarts in a row that got no new record
        waited = 0.0
        pause = SCROLL_EXISTS_FIRST_PAUSE
        while True:
            before = len(seen)
            try:
                async with aclosing(self._walk(url, items_key, seen, yielded)) as walk:
                    async for page in walk:
                        yield page
            except APIError as exc:
                if exc.code == "scroll_exists" and waited < SCROLL_EXISTS_WAIT:
                    # Another scroll is open (one a failure or a stopped run left
                    # behind): it expires after a minute unused.
                    logger.info(
                        "another scroll is open; waiting %.2f s",
                        pause,
                        # For the CLI's progress bar (see _cli/_progress.py).
                        extra={"asyncfetch_wait": ("an open scroll to expire", pause)},
                    )
                    await anyio.sleep(pause)
                    waited += pause
                    pause = min(pause * 2, SCROLL_EXISTS_MAX_PAUSE)
                    continue
                if not (exc.status in (404, 429) or exc.status >= 500):
                    raise  # the request itself is wrong (400, 401, 403): no restart helps
                failure: AsyncFetchError = exc
            except (ResponseFormatError, TransportError) as exc:
                failure = exc
            else:
                return
            # The scroll broke off (expired, ended by a 5xx, an answer lost): start
            # again, skipping what was already handed over.
            fruitless = 0 if len(seen) > before else fruitless + 1
            if fruitless > MAX_RESTARTS:
                raise failure
            waited, pause = 0.0, SCROLL_EXISTS_FIRST_PAUSE
            logger.info("scroll broke off (%s); starting again", failure)

    async def _walk(
        self, url_: URL, items_key: str, seen: set[Any], yielded: list[int]
    ) -> AsyncGenerator[Page[Item], None]:
        url = str(url_)
        read = partial(_read, items_key=items_key, url=url)
        param: str | None = None
        throttled = 0
        while True:
            # No generic retry: a re-sent scroll request does not repeat a lost batch.
            try:
                items, param = await self.transport.get(
                    url,
                    read=read,
                    params={"scroll_param": param} if param else None,
                    page=yielded[0] + 1,
                    retry=False,
                )
            except RateLimitError as exc:
                # A 429 is the rate limit refusing the request before it reaches
                # the scroll: the cursor has not moved, so the same request goes
                # again once the rate budget (holding every request) allows.
                # Starting over would wait for this scroll to expire and walk
                # it from the start. Not a wait beyond max_wait, nor for ever.
                throttled += 1
                if exc.code == "rate_limit_wait" or throttled >= MAX_THROTTLED:
                    raise
                continue
            throttled = 0
            if not items:
                return
            fresh = drop_seen(items, seen, page=yielded[0] + 1)
            if not fresh:
                continue  # a batch handed over before a restart
            keep = self.keep
            yielded[0] += 1
            yield Page(
                number=yielded[0], items=fresh if keep is None else list(filter(keep, fresh))
            )


def _read(body: Any, *, items_key: str, url: str) -> tuple[list[Item], str]:
    """A scroll batch: its items (read as a page's are) and the ``scroll_param`` to go on with."""
    items = read_items(body, items_key=items_key, url=url, page=None)
    param = body.get("scroll_param")
    if not isinstance(param, str):
        raise ResponseFormatError(
            f"expected a JSON object with a {items_key!r} list and a scroll_param", url=url
        )
    return items, param
