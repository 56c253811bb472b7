"""The exceptions asyncfetch raises.

Every failure of a fetch is an ``AsyncFetchError``; nothing from aiohttp or
asyncio escapes the public API (``_http/_transport.py`` maps them, in one place)::

    AsyncFetchError
    ├── APIError                  the API answered with an error status
    │   ├── InvalidRequestError   400, 422: the request itself is wrong
    │   ├── AuthenticationError   401, 403: bad or missing token, no permission
    │   ├── NotFoundError         404: unknown tag, segment, company or path
    │   ├── RateLimitError        429 (GitHub: 403, Remaining 0): the rate budget is spent
    │   └── ServerError           5xx
    ├── TransportError            no HTTP answer at all
    │   ├── ConnectError          refused, reset, DNS, closed keep-alive
    │   └── RequestTimeout        the request took longer than ``timeout``
    ├── ResponseFormatError       a 2xx whose body is not the JSON expected
    ├── PageLimitError            the list is longer than page-numbered listing reaches
    ├── IncompleteListError       the list ended short of the count it said it held
    ├── UnsafeURLError            a ``next`` link to another host: not followed
    ├── SinkError                 the database a sync writes to (``--db``) failed
    │   ├── SinkURLError          an unknown scheme or a malformed database URL
    │   ├── SinkOpenError         cannot open: unreadable, read-only, refused, bad login
    │   ├── SinkLockedError       another asyncfetch run is writing this database
    │   ├── SchemaVersionError    the database's schema is newer than this code knows
    │   └── SinkWriteError        a write failed (full disk...): that page rolled back
    └── FleetError                a workspace of the fleet (``asyncfetch fleet``) failed
        ├── FleetConfigError      FLEET.toml is unreadable or wrong (before any request)
        └── FleetTokenError       a workspace's token_env is not set on the worker

Invalid arguments are not fetch failures: they raise ``ValueError`` before any
request is sent.

429, 5xx, ``TransportError`` and ``ResponseFormatError`` are retried (see
``Retries``) before they are raised; ``attempts`` says how many tries were made.
Scroll requests are the exception: re-sending one would skip a batch (the
cursor lives on the server), so any failure starts the scroll again instead.

Messages name the URL and page but never the token: it only travels in a
header, and where a server echoes it back (in an error body, a ``request_id``,
a page that is not JSON) ``_http/_transport.py`` replaces it with ``[token]`` in the
message, ``args``, ``url``, ``code`` and ``request_id`` of the error.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AsyncFetchError",
    "AuthenticationError",
    "ConnectError",
    "FleetConfigError",
    "FleetError",
    "FleetTokenError",
    "IncompleteListError",
    "InvalidRequestError",
    "NotFoundError",
    "PageLimitError",
    "RateLimitError",
    "RequestTimeout",
    "ResponseFormatError",
    "SchemaVersionError",
    "ServerError",
    "SinkError",
    "SinkLockedError",
    "SinkOpenError",
    "SinkURLError",
    "SinkWriteError",
    "TransportError",
    "UnsafeURLError",
]


class AsyncFetchError(Exception):
    """Root of every error a fetch raises.

    ``url`` is the request that failed, ``page`` its page number (``None``
    when the request was not for a numbered page) and ``attempts`` how many
    times it was tried.
    """

    def __init__(self, message: str, *, url: str | None = None, page: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.page = page
        self.attempts = 1

    def __str__(self) -> str:
        where = []
        if self.page is not None:
            where.append(f"page {self.page}")
        if self.url is not None:
            where.append(self.url)
        if self.attempts > 1:
            where.append(f"after {self.attempts} attempts")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class APIError(AsyncFetchError):
    """The API answered with an error status.

    Carries what Intercom's ``error.list`` body says: ``code`` (read from
    ``errors[0].code``, or ``errors[0].type`` in older payloads), the server's
    ``message`` and its ``request_id``, plus the HTTP ``status`` and the
    ``Retry-After`` header in seconds (``retry_after``, ``None`` if absent; for
    a ``RateLimitError`` that ``max_wait`` cut short, the wait the server asked
    for, from ``Retry-After`` or ``X-RateLimit-Reset``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        url: str | None = None,
        page: int | None = None,
    ) -> None:
        super().__init__(message, url=url, page=page)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{code}: {super().__str__()}"


