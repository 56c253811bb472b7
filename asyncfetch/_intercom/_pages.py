"""The Intercom layer: how one of Intercom's list endpoints is paged and read.

An ``IntercomList`` is the engine's ``PageSource`` for one endpoint with its
filters: it knows the URL, the query parameters, and which key of the
response body holds the items (``users``, ``companies``, ``contacts``…).

It also knows how each endpoint says it has reached the 10,000-record cap of
page-numbered listing, and turns every way into ``PageLimitError`` with the
page it came on, so the client can go on by the scroll:

- any page whose ``total_count`` is past the cap (checked before a page that
  would fail is requested);
- users lists: 400 ``bad_request`` "page limit reached, please use scroll
  API" (intercom-node#115; recognised in ``_errors.py``);
- ``/contacts``: 400 ``parameter_invalid`` "'page' not found on model"
  (intercom-ruby#274);
- ``/companies``: a 200 with an empty list, ``total_count: 0`` and
  ``total_pages: 0`` (intercom-ruby#274), which would otherwise read as the
  end of the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from yarl import URL

from .._core._engine import Item, Page
from .._exceptions import (
    InvalidRequestError,
    PageLimitError,
    ResponseFormatError,
    UnsafeURLError,
)
from .._http._transport import Transport

__all__ = ["RECORD_CAP", "IntercomList", "Item", "read_items", "read_page"]

RECORD_CAP: Final = 10_000
"""Intercom's page-numbered listing stops at this many records."""
_CONTACTS_CAP: Final = "'page' not found on model"


@dataclass(frozen=True, slots=True)
class IntercomList:
    """One list endpoint with its filters, ready to be paged.

    ``record_cap`` is the length past which the API refuses page-numbered
    listing (``None`` where it does not apply).
    """

    transport: Transport
    url: URL
    items_key: str
    params: dict[str, str]
    record_cap: int | None = RECORD_CAP

    async def fetch_page(self, number: int) -> Page[Item]:
        url = str(self.url)
        read = partial(read_page, items_key=self.items_key, number=number, url=url)
        try:
            page = await self.transport.get(
                url, read=read, params={**self.params, "page": str(number)}, page=number
            )
        except InvalidRequestError as exc:
            if self.record_cap is not None and _CONTACTS_CAP in str(exc.message):
                # /contacts past the cap: 400 parameter_invalid (intercom-ruby#274).
                raise PageLimitError(
                    f"the API stopped page-numbered listing: {exc.message}; Intercom lists "
                    "at most 10,000 records by page (use the Scroll API past that)",
                    url=exc.url,
                    page=number,
                ) from None
            raise
        cap = self.record_cap
        if cap is None:
            return page
        if page.total_count is not None and page.total_count > cap:
            # Said by the first page that shows it, before any page that would fail.
            raise PageLimitError(
                f"this list holds {page.total_count:,} records; Intercom's page-numbered listing "
                f"stops at {cap:,}: narrow the filter, or list past the cap with the Scroll API",
                total_count=page.total_count,
                url=url,
                page=number,
            )
        if number > 1 and not page.items and (page.total_pages == 0 or page.total_count == 0):
            # /companies past the cap: a 200 with an empty list, total_count 0 and
            # total_pages 0 (intercom-ruby#274). Never the end of a list that
            # had pages before it.
            raise PageLimitError(
                f"page {number} came back empty with total_count {page.total_count} and "
                f"total_pages {page.total_pages}: the API stopped page-numbered listing "
                "(Intercom's companies list answers its 10,000-record cap so)",
                url=url,
                page=number,
            )
        return page

    async def follow(self, url: str, number: int) -> Page[Item]:
        try:
            # A relative link is resolved against the list's own URL.
            target = self.url.join(URL(url))
            port = target.port
        except ValueError:
            raise ResponseFormatError(
                f"pages.next is not a URL: {url!r}", url=str(self.url), page=number
            ) from None
        if (target.scheme, target.host, port) != (self.url.scheme, self.url.host, self.url.port):
            # The token travels with every request: never to another host.
            raise UnsafeURLError(
                f"pages.next points to {target.origin()}, not to the configured "
                f"{self.url.origin()}; refusing to send the token there",
                url=str(self.url),
                page=number,
            )
        url = str(target)
        read = partial(read_page, items_key=self.items_key, number=number, url=url)
        return await self.transport.get(url, read=read, page=number)


def read_page(body: Any, *, items_key: str, number: int, url: str) -> Page[Item]:
    """Read an Intercom list page (``{"type": "user.list", "users": [...], "pages": {...}}``).

    ``pages`` is optional: small lists (tags, segments, admins) come in one
    response without it, and then ``total_pages`` and ``next_url`` are ``None``.
    """
    items = read_items(body, items_key=items_key, url=url, page=number)
    pages = body.get("pages")
    if not isinstance(pages, dict):
        return Page(number=number, items=items, total_count=_int_or_none(body.get("total_count")))
    served = pages.get("page")
    if isinstance(served, int) and served != number:
        # A server or proxy that ignores "page" would repeat page 1 forever.
        raise ResponseFormatError(
            f"asked for page {number}, got page {served}", url=url, page=number
        )
    next_url = pages.get("next")
    return Page(
        number=number,
        items=items,
        total_pages=_int_or_none(pages.get("total_pages")),
        total_count=_int_or_none(body.get("total_count")),
        next_url=next_url if isinstance(next_url, str) and next_url else None,
    )


def read_items(body: Any, *, items_key: str, url: str, page: int | None) -> list[Item]:
    """The items of an Intercom list body: its ``items_key`` list of objects.

    One reader for every envelope that carries records, the numbered pages
    (`read_page`) and the scroll's batches (``_scroll.py``), so that both
    refuse the same bodies: no object, no such key, a list holding anything
    but objects. Returns the list itself, not a copy.
    """
    items = body.get(items_key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ResponseFormatError(
            f"expected a JSON object with a {items_key!r} list of objects", url=url, page=page
        )
    return items


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
