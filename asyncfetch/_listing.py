"""``Listing``: what a list method returns, an async iterator that can be closed."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from types import TracebackType
from typing import Generic, TypeVar

from ._engine import ListChanges, Page

__all__ = ["Listing", "ListingState"]

T = TypeVar("T")


class Listing(Generic[T]):
    """The items of one list, in API order, fetched concurrently on demand.

    Iterate it for items (``async for user in listing``) or call ``pages()``
    for whole pages. Nothing is requested until iteration starts, and a
    listing is iterated once.

    Requests run ahead of you, so stopping early means cancelling them. That
    happens when the listing is closed: on leaving ``async with`` (or calling
    ``aclose()``), when the client closes, or, for a listing you no longer
    hold, when it is garbage-collected (at once in CPython, but on the event
    loop's next turn). Use ``async with`` to have it happen at a known point::

        async with client.users(tag_id="42") as users:
            async for user in users:
                ...

    ``changes`` says whether the list changed while it was fetched.
    """

    @property
    def state(self) -> ListingState[T]:
        """What the client needs to close this listing's fetch."""
        return self._state

    def __init__(
        self, start: Callable[[int], AsyncGenerator[Page[T], None]], changes: ListChanges
    ) -> None:
        self._start = start
        self.changes = changes
        self._state = ListingState[T]()
        self._pages: AsyncGenerator[Page[T], None] | None = None
        self._items: AsyncGenerator[T, None] | None = None

    def pages(self, *, start: int = 1) -> AsyncGenerator[Page[T], None]:
        """Iterate whole pages (``Page``), in page order, from page ``start`` (default 1:
        a fetch that stopped after page N resumes with ``start=N + 1``)."""
        if self._pages is not None:
            raise RuntimeError("this listing is already being iterated; make a new one")
        self._pages = _guarded(self._start(start), self._state)
        return self._pages

    def __aiter__(self) -> AsyncGenerator[T, None]:
        if self._items is None:
            self._items = _items_of(self.pages())
        return self._items

    async def aclose(self) -> None:
        """Stop fetching: cancel and await every request still running."""
        # Each layer closes the one inside it.
        for generator in (self._items, self._pages):
            if generator is not None:
                await generator.aclose()

    async def __aenter__(self) -> Listing[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ListingState(Generic[T]):
    """What a listing shares with its page generator. Kept apart from the ``Listing``
    so that no generator refers back to it: without a reference cycle, a dropped
    listing is closed layer by layer as soon as it is dropped."""

    __slots__ = ("__weakref__", "client_closed", "source")

    def __init__(self) -> None:
        self.source: AsyncGenerator[Page[T], None] | None = None
        self.client_closed = False

    async def close_for_client(self) -> None:
        """The client is closing: stop the fetch; a consumer that comes back gets an
        error, not a list that quietly ends early."""
        self.client_closed = True
        source = self.source
        # A generator in use by another task right now cannot be closed from here;
        # its requests fail on the closed connection pool instead.
        if source is not None and not source.ag_running:  # type: ignore[attr-defined]
            await source.aclose()


async def _guarded(
    source: AsyncGenerator[Page[T], None], state: ListingState[T]
) -> AsyncGenerator[Page[T], None]:
    state.source = source
    async with aclosing(source):
        async for page in source:
            yield page
            if state.client_closed:
                raise RuntimeError("the client was closed while this listing was being iterated")


async def _items_of(pages: AsyncGenerator[Page[T], None]) -> AsyncGenerator[T, None]:
    async with aclosing(pages):
        async for page in pages:
            for item in page.items:
                yield item