class InvalidRequestError(APIError):
    """400 or 422: the API rejected the request's parameters."""


class AuthenticationError(APIError):
    """401 or 403: the token is missing, wrong, expired or lacks permission."""


class NotFoundError(APIError):
    """404: the tag, segment, company or path does not exist."""


class RateLimitError(APIError):
    """429: the rate budget of the current window is spent (also a 403 with
    ``X-RateLimit-Remaining: 0``, as GitHub says it, from ``PagesClient``).

    Also raised, with ``status`` 429 and ``code`` ``"rate_limit_wait"``, before
    a request is sent when the server's budget would make it wait longer than
    is left of ``Retries.max_wait``; ``retry_after`` is then the wait asked for.
    """


class ServerError(APIError):
    """5xx: the API failed; Intercom says these should be retried."""


class TransportError(AsyncFetchError):
    """No HTTP answer arrived: the connection failed or the request timed out."""


class ConnectError(TransportError):
    """The connection could not be made or was lost mid-request."""


class RequestTimeout(TransportError):
    """The request did not complete within the configured ``timeout``."""


class ResponseFormatError(AsyncFetchError):
    """A successful status whose body is not the JSON list page expected."""


class PageLimitError(AsyncFetchError):
    """The list holds more records than page-numbered listing reaches.

    Intercom stops page-numbered listing at 10,000 records. Raised as soon as
    page 1's ``total_count`` shows it (before requesting pages that would
    fail), or when the API answers "page limit reached". ``total_count`` is
    the list's size when known. ``continued`` is true when a sync continuing
    a stopped run met it (that run went on by the scroll after its last
    numbered page: starting the list afresh gets past it).
    """

    def __init__(
        self,
        message: str,
        *,
        total_count: int | None = None,
        url: str | None = None,
        page: int | None = None,
    ) -> None:
        super().__init__(message, url=url, page=page)
        self.total_count = total_count
        self.continued = False


class IncompleteListError(AsyncFetchError):
    """A listing ended with fewer records than the list said it held.

    Raised after the last page, when the records handed over (``delivered``)
    fall short of page 1's ``total_count`` (``expected``; a smaller count seen
    later, when records were removed during the fetch, lowers it) and no
    change recorded during the fetch explains it. The records already handed
    over were all real; the list is just not whole. A list walked by a
    locally filtered scroll has no server count and is never checked.
    """

    def __init__(
        self, message: str, *, expected: int, delivered: int, url: str | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.expected = expected
        self.delivered = delivered


class UnsafeURLError(AsyncFetchError):
    """The API pointed at another scheme, host or port; the token is never sent there."""


class SinkError(AsyncFetchError):
    """The database a sync writes to failed (``open_sink``, ``--db``).

    The message names the database by its URL with any password replaced by
    ``***``; a password never reaches a message, ``args`` or a log line.
    ``usage`` is true for the errors found before any request is sent (a bad
    URL, a database that cannot be opened or is locked or too new): the CLI
    exits 2 for them, 1 for the others.
    """

    usage = False


class SinkURLError(SinkError):
    """The database URL has an unknown scheme or cannot be parsed."""

    usage = True


class SinkOpenError(SinkError):
    """The database cannot be opened: an unreadable or read-only SQLite file, a
    PostgreSQL server that cannot be reached, refuses or rejects the login."""

    usage = True


class SinkLockedError(SinkError):
    """Another asyncfetch run is writing this database: two runs would interleave."""

    usage = True


class SchemaVersionError(SinkError):
    """The database's ``schema_version`` is newer than this asyncfetch knows."""

    usage = True


class SinkWriteError(SinkError):
    """A write failed mid-run (a full disk, a lost connection); the transaction
    was rolled back, so the database is as it was before that page."""


class FleetError(AsyncFetchError):
    """A workspace of the fleet (``asyncfetch fleet``) cannot be synced for a
    reason of the fleet's own (its file, its token's variable); the fetch and
    the database raise their own errors. ``usage``: found before any request."""

    usage = True


class FleetConfigError(FleetError):
    """FLEET.toml cannot be read or breaks a rule: one line naming the file and
    the workspace, found before any request (the CLI exits 2)."""


class FleetTokenError(FleetError):
    """A workspace's ``token_env`` names a variable that is not set (or empty)
    where the workspace is synced: the worker, or the ``--local`` process."""
