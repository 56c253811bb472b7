"""``users(updated_since=...)``: the users updated since a time, newest first, and no more.

An incremental sync asks ``GET /users?sort=updated_at&order=desc`` (documented
in Intercom's 1.x "List Users": ``sort`` "created_at, last_request_at,
signed_up_at, updated_at", ``order`` "asc or desc") and stops at the first
page holding a record older than ``updated_since``: in a list sorted newest
first every record after it is older too, so that page is the last one
needed. Its newer records are delivered, its older ones are not, and the
requests still in the window are cancelled (and awaited) with the engine.

What such a listing can miss, and what is done about it. A record updated
during the fetch (a *touch*) jumps to the front of the list; the records it
passes move one place on. So:

- a touched record may be seen twice (before and after its move: the first
  is kept) or not at all (its old page served after the touch, page 1 before
  it). Its ``updated_at`` is then at least the run's start, so the next run,
  whose bound is this run's start less a margin, catches it;
- an untouched record only ever moves on (towards later pages), never back.
  Pages served one after another therefore never miss one (a record that
  moves past a boundary is seen twice, not skipped). But the window's pages
  are served concurrently, in any order: if page k + 1 is served before a
  touch and page k after it, the record that moved from page k onto k + 1 is
  on neither. The total count does not change, so nothing in the pages says
  so.

Hence the recheck: when the listing has stopped, page 1 is fetched once more.
A touch after page 1 was first served sets ``updated_at`` to at least that
page's newest value, so it shows as a record at or above that value that
page 1 did not hold (and ``total_count`` changing shows an insert or a
deletion). Nothing of the kind: the pages were one state of the list, and
the listing is exact. Otherwise the same span is walked again one page after
another (each requested after the one before it came), which cannot skip an
untouched record, delivering only what was not delivered yet; records
touched during that walk are, again, the next run's. One extra request when
nothing moved (none when page 1 was the only page used); the pages again
when something did.

The guarantee, precisely: every record whose ``updated_at`` is at or after
``updated_since`` (whole seconds; the bound is rounded down) and that was not
updated during the listing is delivered, once; a record updated during it
may be missed, and has ``updated_at`` at or after the listing's start.
Records deleted during the listing can make a later record move back and be
missed, as in any page-numbered listing.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from .._core._dedupe import drop_seen
from .._core._engine import ListChanges, Page, ordered_pages
from .._exceptions import ResponseFormatError
from ._pages import IntercomList, Item

__all__ = ["SORT_FIELDS", "check_updated_since", "updated_since_pages"]

SORT_FIELDS: Final = ("created_at", "last_request_at", "signed_up_at", "updated_at")
"""What ``GET /users`` sorts by (Intercom's 1.x "List Users": "Valid values")."""


def check_updated_since(value: object) -> int:
    """``updated_since`` as whole epoch seconds, rounded down: Intercom's
    timestamps are whole seconds, so a record updated at 100.7 s reads 100
    and must still count as updated since 100.5."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                "updated_since must be a timezone-aware datetime (a naive one could be any "
                f"time zone), got {value!r}"
            )
        return math.floor(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return math.floor(value)
    raise ValueError(
        "updated_since must be epoch seconds (int or float) or a timezone-aware datetime, "
        f"got {value!r}"
    )


async def updated_since_pages(
    source: IntercomList, *, since: int, window: int, changes: ListChanges
) -> AsyncGenerator[Page[Item], None]:
    """The pages of ``source`` (sorted ``updated_at`` descending) cut at ``since``,
    each record once, then the recheck (see the module docstring)."""
    url = str(source.url)
    seen: set[object] = set()
    first: Page[Item] | None = None
    last = 0
    async with aclosing(ordered_pages(source, window=window, changes=changes)) as pages:
        async for page in pages:
            if first is None:
                first = page
            last = page.number
            newer, done = _newer(page, since, url)
            kept = _once(newer, seen, page, changes)
            if kept:
                yield kept
            if done:
                changes.stopped_early = True
                break
    # Leaving the block closed the engine: the window's requests are cancelled
    # and awaited; none is sent after this point but the recheck's.
    if first is None or last == 1:
        return  # page 1 alone was used: one state of the list
    page = await source.fetch_page(1)
    if not _moved(first, page):
        return
    number = 1
    while True:
        changes.pages_rechecked += 1
        newer, done = _newer(page, since, url)
        kept = _once(newer, seen, page, changes)
        if kept:
            yield kept
        if done or page.next_url is None:
            return
        number += 1
        page = await source.fetch_page(number)


def _once(
    items: list[Item], seen: set[object], page: Page[Item], changes: ListChanges
) -> Page[Item] | None:
    """``page`` with ``items`` less those already delivered; None if none is left."""
    kept = drop_seen(items, seen, page=page.number)
    changes.duplicates_dropped += len(items) - len(kept)
    if not kept:
        return None
    return page if kept is page.items else replace(page, items=kept)


def _newer(page: Page[Item], since: int, url: str) -> tuple[list[Item], bool]:
    """The records of ``page`` updated at or after ``since``, and whether the page
    holds an older one (then it is the last page needed).

    Checks that the page is sorted newest first: a server that ignored
    ``sort`` would otherwise end the listing at a record that is merely old
    in another order, and the records after it would be lost without a word.
    """
    items = page.items
    previous: Any = None
    cut = len(items)
    for index, item in enumerate(items):
        stamp = item.get("updated_at")
        if not isinstance(stamp, int | float) or isinstance(stamp, bool):
            raise ResponseFormatError(
                f"a record has no numeric updated_at ({stamp!r}): cannot tell whether it "
                "was updated since the bound",
                url=url,
                page=page.number,
            )
        if previous is not None and stamp > previous:
            raise ResponseFormatError(
                "the page is not sorted by updated_at, newest first: the API did not honour "
                "sort=updated_at&order=desc, so stopping at updated_since could lose records",
                url=url,
                page=page.number,
            )
        previous = stamp
        if stamp < since and cut == len(items):
            cut = index
    if cut == len(items):
        return items, False
    return items[:cut], True


def _moved(before: Page[Item], after: Page[Item]) -> bool:
    """Whether the list changed between two fetches of page 1: a record at or
    above the first fetch's newest ``updated_at`` that it did not hold (a touch
    or an insert since), or a different ``total_count`` (an insert or a deletion)."""
    if before.total_count != after.total_count:
        return True
    if not before.items:
        return bool(after.items)
    top = before.items[0].get("updated_at")
    held = {(item.get("id"), item.get("updated_at")) for item in before.items}
    return any(
        (item.get("id"), item.get("updated_at")) not in held
        and isinstance(stamp := item.get("updated_at"), int | float)
        and isinstance(top, int | float)
        and stamp >= top
        for item in after.items
    )
