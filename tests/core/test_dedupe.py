"""One dedupe by id (issue 10): ``drop_seen`` and ``drop_repeated_ids``, on their own.

The page-numbered lists, the scroll's restarts and the CLI's merged export
all drop a repeated record through these, so they agree on what "the same
record" is: the same ``id``; a record without one is always kept.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest

from asyncfetch import ListChanges, Page, ResponseFormatError, drop_repeated_ids
from asyncfetch._core._dedupe import drop_seen

pytestmark = pytest.mark.anyio


async def pages_of(*batches: list[dict[str, Any]]) -> AsyncGenerator[Page[dict[str, Any]], None]:
    for number, items in enumerate(batches, 1):
        yield Page(number=number, items=items)


async def test_a_record_handed_over_before_is_dropped_and_counted() -> None:
    changes = ListChanges()
    seen: set[object] = {"a"}
    pages = drop_repeated_ids(
        pages_of([{"id": "a"}, {"id": "b"}], [{"id": "b"}, {"id": "c"}]), changes, seen
    )
    got = [[item["id"] for item in page.items] async for page in pages]
    assert got == [["b"], ["c"]]
    assert changes.duplicates_dropped == 2
    assert seen == {"a", "b", "c"}


def test_a_page_with_nothing_seen_before_is_passed_on_as_it_is() -> None:
    items = [{"id": 1}, {"id": 2}]
    assert drop_seen(items, set()) is items


def test_records_without_an_id_are_always_kept() -> None:
    seen: set[object] = set()
    first = [{"name": "x"}, {"id": "a"}]
    assert drop_seen(first, seen) == first
    assert drop_seen([{"name": "y"}, {"id": "a"}, {"name": "z"}], seen) == [
        {"name": "y"},
        {"name": "z"},
    ]


async def test_an_id_that_is_not_a_string_or_number_is_a_format_error() -> None:
    # After a repeated id, too (the check used to stop at the first repeat, and
    # the object id then escaped as a TypeError).
    changes = ListChanges()
    pages = drop_repeated_ids(pages_of([{"id": "a"}], [{"id": "a"}, {"id": {"x": 1}}]), changes)
    with pytest.raises(ResponseFormatError, match="id is not a string or number") as caught:
        [page async for page in pages]
    assert caught.value.page == 2
