"""asyncfetch: every page of a page-numbered list API, fetched concurrently and in order.

Built first for Intercom's "list users by tag / segment / company" endpoints::

    import asyncfetch

    async with asyncfetch.IntercomClient(token="...") as client:
        async for user in client.users(tag_id="3142"):
            print(user["email"])

and for any other page-numbered JSON API, ``PagesClient`` told by
``PageNumbered`` where the items and the page count are.
"""

from ._config import Retries
from ._core._count import count_check_resumed
from ._core._dedupe import drop_repeated_ids
from ._core._engine import SWITCHED_TO_SCROLL, ListChanges, Page, PageSource, ordered_pages
from ._core._listing import Listing
from ._exceptions import (
    APIError,
    AsyncFetchError,
    AuthenticationError,
    ConnectError,
    FleetConfigError,
    FleetError,
    FleetTokenError,
    IncompleteListError,
    InvalidRequestError,
    NotFoundError,
    PageLimitError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    SchemaVersionError,
    ServerError,
    SinkError,
    SinkLockedError,
    SinkOpenError,
    SinkURLError,
    SinkWriteError,
    TransportError,
    UnsafeURLError,
)
from ._http._generic import PageNumbered, PagesClient
from ._http._transport import FetchStats
from ._intercom._client import DEFAULT_BASE_URL, IntercomClient
from ._intercom._pages import Item
from ._sink import KINDS as SINK_KINDS
from ._sink import SCHEMA_VERSION, ListSynced, Sink, SinkRun, open_sink, sync_list, write_pages
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "SCHEMA_VERSION",
    "SINK_KINDS",
    "SWITCHED_TO_SCROLL",
    "APIError",
    "AsyncFetchError",
    "AuthenticationError",
    "ConnectError",
    "FetchStats",
    "FleetConfigError",
    "FleetError",
    "FleetTokenError",
    "IncompleteListError",
    "IntercomClient",
    "InvalidRequestError",
    "Item",
    "ListChanges",
    "ListSynced",
    "Listing",
    "NotFoundError",
    "Page",
    "PageLimitError",
    "PageNumbered",
    "PageSource",
    "PagesClient",
    "RateLimitError",
    "RequestTimeout",
    "ResponseFormatError",
    "Retries",
    "SchemaVersionError",
    "ServerError",
    "Sink",
    "SinkError",
    "SinkLockedError",
    "SinkOpenError",
    "SinkRun",
    "SinkURLError",
    "SinkWriteError",
    "TransportError",
    "UnsafeURLError",
    "__version__",
    "count_check_resumed",
    "drop_repeated_ids",
    "open_sink",
    "ordered_pages",
    "sync_list",
    "write_pages",
]
