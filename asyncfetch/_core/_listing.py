"""``Listing``: what a list method returns, an async iterator that can be closed.

A listing can be closed from three places at once: its consumer (``async
with``, ``break`` and garbage collection), another task (``listing.aclose()``)
and the client (``client.aclose()``). Closing the fetch underneath is done
once, by whoever comes first; the others wait for it, so no generator is ever
closed while it is running. A consumer that is waiting for a page in another
task when the listing or the client is closed is interrupted at once with a
``RuntimeError`` saying so, never left to retry against a closed connection
pool or to see the list end early as if it were complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio

from .._exceptions import AsyncFetchError
from ._engine import ListChanges, Page

__all__ = ["Listing", "ListingState", "close_listings"]

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

    A listing is iterated once: iterating it again after it ended or was
    closed raises ``RuntimeError``; call the client's method again for a new
    one. Closing it (or the client) from another task while a consumer waits
    for a page interrupts that consumer with a ``RuntimeError``.
    """

    @property
    def state(self) -> ListingState[T]:
        """What the client needs to close this listing's fetch."""
        return self._state

    def __init__(
        self,
        start: Callable[[int], AsyncGenerator[Page[T], None]],
        changes: ListChanges,
        *,
        scrub: Callable[[AsyncFetchError], None] | None = None,
    ) -> None:
        self._start = start
        self.changes = changes
        self._state = ListingState[T]()
        # Takes the token out of an error's message, whatever layer raised it.
        self._state.scrub = scrub
        self._pages: AsyncGenerator[Page[T], None] | None = None
        self._items: AsyncGenerator[T, None] | None = None

    def pages(self, *, start: int = 1) -> AsyncGenerator[Page[T], None]:
        """Iterate whole pages (``Page``), in page order, from page ``start`` (default 1:
        a fetch that stopped after page N resumes with ``start=N + 1``)."""
        if self._pages is not None:
            raise RuntimeError(_ITERATED_ONCE)
        self._pages = _guarded(self._start(start), self._state)
        return self._pages

    def __aiter__(self) -> AsyncGenerator[T, None]:
        if self._items is None:
            self._items = _items_of(self.pages())
        elif self._items.ag_frame is None:  # type: ignore[attr-defined]
            # Ended or closed: a second loop would quietly see nothing.
            raise RuntimeError(_ITERATED_ONCE)
        return self._items

    async def aclose(self) -> None:
        """Stop fetching: cancel and await every request still running.

        From another task than the one iterating, the consumer gets a
        ``RuntimeError`` (at once if it is waiting for a page, else at its
        next step), not an early end that looks like the whole list."""
        state = self._state
        task = state.task
        if task is not None and task is not _current_task() and not task.done():
            await state.interrupt(
                "this listing was closed (aclose()) while another task iterated it"
            )
            return
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


_ITERATED_ONCE = (
    "this listing was already iterated: a listing is iterated once; call the "
    "client's method again (e.g. client.users()) for a new one"
)
_CLIENT_CLOSED = "the client was closed while this listing was being iterated"


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # pragma: no cover - no running loop (a finalizer)
        return None


class ListingState(Generic[T]):
    """What a listing shares with its page generator. Kept apart from the ``Listing``
    so that no generator refers back to it: without a reference cycle, a dropped
    listing is closed layer by layer as soon as it is dropped."""

    __slots__ = (
        "__weakref__",
        "closed_reason",
        "done",
        "interrupted",
        "scrub",
        "source",
        "source_closed",
        "task",
        "waiting",
    )

    def __init__(self) -> None:
        self.source: AsyncGenerator[Page[T], None] | None = None
        self.closed_reason: str | None = None  # why a consumer coming back gets an error
        self.task: asyncio.Task[object] | None = None  # the task iterating
        self.waiting = False  # that task is waiting for the next page right now
        self.interrupted = False  # we cancelled it to tell it closed_reason
        self.source_closed: asyncio.Event | None = None  # set once the source is closed
        self.done: asyncio.Event | None = None  # set when the page generator has ended
        self.scrub: Callable[[AsyncFetchError], None] | None = None

    async def close_for_client(self) -> None:
        """The client is closing: stop the fetch; a consumer that comes back gets an
        error, not a list that quietly ends early."""
        await self.interrupt(_CLIENT_CLOSED)

    async def interrupt(self, reason: str, *, wait: bool = True) -> None:
        """Stop the fetch; the consumer gets ``RuntimeError(reason)``: at once if it
        is waiting for a page in another task (``wait``: until it has stopped),
        else at its next step."""
        if self.closed_reason is None:
            self.closed_reason = reason
        task = self.task
        if self.waiting and task is not None and task is not _current_task():
            # Running in that task: only it can close the fetch. Interrupt its wait.
            if not self.interrupted:
                self.interrupted = True
                task.cancel()
            done = self.done
            if wait and done is not None:
                await done.wait()
            return
        await self.close_source()

    async def close_source(self) -> None:
        """Close the fetch underneath, once; a second caller waits for the first."""
        if self.source_closed is not None:
            await self.source_closed.wait()
            return
        self.source_closed = asyncio.Event()
        try:
            if self.source is not None:
                await self.source.aclose()
        finally:
            self.source_closed.set()


async def _guarded(
    source: AsyncGenerator[Page[T], None], state: ListingState[T]
) -> AsyncGenerator[Page[T], None]:
    state.source = source
    state.done = asyncio.Event()
    task = _current_task()
    try:
        while True:
            if state.closed_reason is not None:
                raise RuntimeError(state.closed_reason)
            state.task = task
            state.waiting = True
            try:
                page = await anext(source)
            except StopAsyncIteration:
                return
            except AsyncFetchError as exc:
                if state.scrub is not None:
                    state.scrub(exc)
                raise
            except asyncio.CancelledError:
                if state.interrupted and task is not None:
                    state.interrupted = False
                    if task.uncancel() == 0:  # nobody else cancelled this task
                        raise RuntimeError(state.closed_reason) from None
                raise
            finally:
                state.waiting = False
            yield page
    finally:
        try:
            await state.close_source()
        finally:
            state.done.set()


async def _items_of(pages: AsyncGenerator[Page[T], None]) -> AsyncGenerator[T, None]:
    async with aclosing(pages):
        async for page in pages:
            for item in page.items:
                yield item


async def close_listings(
    states: Iterable[ListingState[Any]], then: Callable[[], Awaitable[None]]
) -> None:
    """A client's ``aclose``: close every listing still open, then ``then`` (its
    connection pool). Shielded: closing must finish even when the caller is
    being cancelled."""
    with anyio.CancelScope(shield=True):
        try:
            for state in list(states):
                await state.close_for_client()
        finally:
            await then()
