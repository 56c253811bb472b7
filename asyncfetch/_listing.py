"""``Listing``: what a list method returns, an async iterator that can be closed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import Generic, TypeVar

from ._engine import ListChanges, Page

__all__ = ["Listing"]

T = TypeVar("T")


class Listing(Generic[T]):
    """The items of one list, in API order, fetched concurrently on demand.

    Iterate it for items (``async for user in listing``) or call ``pages()``
    for whole pages. Nothing is requested until iteration starts, and a
    listing is iterated once.

    Breaking out of the loop early is fine: the requests still running are
    cancelled when the listing is closed. Use it as an async context manager
    (or call ``aclose()``) to have that happen at a known point rather than
    when the listing is garbage-collected; the client also closes every open
    listing when it closes::

        async with client.users(tag_id="42") as users:
            async for user in users:
                ...
    """

    def __init__(
        self, start: Callable[[], AsyncGenerator[Page[T], None]], changes: ListChanges
    ) -> None:
        self._start = start
        self.changes = changes
        """What was seen of the list changing during the fetch (``changes.changed``)."""
        self._pages: AsyncGenerator[Page[T], None] | None = None
        self._items: AsyncGenerator[T, None] | None = None

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """Iterate whole pages (``Page``), in page order."""
        if self._pages is not None:
            raise RuntimeError("this listing is already being iterated; make a new one")
        self._pages = self._start()
        return self._pages

    def __aiter__(self) -> AsyncGenerator[T, None]:
        if self._items is None:
            self._items = _items_of(self.pages())
        return self._items

    async def aclose(self) -> None:
        """Stop fetching: cancel and await every request still running."""
        if self._items is not None:
            await self._items.aclose()
        if self._pages is not None:
            await self._pages.aclose()

    async def __aenter__(self) -> Listing[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _items_of(pages: AsyncGenerator[Page[T], None]) -> AsyncGenerator[T, None]:
    async for page in pages:
        for item in page.items:
            yield item
