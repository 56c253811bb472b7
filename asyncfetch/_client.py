"""``IntercomClient``: the public entry point for Intercom's page-numbered lists."""

from __future__ import annotations

import math
import weakref
from types import TracebackType
from typing import Final
from urllib.parse import quote

from yarl import URL

from ._engine import ordered_pages
from ._http import Transport
from ._intercom import IntercomList, Item
from ._listing import Listing
from ._version import __version__

__all__ = ["DEFAULT_BASE_URL", "IntercomClient"]

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
      shown in a repr, a log line or an error message.
    - ``base_url``: the API's root; default ``https://api.intercom.io``.
    - ``concurrency``: requests on the wire at once, for all lists of this
      client together; default 16.
    - ``rate``: at most this many requests started per second; default
      ``None``, no cap.
    - ``per_page``: items per page, 1 to 60; default 50.
    - ``timeout``: seconds allowed for one request, from sending it to having
      read the whole body; ``None`` for no limit; default 30.
    - ``window``: pages held at once per list, requested or answered but not
      yet consumed; this bounds memory; default ``2 * concurrency``.
    - ``intercom_version``: sent as the ``Intercom-Version`` header when set.
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
        intercom_version: str | None = None,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token must be a non-empty string")
        self._base_url = _check_base_url(base_url)
        _check_positive_int("concurrency", concurrency)
        _check_positive_number("rate", rate, unit="requests per second")
        if not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(
                f"per_page must be an integer from 1 to {MAX_PER_PAGE}, got {per_page!r}"
            )
        _check_positive_number("timeout", timeout, unit="seconds")
        if window is not None:
            _check_positive_int("window", window)
        self._concurrency = concurrency
        self._rate = rate
        self._per_page = per_page
        self._timeout = timeout
        self._window = window or 2 * concurrency
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"asyncfetch/{__version__}",
        }
        if intercom_version:
            headers["Intercom-Version"] = intercom_version
        self._transport = Transport(
            headers=headers, concurrency=concurrency, rate=rate, timeout=timeout
        )
        self._listings: weakref.WeakSet[Listing[Item]] = weakref.WeakSet()

    def __repr__(self) -> str:
        return (
            f"IntercomClient(base_url={str(self._base_url)!r}, concurrency={self._concurrency}, "
            f"rate={self._rate!r}, per_page={self._per_page}, timeout={self._timeout!r})"
        )

    async def __aenter__(self) -> IntercomClient:
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
        for listing in list(self._listings):
            await listing.aclose()
        await self._transport.close()

    # The lists. Each returns a Listing; nothing is sent until it is iterated.

    def users(
        self, *, tag_id: str | int | None = None, segment_id: str | int | None = None
    ) -> Listing[Item]:
        """Users and leads (``GET /users``), optionally those carrying a tag or in a segment.

        ``tag_id`` and ``segment_id`` cannot be combined (the API refuses it).
        """
        if tag_id is not None and segment_id is not None:
            raise ValueError(
                "pass tag_id or segment_id, not both: the Intercom API cannot combine them"
            )
        return self._list(("users",), "users", _filters(tag_id=tag_id, segment_id=segment_id))

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
            return self._list(("companies", _check_id("id", id), "users"), "users", {})
        return self._list(
            ("companies",), "users", {**_filters(company_id=company_id), "type": "user"}
        )

    def companies(
        self, *, tag_id: str | int | None = None, segment_id: str | int | None = None
    ) -> Listing[Item]:
        """Companies (``GET /companies``), optionally those carrying a tag or in a segment."""
        if tag_id is not None and segment_id is not None:
            raise ValueError(
                "pass tag_id or segment_id, not both: the Intercom API cannot combine them"
            )
        return self._list(
            ("companies",), "companies", _filters(tag_id=tag_id, segment_id=segment_id)
        )

    def contacts(self) -> Listing[Item]:
        """Leads (``GET /contacts``)."""
        return self._list(("contacts",), "contacts", {})

    def tags(self) -> Listing[Item]:
        """Tags (``GET /tags``); one response, no pages."""
        return self._list(("tags",), "tags", {}, paged=False)

    def segments(self) -> Listing[Item]:
        """Segments (``GET /segments``); one response, no pages."""
        return self._list(("segments",), "segments", {}, paged=False)

    def admins(self) -> Listing[Item]:
        """Admins (``GET /admins``); one response, no pages."""
        return self._list(("admins",), "admins", {}, paged=False)

    def _list(
        self, path: tuple[str, ...], items_key: str, filters: dict[str, str], *, paged: bool = True
    ) -> Listing[Item]:
        params = {**filters, "per_page": str(self._per_page)} if paged else filters
        source = IntercomList(
            transport=self._transport,
            # Each segment is quoted whole, so an id can never add a path segment.
            url=self._base_url.joinpath(*(quote(part, safe="") for part in path), encoded=True),
            items_key=items_key,
            params=params,
        )
        window = self._window
        listing = Listing(lambda: ordered_pages(source, window=window))
        self._listings.add(listing)
        return listing


def _check_base_url(base_url: str) -> URL:
    try:
        url = URL(base_url)
    except (TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"base_url must be an http:// or https:// URL with a host, got {base_url!r}"
        )
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not carry a query or fragment, got {base_url!r}")
    return url


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")


def _check_positive_number(name: str, value: object, *, unit: str) -> None:
    if value is None:
        return
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number of {unit} or None, got {value!r}")


def _check_id(name: str, value: str | int) -> str:
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not text:
        raise ValueError(f"{name} must be a non-empty string or integer, got {value!r}")
    return text


def _filters(**ids: str | int | None) -> dict[str, str]:
    return {name: _check_id(name, value) for name, value in ids.items() if value is not None}
