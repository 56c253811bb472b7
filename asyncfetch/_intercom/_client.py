"""``IntercomClient``: the public entry point for Intercom's page-numbered lists.

One client per app (or per process): it owns the connection pool and the
rate budget that all its lists share, so two lists fetched side by side
never spend more of Intercom's per-app budget than one client would. Each
kind of list has its own constructor (``_whole`` for the one-response lists,
``_capped`` for the page-numbered ones that stop at the record cap and go on
by the scroll), so what a list can do is read off its method, not decided by
switches at run time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

from yarl import URL

from .._config import Retries, check_positive, check_whole
from .._core._count import count_checked
from .._core._dedupe import drop_repeated_ids
from .._core._engine import SWITCHED_TO_SCROLL, ListChanges, Page, ordered_pages
from .._core._listing import Listing, ListingState, close_listings
from .._exceptions import PageLimitError, ResponseFormatError
from .._http._shared import SharedBudgetOption, shared_budget_path
from .._http._transport import FetchStats, Transport
from .._http._urls import check_base_url
from .._version import __version__
from ._errors import decode_error
from ._pages import RECORD_CAP, IntercomList, Item
from ._scroll import Scroll, carries
from ._since import SORT_FIELDS, check_updated_since, updated_since_pages

__all__ = ["DEFAULT_BASE_URL", "IntercomClient"]

logger = logging.getLogger("asyncfetch")

DEFAULT_BASE_URL: Final = "https://api.intercom.io"
MAX_PER_PAGE: Final = 60
"""Intercom's largest page size for page-numbered lists."""


