"""The count check: a list that ends short of the count it said it held fails.

The last line of defence of the promise (every record, or a clear failure):
whatever went wrong upstream (a page the API answered empty, a scroll that
lost a batch, a cap met quietly), a listing whose records fall short of its
``total_count`` raises ``IncompleteListError`` instead of ending quietly.
Shared by the Intercom client and the generic page source; no HTTP here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TypeVar

from .._exceptions import IncompleteListError
from ._engine import ListChanges, Page

__all__ = ["count_check_resumed", "count_checked"]

T = TypeVar("T")


async def count_checked(
    pages: AsyncGenerator[Page[T], None],
    changes: ListChanges,
    *,
    url: str,
    filtered: bool,
    resumed: bool,
) -> AsyncGenerator[Page[T], None]:
    """Pass the pages on, then compare what was delivered with what the list said.

    The last line of defence: a listing that ends short of page 1's
    ``total_count`` (or of a smaller count seen later, when records were
    removed meanwhile) raises ``IncompleteListError`` instead of ending
    quietly. A scroll filtered locally has no server count to compare with
    and is exempt; so is a resumed fetch (it delivers only the pages after
    the checkpoint), and a listing that stopped early on purpose
    (``changes.stopped_early``: ``updated_since`` wants only the newest records).
    """
    async with aclosing(pages):
        async for page in pages:
            changes.delivered += len(page.items)
            yield page
    first, last = changes.first_total_count, changes.last_total_count
    if resumed:
        changes.count_check = "not made: a resumed fetch delivers only what was missing"
        return
    if changes.stopped_early:
        # total_count counts the whole list; the records after the stop were
        # not asked for, so a shortfall is the point, not a loss.
        changes.count_check = (
            "not made: stopped early on purpose (updated_since); total_count counts the "
            "older records too, which were not asked for"
        )
        return
    if changes.method != "pages" and filtered:
        changes.count_check = (
            "exempt: scrolled and filtered locally, so no server count covers the list"
        )
        return
    if first is None:
        changes.count_check = "not made: the API sent no total_count"
        return
    expected = first if last is None else min(first, last)
    if changes.delivered < expected:
        changes.count_check = "failed"
        raise IncompleteListError(
            f"the list ended after {changes.delivered:,} records, but it said it held "
            f"{expected:,} (total_count) and no change seen during the fetch explains the "
            f"{expected - changes.delivered:,} missing",
            expected=expected,
            delivered=changes.delivered,
            url=url,
        )
    changes.count_check = "passed"


def count_check_resumed(
    name: str, delivered: int, changes: ListChanges, *, including: str, credited: int = 0
) -> None:
    """The count check of a resumed fetch (a file) or a continued run (``--db``):
    ``delivered`` counts the records of the earlier pages too (``including``
    says where they are, for the message). The listing of a resumed fetch
    delivers only the pages after them, so it cannot make the check itself;
    without this, a list that ended short would be put in place, exit 0.
    ``credited`` records count as delivered without being so (see ``_sink/_sync.py``).
    """
    first, last = changes.first_total_count, changes.last_total_count
    if changes.method != "pages" or first is None:
        return  # the scroll (no server count), or the API sent no total_count
    expected = first if last is None else min(first, last)
    if delivered + credited >= expected:
        changes.count_check = "passed"
        return
    changes.count_check = "failed"
    raise IncompleteListError(
        f"{name}: the list ended after {delivered:,} records ({including} included), but "
        f"it said it held {expected:,} (total_count) and no change seen during the fetch "
        f"explains the {expected - delivered:,} missing",
        expected=expected,
        delivered=delivered,
    )
