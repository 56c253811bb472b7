"""Intercom's Scroll API: the way past the 10,000-record cap of page-numbered lists.

``GET /users/scroll`` starts a walk over every user; each answer carries the
next batch and a ``scroll_param`` for the one after; an empty batch ends it.
A scroll is sequential by nature (each request needs the previous answer),
has no filters (a tag's or segment's users are picked out locally, from the
``tags``/``segments`` each user carries), and is fragile: a 5xx or a lost
answer ends it and it must start again. Records already handed over are
remembered by id, so a restarted scroll skips them and the result stays
every record once, in order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
from yarl import URL

from ._engine import Page
from ._exceptions import APIError, ResponseFormatError, TransportError
from ._http import Transport
from ._intercom import Item

__all__ = ["Scroll", "carries"]

logger = logging.getLogger("asyncfetch")

MAX_RESTARTS = 5
"""Fresh starts one listing may make after scrolls that broke off."""
SCROLL_EXISTS_PAUSE = 5
SCROLL_EXISTS_WAITS = 14
"""A scroll left open expires after a minute unused: wait a little longer than that."""


def carries(nested: str, key: str, value: str) -> Callable[[Item], bool]:
    """A filter: does the record's ``nested`` list (``tags``, ``segments``,
    ``companies``) hold an entry whose ``key`` is ``value``?"""

    def keep(item: Item) -> bool:
        try:
            entries = (item.get(nested) or {}).get(nested) or ()
            return any(str(entry.get(key)) == value for entry in entries)
        except (AttributeError, TypeError):
            return False  # not the shape Intercom sends: not a match

    return keep


@dataclass(frozen=True, slots=True)
class Scroll:
    """A scroll over one collection (``users``, ``companies``, ``contacts``),
    keeping the records ``keep`` accepts (all when ``None``)."""

    transport: Transport
    url: URL
    items_key: str
    keep: Callable[[Item], bool] | None = None

    async def pages(self, *, start: int = 1) -> AsyncGenerator[Page[Item], None]:
        """Yield the scroll's batches as pages numbered from 1, from batch ``start``
        (a resumed export; exact as long as the collection has not changed)."""
        async with self.transport.scroll_lock:
            seen: set[Any] = set()
            yielded = [0]  # pages handed over, across restarts: numbers stay 1, 2, 3…
            restarts = waits = 0
            while True:
                try:
                    async with aclosing(self._walk(seen, yielded)) as walk:
                        async for page in walk:
                            if page.number >= start:
                                yield page
                except APIError as exc:
                    if exc.code == "scroll_exists" and waits < SCROLL_EXISTS_WAITS:
                        # Another scroll is open (one a stopped run left behind):
                        # it expires after a minute unused.
                        waits += 1
                        logger.info(
                            "another scroll is open; waiting %d s",
                            SCROLL_EXISTS_PAUSE,
                            # For the CLI's progress bar (see _progress.py).
                            extra={
                                "asyncfetch_wait": ("an open scroll to expire", SCROLL_EXISTS_PAUSE)
                            },
                        )
                        await anyio.sleep(SCROLL_EXISTS_PAUSE)
                        continue
                    if restarts == MAX_RESTARTS or exc.status == 400:
                        raise
                    restarts += 1
                    logger.info("scroll broke off (%s); starting again (%d)", exc, restarts)
                except (ResponseFormatError, TransportError) as exc:
                    # The scroll broke off (expired, ended by a 5xx, an answer lost):
                    # start again, skipping what was already handed over.
                    if restarts == MAX_RESTARTS:
                        raise
                    restarts += 1
                    logger.info("scroll broke off (%s); starting again (%d)", exc, restarts)
                else:
                    return

    async def _walk(self, seen: set[Any], yielded: list[int]) -> AsyncGenerator[Page[Item], None]:
        url = str(self.url)
        param: str | None = None
        while True:
            items, param = await self.transport.get(
                url,
                read=self._read,
                params={"scroll_param": param} if param else None,
                page=yielded[0] + 1,
            )
            if not items:
                return
            fresh = [item for item in items if item.get("id") not in seen]
            if not fresh:
                continue  # a batch handed over before a restart
            seen.update(item.get("id") for item in fresh)
            keep = self.keep
            yielded[0] += 1
            yield Page(
                number=yielded[0], items=fresh if keep is None else list(filter(keep, fresh))
            )

    def _read(self, body: Any) -> tuple[list[Item], str]:
        items = body.get(self.items_key) if isinstance(body, dict) else None
        param = body.get("scroll_param") if isinstance(body, dict) else None
        if (
            not isinstance(items, list)
            or not isinstance(param, str)
            or not all(isinstance(item, dict) for item in items)
        ):
            raise ResponseFormatError(
                f"expected a JSON object with a {self.items_key!r} list and a scroll_param",
                url=str(self.url),
            )
        return items, param