class IntercomClient:
    """An async client for Intercom's page-numbered list endpoints.

    Each list method returns a ``Listing``: an async iterator of item dicts in
    API order. Page 1 is read first to learn ``total_pages``; the remaining
    pages are then requested concurrently, a bounded window ahead of the
    consumer, and handed over in order.

    Use it as an async context manager; it owns one connection pool::

        async with IntercomClient(token="...") as client:
            async for user in client.users(tag_id="3142"):
                ...

    All options are keyword-only and checked at once (``ValueError``):

    - ``token``: the access token, sent as ``Authorization: Bearer``. Never
      shown in a repr, a log line or an error message. Required.
    - ``base_url``: the API's root. Default ``https://api.intercom.io``.
    - ``concurrency``: requests on the wire at once, for all lists of this
      client together. Default 16.
    - ``rate``: at most this many requests started per second; ``None``
      for no cap. Default ``None``.
    - ``per_page``: items per page, 1 to 60. Default 50.
    - ``timeout``: seconds allowed for one request, from sending it to having
      read the whole body; ``None`` for no limit. Default 30.
    - ``window``: pages held at once per list, requested or answered but not
      yet consumed; this bounds memory. Default ``2 * concurrency``.
    - ``retries``: what is retried and how (``Retries``);
      ``Retries(attempts=1)`` turns retries off. Default ``Retries()``: 5
      tries, at most 120 s per request.
    - ``keep_duplicates``: a list that changes during the fetch can show a
      record on two pages; by default the second is dropped (by ``id``).
      ``True`` keeps them. Default ``False``.
    - ``allow_insecure_http``: plain ``http://`` sends the token unencrypted,
      so it is refused unless the host is loopback or this is ``True``.
      Default ``False``. TLS certificates are always verified.
    - ``intercom_version``: sent as the ``Intercom-Version`` header when set.
      Default ``None``: not sent, so the app's default API version applies.
    - ``shared_budget``: ``True`` shares the server's rate budget with every
      other process on this machine using the same token and base URL,
      through a small lock-protected file in ``$ASYNCFETCH_STATE_DIR``,
      ``$XDG_RUNTIME_DIR/asyncfetch`` or ``~/.cache/asyncfetch``; a path puts
      that file in that folder instead. The file never holds the token; it is
      opened here, and a folder that cannot hold it raises ``ValueError``.
      Default ``False``: this process's own budget (which still slows down
      when ``X-RateLimit-Remaining`` shows others spending).

    Completeness: past Intercom's 10,000-record cap a list goes on by the
    Scroll API from wherever the API stopped it (see ``users``); when a
    listing ends, what it handed over is checked against the list's
    ``total_count``, and a shortfall raises ``IncompleteListError``.

    Rate limits: the client reads ``X-RateLimit-*`` from every response and
    never starts more requests than the server's current window has left;
    when the window is spent, every request waits for its reset together.
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        concurrency: int = 16,
        rate: float | None = None,
        per_page: int = 50,
        timeout: float | None = 30.0,
        window: int | None = None,
        retries: Retries | None = None,
        keep_duplicates: bool = False,
        allow_insecure_http: bool = False,
        intercom_version: str | None = None,
        shared_budget: SharedBudgetOption = False,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty string")
        if not token.isprintable():
            # Never echo it: the message must not leak the token.
            raise ValueError("token must not contain control characters (a stray newline?)")
        if intercom_version is not None and (
            not isinstance(intercom_version, str) or not intercom_version.isprintable()
        ):
            raise ValueError(f"intercom_version must be printable text, got {intercom_version!r}")
        self._base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if retries is not None and not isinstance(retries, Retries):
            raise ValueError(f"retries must be an asyncfetch.Retries, got {retries!r}")
        check_whole("concurrency", concurrency)
        check_positive("rate", rate, unit="requests per second")
        if (
            isinstance(per_page, bool)
            or not isinstance(per_page, int)
            or not 1 <= per_page <= MAX_PER_PAGE
        ):
            raise ValueError(
                f"per_page must be an integer from 1 to {MAX_PER_PAGE}, got {per_page!r}"
            )
        check_positive("timeout", timeout, unit="seconds")
        if window is not None:
            check_whole("window", window)
        self._concurrency = concurrency
        self._rate = rate
        self._per_page = per_page
        self._timeout = timeout
        self._window = window or 2 * concurrency
        self._keep_duplicates = keep_duplicates
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"asyncfetch/{__version__}",
        }
        if intercom_version:
            headers["Intercom-Version"] = intercom_version
        self._transport = Transport(
            headers=headers,
            concurrency=concurrency,
            rate=rate,
            timeout=timeout,
            retries=retries or Retries(),
            decode_error=decode_error,
            owner="IntercomClient",
            shared_budget=shared_budget_path(
                shared_budget, secret=token, base_url=str(self._base_url)
            ),
        )
        # Intercom allows one scroll open per workspace: this client's take turns.
        self._scroll_lock = asyncio.Lock()
        # Held weakly: a listing nobody iterates any more is closed when dropped.
        self._open: weakref.WeakSet[ListingState[Item]] = weakref.WeakSet()

    def __repr__(self) -> str:
        return (
            f"IntercomClient(base_url={str(self._base_url)!r}, concurrency={self._concurrency}, "
            f"rate={self._rate!r}, per_page={self._per_page}, timeout={self._timeout!r})"
        )

    @property
    def stats(self) -> FetchStats:
        """Requests sent, retries, statuses seen, bytes and rate-limit pauses so far."""
        return self._transport.stats

    async def __aenter__(self) -> IntercomClient:
        await self._transport.open()
        # Made anew on each open, like the transport's gate: it binds to the loop it runs in.
        self._scroll_lock = asyncio.Lock()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every open listing, then the connection pool."""
        await close_listings(self._open, self._transport.close)

    # The lists. Each returns a Listing; nothing is sent until it is iterated.

    def users(
        self,
        *,
        tag_id: str | int | None = None,
        segment_id: str | int | None = None,
        scroll: bool | None = None,
        sort: str | None = None,
        order: str | None = None,
        updated_since: float | datetime | None = None,
    ) -> Listing[Item]:
        """Users and leads (``GET /users``), optionally those carrying a tag or in a segment.

        ``tag_id`` and ``segment_id`` cannot be combined (the API refuses it).

        ``scroll``: page-numbered listing stops at 10,000 records. By default
        (``None``) a longer list is walked with the Scroll API instead, from
        where page-numbered listing stopped, skipping the records already
        handed over (all users; for a tag or segment, ``/users/scroll`` then
        ``/contacts/scroll``, its users and then its leads picked out locally);
        ``True`` always scrolls, ``False`` raises ``PageLimitError`` instead.

        ``sort`` (``"created_at"``, ``"last_request_at"``, ``"signed_up_at"``,
        ``"updated_at"``) and ``order`` (``"asc"``, ``"desc"``; the API's default
        is ``desc``) are sent as given, for the list of all users only: Intercom's
        1.x "List Users" documents them there and not for tags or segments. The
        scroll has no order, so a sorted list past the cap raises
        ``PageLimitError`` (``scroll=True`` is refused).

        ``updated_since`` (epoch seconds or a timezone-aware ``datetime``;
        rounded down to whole seconds): only the users updated at or after it.
        Requests ``sort=updated_at&order=desc`` and stops at the first page
        holding an older record (its newer records are delivered), cancelling
        the requests still running ahead; every record once. Every record
        updated at or after it and not updated during the listing is
        delivered; one updated during the listing may be missed, and has an
        ``updated_at`` at or after the listing's start, so a next run bounded
        by this run's start (less a margin for clocks) catches it. See
        ``listing.changes`` (``stopped_early``, ``pages_rechecked``). Not
        resumable (``pages(start=N)``): updates move records between pages.
        More than 10,000 newer records raise ``PageLimitError``: do a full pass.
        """
        if tag_id is not None and segment_id is not None:
            raise ValueError(
                "pass tag_id or segment_id, not both: the Intercom API cannot combine them"
            )
        filters = _filters(tag_id=tag_id, segment_id=segment_id)
        if sort is not None or order is not None or updated_since is not None:
            return self._sorted_users(
                filters, scroll=scroll, sort=sort, order=order, updated_since=updated_since
            )
        return self._capped(
            ("users",),
            "users",
            filters,
            scroll=scroll,
            keep=_keeper(filters),
            # A tag's or segment's list holds users and leads: scroll both.
            over=_PEOPLE if filters else None,
        )

    def _sorted_users(
        self,
        filters: dict[str, str],
        *,
        scroll: bool | None,
        sort: str | None,
        order: str | None,
        updated_since: float | datetime | None,
    ) -> Listing[Item]:
        """``users()`` with ``sort``, ``order`` or ``updated_since`` (checked here)."""
        if filters:
            raise ValueError(
                "sort, order and updated_since apply to the list of all users only: "
                "Intercom documents them for GET /users, not for a tag's or segment's list"
            )
        if sort is not None and sort not in SORT_FIELDS:
            raise ValueError(f"sort must be one of {', '.join(SORT_FIELDS)}, got {sort!r}")
        if order is not None and order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        if scroll:
            raise ValueError(
                "scroll=True cannot be combined with sort, order or updated_since: "
                "the Scroll API has no order"
            )
        if updated_since is None:
            params = {"sort": sort} if sort is not None else {}
            if order is not None:
                params["order"] = order
            return self._capped(("users",), "users", params, scroll=False)
        since = check_updated_since(updated_since)
        if sort not in (None, "updated_at") or order not in (None, "desc"):
            raise ValueError(
                "updated_since lists by updated_at, newest first: leave sort and order "
                f"unset (or 'updated_at' and 'desc'), got sort={sort!r}, order={order!r}"
            )
        url = self._url(("users",))
        source = IntercomList(
            transport=self._transport,
            url=url,
            items_key="users",
            params={"sort": "updated_at", "order": "desc", "per_page": str(self._per_page)},
            # Only the first pages are wanted, however long the list: no refusal
            # from page 1's total_count. A page past the cap still fails (the API's 400).
            record_cap=None,
        )
        window = self._window
        changes = ListChanges()

        def start(first: int) -> AsyncGenerator[Page[Item], None]:
            if first != 1:
                raise ValueError(
                    "a listing with updated_since cannot be resumed from a page: updates "
                    "move records between pages; list again from the same updated_since"
                )
            pages = updated_since_pages(source, since=since, window=window, changes=changes)
            return count_checked(pages, changes, url=str(url), filtered=False, resumed=False)

        return self._listing(start, changes)

    def company_users(
        self, *, id: str | int | None = None, company_id: str | int | None = None
    ) -> Listing[Item]:
        """Users of one company: by Intercom's ``id`` (``GET /companies/{id}/users``)
        or by your own ``company_id`` (``GET /companies?company_id=...&type=user``).
        Give exactly one.
        """
        if (id is None) == (company_id is None):
            raise ValueError(
                "pass exactly one of id (Intercom's company id) or company_id (your own)"
            )
        if id is not None:
            company = _check_id("id", id)
            keep = carries("companies", "id", company)
            return self._capped(
                ("companies", company, "users"), "users", {}, keep=keep, over=_PEOPLE
            )
        filters = _filters(company_id=company_id)
        return self._capped(
            ("companies",),
            "users",
            {**filters, "type": "user"},
            keep=self._company_member(filters["company_id"]),
            over=_PEOPLE,
        )

    def companies(
        self, *, tag_id: str | int | None = None, segment_id: str | int | None = None
    ) -> Listing[Item]:
        """Companies (``GET /companies``), optionally those carrying a tag or in a segment."""
        if tag_id is not None and segment_id is not None:
            raise ValueError(
                "pass tag_id or segment_id, not both: the Intercom API cannot combine them"
            )
        filters = _filters(tag_id=tag_id, segment_id=segment_id)
        return self._capped(("companies",), "companies", filters, keep=_keeper(filters))

    def contacts(self) -> Listing[Item]:
        """Leads (``GET /contacts``)."""
        return self._capped(("contacts",), "contacts", {})

    def tags(self) -> Listing[Item]:
        """Tags (``GET /tags``); one response, no pages."""
        return self._whole("tags")

    def segments(self) -> Listing[Item]:
        """Segments (``GET /segments``); one response, no pages."""
        return self._whole("segments")

    def admins(self) -> Listing[Item]:
        """Admins (``GET /admins``); one response, no pages."""
        return self._whole("admins")

    def _company_member(self, company_id: str) -> Callable[[], Awaitable[Callable[[Item], bool]]]:
        """The scroll filter for a company named by your own ``company_id``.

        A user's nested companies may carry only Intercom's ``id`` (the 1.x
        User Model), so the ``company_id`` is resolved first, with
        ``GET /companies?company_id=...``, and the filter matches that ``id``.
        """
        url = str(self._base_url.joinpath("companies"))

        def read(body: object) -> str:
            found = body.get("id") if isinstance(body, dict) else None
            if not isinstance(found, str | int) or isinstance(found, bool) or found == "":
                raise ResponseFormatError("expected a company object with an 'id'", url=url)
            return str(found)

        async def resolve() -> Callable[[Item], bool]:
            found = await self._transport.get(url, read=read, params={"company_id": company_id})
            return carries("companies", "id", found)

        return resolve

    # One constructor per kind of list: sent whole in one response; page-numbered,
    # going on by the scroll past the cap (or not: scroll=False); the scroll alone.

    def _whole(self, name: str) -> Listing[Item]:
        """A list the API sends whole in one response (``tags``, ``segments``,
        ``admins``): no pages, no record cap, no scroll, no count to check."""
        source = IntercomList(
            transport=self._transport,
            url=self._url((name,)),
            items_key=name,
            params={},
            record_cap=None,
        )
        window = self._window
        changes = ListChanges()

        def start(first: int) -> AsyncGenerator[Page[Item], None]:
            return ordered_pages(source, window=window, changes=changes, start=first)

        return self._listing(start, changes)

    def _capped(
        self,
        path: tuple[str, ...],
        items_key: str,
        filters: dict[str, str],
        *,
        scroll: bool | None = None,
        over: tuple[str, ...] | None = None,
        keep: Keep | None = None,
    ) -> Listing[Item]:
        """A list under the 10,000-record cap of page-numbered listing, as
        ``scroll`` says (see ``users``): the pages, then the scroll past the cap
        (``None``); the pages alone (``False``); the scroll alone (``True``). The
        scroll walks the collections ``over`` (default: ``path[0]``) one after the
        other, keeping what ``keep`` accepts."""
        if scroll not in (None, True, False):
            raise ValueError(f"scroll must be None (past the cap), True or False, got {scroll!r}")
        changes = ListChanges()
        url = str(self._url(path))
        scrolled = None if scroll is False else self._scrolled(changes, over or (path[0],), keep)
        if scrolled is not None and scroll:
            return self._scroll_only(scrolled, changes, url=url, filtered=keep is not None)
        return self._paged(
            path, items_key, filters, changes, then=scrolled, filtered=keep is not None
        )

    def _paged(
        self,
        path: tuple[str, ...],
        items_key: str,
        filters: dict[str, str],
        changes: ListChanges,
        *,
        then: Callable[..., AsyncGenerator[Page[Item], None]] | None,
        filtered: bool,
    ) -> Listing[Item]:
        """The pages of ``path``, and past the cap ``then`` (the scroll; ``None``:
        ``PageLimitError``), the whole checked against the list's count."""
        url = self._url(path)
        source = IntercomList(
            transport=self._transport,
            url=url,
            items_key=items_key,
            params={**filters, "per_page": str(self._per_page)},
            record_cap=RECORD_CAP,
        )
        window = self._window
        dedupe = not self._keep_duplicates

        def start(first: int) -> AsyncGenerator[Page[Item], None]:
            pages = _scroll_past_cap(
                source, window=window, changes=changes, dedupe=dedupe, first=first, scrolled=then
            )
            return count_checked(pages, changes, url=str(url), filtered=filtered, resumed=first > 1)

        return self._listing(start, changes)

    def _scroll_only(
        self,
        scrolled: Callable[..., AsyncGenerator[Page[Item], None]],
        changes: ListChanges,
        *,
        url: str,
        filtered: bool,
    ) -> Listing[Item]:
        """The scroll alone (``scroll=True``), checked against the list's count."""

        def start(first: int) -> AsyncGenerator[Page[Item], None]:
            pages = scrolled(start=first)
            return count_checked(pages, changes, url=url, filtered=filtered, resumed=first > 1)

        return self._listing(start, changes)

    def _scrolled(
        self, changes: ListChanges, collections: tuple[str, ...], keep: Keep | None
    ) -> Callable[..., AsyncGenerator[Page[Item], None]]:
        """The scroll over ``collections``, one after the other, kept to ``keep``:
        a function of ``start``, ``skip`` and ``first_number`` (see ``Scroll.pages``)."""
        transport = self._transport
        sources = tuple(
            (self._base_url.joinpath(collection, "scroll"), collection)
            for collection in collections
        )

        async def scrolled(
            *, start: int = 1, skip: set[Any] | None = None, first_number: int = 1
        ) -> AsyncGenerator[Page[Item], None]:
            changes.method = SWITCHED_TO_SCROLL if first_number > 1 else "scroll"
            kept = keep
            if kept is not None and inspect.iscoroutinefunction(kept):
                kept = await kept()
            lock = self._scroll_lock
            scroller = Scroll(transport=transport, lock=lock, sources=sources, keep=kept)  # type: ignore[arg-type]
            async with aclosing(
                scroller.pages(start=start, skip=skip, first_number=first_number)
            ) as pages:
                async for page in pages:
                    yield page

        return scrolled

    def _url(self, path: tuple[str, ...]) -> URL:
        # Each segment is quoted whole, so an id can never add a path segment.
        return self._base_url.joinpath(*(quote(part, safe="") for part in path), encoded=True)

    def _listing(
        self, start: Callable[[int], AsyncGenerator[Page[Item], None]], changes: ListChanges
    ) -> Listing[Item]:
        listing = Listing(start, changes, scrub=self._transport.scrub)
        self._open.add(listing.state)
        return listing


