"""Every record once: the one place where records are told apart by ``id``.

A list that changes while it is fetched shifts records across page
boundaries, so the same record can come on two pages; a scroll started again
after a failure walks again over batches already handed over; a merged
export of several lists (a tag's and a segment's) meets the same person in
both. Each of these drops a record whose ``id`` was already handed over, by
``drop_seen``, so all three mean the same by "the same record": the same
``id``. A record without an ``id`` cannot be told apart and is always kept.

Remembering ids costs a set of them per list (for Intercom's page-numbered
lists at most ``RECORD_CAP``, 10,000); a page with no id seen before, the
common case, costs one ``isdisjoint`` and one ``update``, and is not copied.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import replace
from typing import Any, TypeVar

from .._exceptions import ResponseFormatError
from ._engine import ListChanges, Page

__all__ = ["drop_repeated_ids", "drop_seen"]

R = TypeVar("R", bound=Mapping[str, Any])


def drop_seen(items: list[R], seen: set[object], *, page: int | None = None) -> list[R]:
    """``items`` less the records whose ``id`` is in ``seen``; the ids kept are
    added to ``seen``. ``items`` itself when nothing is dropped (no copy).

    Raises ``ResponseFormatError`` (labelled with ``page``) for an ``id`` that is
    not a string or number (a JSON object or list cannot be remembered).
    """
    ids = [item.get("id") for item in items]
    try:
        if seen.isdisjoint(ids):
            seen.update(ids)
            return items
        kept = []
        for item, key in zip(items, ids, strict=True):
            if key is None or key not in seen:
                seen.add(key)
                kept.append(item)
    except TypeError:
        raise ResponseFormatError("a record's id is not a string or number", page=page) from None
    return kept


async def drop_repeated_ids(
    pages: AsyncGenerator[Page[R], None], changes: ListChanges, seen: set[object] | None = None
) -> AsyncGenerator[Page[R], None]:
    """Pass ``pages`` through, leaving out records whose ``id`` was handed over
    before (or is in ``seen``, the caller's, which gets the ids passed on), and
    counting them in ``changes.duplicates_dropped``."""
    seen = set() if seen is None else seen
    async with aclosing(pages):
        async for page in pages:
            kept = drop_seen(page.items, seen, page=page.number)
            if kept is page.items:
                yield page
                continue
            changes.duplicates_dropped += len(page.items) - len(kept)
            yield replace(page, items=kept)
