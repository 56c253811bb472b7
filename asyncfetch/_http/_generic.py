"""Any page-numbered JSON API: ``PagesClient`` and the ``PageNumbered`` options.

Intercom is one API that lists by page number; WordPress, GitHub, GitLab,
Discourse and many others do too, each saying in its own place where the
items are and how many pages there will be. ``PageNumbered`` says where, and
``PagesClient`` fetches such a list with everything the Intercom client has:
the same ``Transport`` (one connection pool, the concurrency gate, the
header-driven rate budget, retries, timeouts, the token kept out of every
message), the same engine (page 1 first, then a bounded window of pages in
flight, handed over in order) and the same ``Listing``.

What it cannot know about an API it is told, and what it cannot be told it
checks, failing at once rather than writing the wrong records:

- where the page count is: a dotted path into the body, a header, or the
  ``rel="last"`` URL of a ``Link`` header; without it no page after the first
  is requested concurrently, so it is required (a ``Link`` header with a
  ``next`` but no ``last`` is followed page by page);
- a page number the API ignores (a wrong ``page_param``) would hand over page
  1 again and again: a page identical to the first, or a ``next`` link that
  is not the page after, fails the listing (``ResponseFormatError``);
- with a total count (a path or a header), a list that ends short raises
  ``IncompleteListError``, as the Intercom client's does;
- a misplaced item path or page count fails on the first page, without
  retries: a retry would get the same body.
- a resume whose first page the API refuses (WordPress answers a page past
  the last with a 400) asks page 1: if the list now ends before that page,
  the resume has nothing left to fetch and ends; else the refusal stands.

Error responses are read for a ``message`` and a ``code`` (WordPress's
``{"code": ..., "message": ...}``, GitHub's ``{"message": ...}``), not for
Intercom's ``error.list``; a 403 with ``X-RateLimit-Remaining: 0`` is GitHub's
spent rate budget, a ``RateLimitError`` waited out like a 429.

Records are handed over as sent: there is no id to drop a repeated record by,
so a list that changes while it is fetched can show one twice
(``Listing.changes`` says when the count moved).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from .._config import Retries, check_positive, check_whole
from .._core._count import count_checked
from .._core._engine import Item, ListChanges, Page, ordered_pages
from .._core._listing import Listing, ListingState, close_listings
from .._exceptions import (
    InvalidRequestError,
    NotFoundError,
    ResponseFormatError,
    UnsafeURLError,
)
from .._version import __version__
from ._ratelimit import header_number
from ._shared import SharedBudgetOption, shared_budget_path
from ._transport import ErrorReport, FetchStats, Transport
from ._urls import check_base_url

__all__ = ["PageNumbered", "PagesClient"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_NOT_SECRET: Final = frozenset({"accept", "accept-language", "user-agent", "content-type"})
"""Header names whose values are taken for secrets unless listed here (or
ending in ``-version``, such as ``X-GitHub-Api-Version``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageNumbered:
    """How one page-numbered JSON API pages its lists.

    Give exactly one of ``total_pages``, ``total_pages_header`` and
    ``link_last``: where the number of pages is said.

    - ``items``: where a page's items are, a dotted path into the body
      (``"data.items"``); ``""`` when the body is the list. Each item must be
      a JSON object. Default ``""``.
    - ``total_pages``: a dotted path into the body to the page count
      (``"meta.total_pages"``). Default ``None``.
    - ``total_pages_header``: a response header holding the page count
      (``"X-WP-TotalPages"``, ``"X-Total-Pages"``). Default ``None``.
    - ``link_last``: the page count is the page number of the ``rel="last"``
      URL of the ``Link`` header (GitHub); no ``Link`` header means one page,
      a ``next`` with no ``last`` is followed page by page. Default ``False``.
    - ``total_count``: a dotted path into the body to the number of items in
      the whole list; when given (or ``total_count_header``), a list that ends
      with fewer raises ``IncompleteListError``. Default ``None``.
    - ``total_count_header``: a header holding that number (``"X-WP-Total"``,
      ``"X-Total"``). Default ``None``.
    - ``page_param``: the query parameter of the page number, counted from 1.
      Default ``"page"``.
    - ``per_page_param``: the query parameter of the page size. Default
      ``"per_page"``.
    - ``per_page``: the page size sent; ``None`` sends none (the API's
      default). Default ``None``. Most APIs cap it (WordPress and GitHub at 100).
    """

    items: str = ""
    total_pages: str | None = None
    total_pages_header: str | None = None
    link_last: bool = False
    total_count: str | None = None
    total_count_header: str | None = None
    page_param: str = "page"
    per_page_param: str = "per_page"
    per_page: int | None = None

    def __post_init__(self) -> None:
        given = [
            name
            for name, value in (
                ("total_pages", self.total_pages),
                ("total_pages_header", self.total_pages_header),
                ("link_last", self.link_last or None),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of total_pages (a path in the body), total_pages_header "
                f"(a header) or link_last=True (a Link header), got {len(given)}"
                + (f": {', '.join(given)}" if given else "")
            )
        if type(self.link_last) is not bool:
            raise ValueError(f"link_last must be True or False, got {self.link_last!r}")
        if self.total_count is not None and self.total_count_header is not None:
            raise ValueError("give total_count (a path) or total_count_header, not both")
        _check_path("items", self.items, empty=True)
        for name in ("total_pages", "total_count"):
            value = getattr(self, name)
            if value is not None:
                _check_path(name, value, empty=False)
        for name in ("total_pages_header", "total_count_header"):
            value = getattr(self, name)
            if value is not None:
                check_header_name(name, value)
        for name in ("page_param", "per_page_param"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or not value.isprintable():
                raise ValueError(f"{name} must be a non-empty query parameter name, got {value!r}")
        if self.page_param == self.per_page_param:
            raise ValueError(f"page_param and per_page_param are both {self.page_param!r}")
        if self.per_page is not None:
            check_whole("per_page", self.per_page)


class PagesClient:
    """An async client for the page-numbered lists of any JSON API.

    Each call of ``list`` returns a ``Listing`` of item dicts in API order,
    fetched as ``IntercomClient`` fetches: page 1 first, then the other
    pages concurrently, a bounded window ahead of the consumer::

        paging = PageNumbered(total_pages_header="X-WP-TotalPages", per_page=100)
        async with PagesClient(base_url="https://example.org/wp-json") as client:
            async for post in client.list("wp/v2/posts", paging=paging):
                ...

    All options are keyword-only and checked at once (``ValueError``):

    - ``base_url``: the API's root; ``list`` paths are added to it. Required.
    - ``headers``: sent with every request (``{"Authorization": "token ..."}``).
      Their values are secrets (but those of ``Accept``, ``User-Agent``,
      ``Content-Type`` and ``*-Version``): never shown in a repr, a log line
      or an error message. Default none.
    - ``concurrency``: requests on the wire at once, for all lists of this
      client together. Default 16.
    - ``rate``: at most this many requests started per second; ``None``
      for no cap. Default ``None``.
    - ``timeout``: seconds allowed for one request, from sending it to having
      read the whole body; ``None`` for no limit. Default 30.
    - ``window``: pages held at once per list; this bounds memory. Default
      ``2 * concurrency``.
    - ``retries``: what is retried and how (``Retries``). Default ``Retries()``.
    - ``allow_insecure_http``: plain ``http://`` to a host that is not
      loopback is refused unless ``True`` (the headers would travel
      unencrypted). Default ``False``.
    - ``shared_budget``: ``True`` (or a folder) shares the rate budget with
      every process on this machine sending the same secret headers to the
      same ``base_url``, as ``IntercomClient``'s option does. Default ``False``.

    Rate limits: ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (as
    GitHub sends them) hold requests back before the window is spent;
    a 429 pauses every request until the window is back.
    """

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 16,
        rate: float | None = None,
        timeout: float | None = 30.0,
        window: int | None = None,
        retries: Retries | None = None,
        allow_insecure_http: bool = False,
        shared_budget: SharedBudgetOption = False,
    ) -> None:
        self._base_url = check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        if retries is not None and not isinstance(retries, Retries):
            raise ValueError(f"retries must be an asyncfetch.Retries, got {retries!r}")
        check_whole("concurrency", concurrency)
        check_positive("rate", rate, unit="requests per second")
        check_positive("timeout", timeout, unit="seconds")
        if window is not None:
            check_whole("window", window)
        given = dict(headers or {})
        for name, value in given.items():
            check_header_name("a header name", name)
            if not isinstance(value, str) or not value.isprintable():
                # Never echo the value: it is likely a token.
                raise ValueError(f"the value of header {name!r} must be printable text")
        self._header_names = tuple(given)
        self._concurrency = concurrency
        self._rate = rate
        self._timeout = timeout
        self._window = window or 2 * concurrency
        self._transport = Transport(
            headers={
                "Accept": "application/json",
                "User-Agent": f"asyncfetch/{__version__}",
                **given,
            },
            concurrency=concurrency,
            rate=rate,
            timeout=timeout,
            retries=retries or Retries(),
            secrets=_secrets_of(given),
            decode_error=_error_of,
            owner="PagesClient",
            shared_budget=shared_budget_path(
                shared_budget,
                # Keyed by every secret header: the same credentials share a budget.
                secret="\0".join(sorted(_secrets_of(given))),
                base_url=str(self._base_url),
            ),
        )
        self._open: weakref.WeakSet[ListingState[Item]] = weakref.WeakSet()

    def __repr__(self) -> str:
        return (
            f"PagesClient(base_url={str(self._base_url)!r}, headers={list(self._header_names)!r}, "
            f"concurrency={self._concurrency}, rate={self._rate!r}, timeout={self._timeout!r})"
        )

    @property
    def stats(self) -> FetchStats:
        """Requests sent, retries, statuses seen, bytes and rate-limit pauses so far."""
        return self._transport.stats

    async def __aenter__(self) -> PagesClient:
        await self._transport.open()
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

    def list(
        self, path: str = "", *, paging: PageNumbered, params: Mapping[str, str] | None = None
    ) -> Listing[Item]:
        """The list at ``path`` (added to ``base_url``; ``""`` for ``base_url`` itself),
        paged as ``paging`` says, with the query ``params`` sent with every page."""
        if paging is None or not isinstance(paging, PageNumbered):
            raise ValueError(f"paging must be an asyncfetch.PageNumbered, got {paging!r}")
        url = self._base_url
        for part in path.strip("/").split("/") if path.strip("/") else ():
            if part in ("", ".", ".."):
                raise ValueError(f"path must be plain path segments, got {path!r}")
            # Each segment is quoted whole, so a value can never add a segment.
            url = url.joinpath(quote(part, safe=""), encoded=True)
        query = {str(k): str(v) for k, v in (params or {}).items()}
        for taken in (paging.page_param, paging.per_page_param):
            if taken in query:
                raise ValueError(f"params must not set {taken!r}: the paging sets it")
        if paging.per_page is not None:
            query[paging.per_page_param] = str(paging.per_page)
        source = NumberedList(transport=self._transport, url=url, params=query, paging=paging)
        window = self._window
        changes = ListChanges()
        counted = paging.total_count is not None or paging.total_count_header is not None

        def start(first: int) -> AsyncGenerator[Page[Item], None]:
            pages = ordered_pages(source, window=window, changes=changes, start=first)
            if not counted:
                changes.count_check = "not made: no total count was configured"
                return pages
            return count_checked(pages, changes, url=str(url), filtered=False, resumed=first > 1)

        listing = Listing(start, changes, scrub=self._transport.scrub)
        self._open.add(listing.state)
        return listing


class NumberedList:
    """The engine's ``PageSource`` for one list of a page-numbered API."""

    def __init__(
        self, *, transport: Transport, url: URL, params: dict[str, str], paging: PageNumbered
    ) -> None:
        self._transport = transport
        self._url = url
        self._params = params
        self._paging = paging
        self._items_path = paging.items.split(".") if paging.items else []
        self._first: tuple[int, list[Item]] | None = None

    async def fetch_page(self, number: int) -> Page[Item]:
        url = str(self._url)
        try:
            body, headers = await self._transport.get(
                url,
                read=_pair,
                params={**self._params, self._paging.page_param: str(number)},
                page=number,
                with_headers=True,
            )
        except (InvalidRequestError, NotFoundError):
            if self._first is not None or number == 1:
                raise
            # A resume's first page refused: WordPress answers a page past the
            # last with a 400. Page 1 says whether the list now ends before it.
            first = await self.fetch_page(1)
            self._first = None
            if first.total_pages is None or first.total_pages >= number:
                raise
            return replace(first, number=number, items=[], next_url=None)
        return self._page(body, headers, number, url)

    async def follow(self, url: str, number: int) -> Page[Item]:
        try:
            target = self._url.join(URL(url))
            port = target.port
        except ValueError:
            raise ResponseFormatError(
                f"the next link is not a URL: {url!r}", url=str(self._url), page=number
            ) from None
        if (target.scheme, target.host, port) != (self._url.scheme, self._url.host, self._url.port):
            # The headers travel with every request: never to another host.
            raise UnsafeURLError(
                f"the next link points to {target.origin()}, not to the configured "
                f"{self._url.origin()}; refusing to send the headers there",
                url=str(self._url),
                page=number,
            )
        shown = str(target)
        body, headers = await self._transport.get(shown, read=_pair, page=number, with_headers=True)
        return self._page(body, headers, number, shown)

    def _page(self, body: Any, headers: CIMultiDictProxy[str], number: int, url: str) -> Page[Item]:
        paging = self._paging
        items = _walk(body, self._items_path)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            where = f"at {paging.items!r}" if paging.items else "as the body"
            raise ResponseFormatError(
                f"expected a list of JSON objects {where}; got {_shape(items)} "
                "(is the items path right? --items)",
                url=url,
                page=number,
            )
        next_url: str | None = None
        if paging.link_last:
            total_pages, next_url = self._from_links(headers, number, url)
        else:
            if paging.total_pages is not None:
                total_pages = _count(_walk(body, paging.total_pages.split(".")))
                where = f"a whole number at {paging.total_pages!r} of the body (--total-pages)"
            else:
                header = str(paging.total_pages_header)
                total_pages = _count(headers.get(header))
                where = f"a whole number in the {header} header (--total-pages-header)"
            if total_pages is None:
                raise ResponseFormatError(f"no page count: expected {where}", url=url, page=number)
            if number < total_pages:
                # Only its being set matters to the engine, but let it be true.
                query = {**self._params, paging.page_param: str(number + 1)}
                next_url = str(self._url.with_query(query))
        total_count = None
        if paging.total_count is not None:
            total_count = _count(_walk(body, paging.total_count.split(".")))
            where = f"a whole number at {paging.total_count!r} of the body"
        elif paging.total_count_header is not None:
            total_count = _count(headers.get(paging.total_count_header))
            where = f"a whole number in the {paging.total_count_header} header"
        if total_count is None and (paging.total_count or paging.total_count_header):
            raise ResponseFormatError(f"no total count: expected {where}", url=url, page=number)
        self._check_not_repeated(number, items, url)
        return Page(
            number=number,
            items=items,
            total_pages=total_pages,
            total_count=total_count,
            next_url=next_url,
        )

    def _check_not_repeated(self, number: int, items: list[Item], url: str) -> None:
        """An API that ignores the page parameter answers page 1 for every page."""
        first = self._first
        if first is None:
            self._first = (number, items)
        elif number != first[0] and items and items == first[1]:
            raise ResponseFormatError(
                f"page {number} holds the same records as page {first[0]}: does this API "
                f"take its page number as {self._paging.page_param!r}? (--page-param)",
                url=url,
                page=number,
            )

    def _from_links(
        self, headers: CIMultiDictProxy[str], number: int, url: str
    ) -> tuple[int | None, str | None]:
        """``(total_pages, next_url)`` from the ``Link`` headers (RFC 8288)."""
        links: dict[str, str] = {}
        for value in headers.getall("Link", ()):
            for target, rels in _LINK.findall(value):
                for rel in rels.lower().split():
                    links.setdefault(rel, target)
        next_link = links.get("next")
        if next_link is not None:
            after = self._page_number(next_link, "next", number, url)
            if after != number + 1:
                raise ResponseFormatError(
                    f"page {number}'s next link is page {after}, not {number + 1}: does this "
                    f"API take its page number as {self._paging.page_param!r}? (--page-param)",
                    url=url,
                    page=number,
                )
        last_link = links.get("last")
        if last_link is not None:
            return self._page_number(last_link, "last", number, url), next_link
        # No last link: the last page (GitHub's carries only first and prev),
        # a list of one page (no Link header at all), or an API that does not
        # count (next only: followed page by page).
        return (number if next_link is None else None), next_link

    def _page_number(self, link: str, rel: str, number: int, url: str) -> int:
        try:
            value = URL(link).query.get(self._paging.page_param)
        except ValueError:
            value = None
        found = _count(value)
        if found is None:
            raise ResponseFormatError(
                f'the Link header\'s rel="{rel}" URL has no whole-number '
                f"{self._paging.page_param!r} parameter (--page-param)",
                url=url,
                page=number,
            )
        return found


_LINK = re.compile(r'<([^>]*)>\s*;[^,<]*?\brel\s*=\s*"?([^";,]+)"?')


def check_header_name(name: str, value: object) -> None:
    """``ValueError`` unless ``value`` is an HTTP header name (a token)."""
    if not isinstance(value, str) or not _HEADER_NAME.match(value):
        raise ValueError(f"{name} must be an HTTP header name, got {value!r}")


def _check_path(name: str, value: object, *, empty: bool) -> None:
    if not isinstance(value, str) or (not value and not empty):
        raise ValueError(f"{name} must be a dotted path such as 'data.items', got {value!r}")
    if value and any(not part for part in value.split(".")):
        raise ValueError(f"{name} must be a dotted path such as 'data.items', got {value!r}")


def _pair(response: tuple[Any, CIMultiDictProxy[str]]) -> tuple[Any, CIMultiDictProxy[str]]:
    return response


_MISSING: Final = object()


def _walk(body: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(body, dict) or key not in body:
            return _MISSING
        body = body[key]
    return body


def _shape(value: Any) -> str:
    if value is _MISSING:
        return "nothing there"
    if isinstance(value, list):
        return "a list holding something other than objects"
    return f"a JSON {type(value).__name__}".replace("dict", "object").replace("NoneType", "null")


def _count(value: Any) -> int | None:
    """A whole number of at least 0, from a body's integer or a header's digits."""
    if isinstance(value, str):
        value = value.strip()
        return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _secrets_of(headers: Mapping[str, str]) -> list[str]:
    """The values to keep out of every message: each header's whole value, and the
    credentials of a ``scheme credentials`` value (``token abc`` -> ``abc``)."""
    secrets = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _NOT_SECRET or lowered.endswith("-version"):
            continue
        secrets.append(value.strip())
        _, _, credentials = value.strip().partition(" ")
        if credentials.strip():
            secrets.append(credentials.strip())
    return secrets


def _error_of(status: int, body: bytes, headers: CIMultiDictProxy[str]) -> ErrorReport:
    """An error response of an API that is not Intercom: ``{"code", "message"}``
    (WordPress), ``{"message"}`` (GitHub), ``{"error": ...}``, or any body."""
    code = message = None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict):
        found = payload.get("code")
        code = found if isinstance(found, str) else None
        found = payload.get("message")
        if not isinstance(found, str):
            found = payload.get("error")
            if isinstance(found, dict):
                found = found.get("message")
        message = found if isinstance(found, str) and found else None
    return ErrorReport(
        message=message,
        code=code,
        request_id=headers.get("X-Request-Id") or headers.get("X-GitHub-Request-Id"),
        # GitHub answers a spent rate budget with 403 (or 429) and Remaining 0
        # ("Rate limits for the REST API"): wait for the window, like a 429.
        rate_limited=status == 403 and header_number(headers.get("X-RateLimit-Remaining")) == 0,
    )
