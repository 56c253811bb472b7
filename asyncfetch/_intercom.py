"""The Intercom layer: how one of Intercom's list endpoints is paged and read.

An ``IntercomList`` is the engine's ``PageSource`` for one endpoint with its
filters: it knows the URL, the query parameters, and which key of the
response body holds the items (``users``, ``companies``, ``contacts``…).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from ._engine import Page
from ._exceptions import ResponseFormatError
from ._http import Transport

__all__ = ["IntercomList", "Item", "read_page"]

Item = dict[str, Any]
"""One record of a list (a user, company, contact…), as the API sent it."""


@dataclass(frozen=True, slots=True)
class IntercomList:
    """One list endpoint with its filters, ready to be paged."""

    transport: Transport
    url: URL
    items_key: str
    params: dict[str, str]

    async def fetch_page(self, number: int) -> Page[Item]:
        params = {**self.params, "page": str(number)}
        body = await self.transport.get_json(str(self.url), params=params, page=number)
        return read_page(body, items_key=self.items_key, number=number, url=str(self.url))

    async def follow(self, url: str, number: int) -> Page[Item]:
        target = URL(url)
        if target.origin() != self.url.origin():
            # The token travels with every request: never to another host.
            raise ResponseFormatError(
                f"pages.next points to {target.origin()}, not to the configured "
                f"{self.url.origin()}; refusing to send the token there",
                url=str(self.url),
                page=number,
            )
        body = await self.transport.get_json(url, page=number)
        return read_page(body, items_key=self.items_key, number=number, url=url)


def read_page(body: Any, *, items_key: str, number: int, url: str) -> Page[Item]:
    """Read an Intercom list page (``{"type": "user.list", "users": [...], "pages": {...}}``).

    ``pages`` is optional: small lists (tags, segments, admins) come in one
    response without it, and then ``total_pages`` and ``next_url`` are ``None``.
    """
    items = body.get(items_key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ResponseFormatError(
            f"expected a JSON object with a {items_key!r} list", url=url, page=number
        )
    pages = body.get("pages")
    if not isinstance(pages, dict):
        return Page(number=number, items=items, total_count=_int_or_none(body.get("total_count")))
    next_url = pages.get("next")
    return Page(
        number=number,
        items=items,
        total_pages=_int_or_none(pages.get("total_pages")),
        total_count=_int_or_none(body.get("total_count")),
        next_url=next_url if isinstance(next_url, str) and next_url else None,
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