Keep = Callable[[Item], bool] | Callable[[], Awaitable[Callable[[Item], bool]]]
"""What a scroll keeps: a filter of records, or an async function that makes one
(a company named by your own ``company_id`` is looked up first)."""


_PEOPLE: Final = ("users", "contacts")
"""The scrolls that together hold a tag's, segment's or company's users and leads, in
the order they are walked."""


async def _scroll_past_cap(
    source: IntercomList,
    *,
    window: int,
    changes: ListChanges,
    dedupe: bool,
    first: int,
    scrolled: Callable[..., AsyncGenerator[Page[Item], None]] | None,
) -> AsyncGenerator[Page[Item], None]:
    """The list's pages; when page-numbered listing stops at the cap (said by any
    page, or by the API refusing one), the rest by the scroll (``scrolled``),
    skipping the records already handed over. ``scrolled`` ``None``: raise."""
    seen: set[Any] = set()
    pages = ordered_pages(source, window=window, changes=changes, start=first)
    if dedupe:
        pages = drop_repeated_ids(pages, changes, seen)
    last_number = first - 1
    try:
        async with aclosing(pages):
            async for page in pages:
                if not dedupe:
                    seen.update(item.get("id") for item in page.items)
                last_number = page.number
                yield page
    except PageLimitError as exc:
        if scrolled is None:
            raise
        if first > 1:
            # The pages already written were numbered pages of per_page; the
            # scroll's batches are not, so no page number can resume it.
            raise PageLimitError(
                f"cannot resume after page {first - 1}: the list is now past the "
                "10,000-record cap of page-numbered listing and can only go on by the "
                "Scroll API, whose batches are not the pages already written; start the "
                f"fetch afresh (the API said: {exc.message})",
                total_count=exc.total_count,
                url=exc.url,
                page=exc.page,
            ) from None
        logger.info("%s: scrolling instead", exc)
        if changes.first_total_count is None:
            changes.first_total_count = changes.last_total_count = exc.total_count
    else:
        return
    async with aclosing(scrolled(skip=seen, first_number=last_number + 1)) as rest:
        async for page in rest:
            yield page


def _keeper(filters: dict[str, str]) -> Callable[[Item], bool] | None:
    """The local filter a scroll needs to stand in for ``tag_id`` or ``segment_id``."""
    if "tag_id" in filters:
        return carries("tags", "id", filters["tag_id"])
    if "segment_id" in filters:
        return carries("segments", "id", filters["segment_id"])
    return None


def _check_id(name: str, value: str | int) -> str:
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not text:
        raise ValueError(f"{name} must be a non-empty string or integer, got {value!r}")
    if text in (".", ".."):
        # A URL resolver reads these as path steps: /companies/../users is /users.
        raise ValueError(f"{name} cannot be {text!r} (a URL would read it as a path step)")
    return text


def _filters(**ids: str | int | None) -> dict[str, str]:
    return {name: _check_id(name, value) for name, value in ids.items() if value is not None}
