"""The HTTP layer: one aiohttp session, the concurrency gate, rate limits, retries.

Everything a client fetches goes through one ``Transport``, so every list of
a client shares one connection pool, one concurrency bound and one rate
budget. This module is also the single boundary where aiohttp's and asyncio's
errors become asyncfetch's (``_exceptions.py``).

One try of a request, in order: take a place under the concurrency gate; pass
the user's ``rate`` cap (aiolimiter); wait for the server's advertised budget
(``RateBudget``); then send, with the per-try timeout running from here, so
time spent waiting for a place is never counted against the request. Between
tries the place is given back, so a request waiting to retry blocks no other.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson
import stamina
from aiolimiter import AsyncLimiter
from multidict import CIMultiDictProxy

from ._config import Retries
from ._exceptions import (
    APIError,
    AsyncFetchError,
    AuthenticationError,
    ConnectError,
    InvalidRequestError,
    NotFoundError,
    PageLimitError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from ._ratelimit import RateBudget

__all__ = ["FetchStats", "Transport"]

logger = logging.getLogger("asyncfetch")

R = TypeVar("R")

_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}
_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
_PAGE_LIMIT_MESSAGE = "page limit reached"


@dataclass(slots=True)
class FetchStats:
    """Counts of what a client sent and received, for progress and summaries."""

    requests: int = 0
    """Tries sent, retries included."""
    retries: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    bytes: int = 0
    """Response body bytes received."""
    rate_limit_pauses: int = 0
    """Times every request waited for the server's rate window to reset."""


class Transport:
    """Sends GET requests, retrying what can be retried, and returns their parsed bodies.

    ``concurrency`` bounds the requests on the wire at once (the connection
    pool is sized to match, so no request queues for a connection);
    ``rate`` (requests per second, ``None`` for no cap) paces their start;
    ``timeout`` (seconds, ``None`` for none) bounds each try from sending it
    to reading its whole body; ``retries`` says what is retried and how.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        concurrency: int,
        rate: float | None,
        timeout: float | None,
        retries: Retries,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._headers = dict(headers)
        self._concurrency = concurrency
        self._rate = rate
        self._clock = clock
        self._timeout = timeout
        self._retries = retries
        self._session: aiohttp.ClientSession | None = None
        self._stats = FetchStats()
        self._open_state()

    @property
    def stats(self) -> FetchStats:
        """What was sent and received so far."""
        self._stats.rate_limit_pauses = self._budget.pauses
        return self._stats

    def _open_state(self) -> None:
        # Made anew on each open: each binds to the event loop it first runs in.
        self._gate = asyncio.Semaphore(self._concurrency)
        self._limiter = _limiter_for(self._rate)
        self._budget = RateBudget(clock=self._clock)
        # Intercom allows one scroll open per workspace: this client's take turns.
        self.scroll_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._session is not None:
            raise RuntimeError("the client is already open")
        self._open_state()
        # The session binds to the running loop, so it is made here, not in __init__.
        connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=self._concurrency)
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=connector,
            # "total" covers connecting, sending and reading the whole body. It
            # would also count waiting for a pooled connection, but none waits:
            # the gate lets no more requests in than the pool has connections.
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        # aiohttp quietly resends a GET once when a pooled connection turns out
        # dead; our retries own that decision, and count every try.
        self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(
        self,
        url: str,
        *,
        read: Callable[[Any], R],
        params: Mapping[str, str] | None = None,
        page: int | None = None,
        retry: bool = True,
    ) -> R:
        """GET ``url``, parse its JSON body and pass it through ``read``.

        ``read`` raises ``ResponseFormatError`` for a body that is not what
        was expected; that is retried like a 5xx. ``page`` labels errors.
        After the last try, its error is raised with ``attempts`` set.
        ``retry=False`` makes one try only (a scroll request: re-sending it
        would skip a batch, so its caller starts the scroll again instead).
        """
        # The first try runs bare: building the retry machinery for every
        # request would cost more CPU than parsing a page.
        try:
            return read(await self._try(url, params, page))
        except AsyncFetchError as exc:
            if not retry or self._retries.attempts == 1 or self._retry_hint(exc) is False:
                raise
            first_failure: AsyncFetchError | None = exc
        retries = self._retries
        tries = 1
        try:
            async for attempt in stamina.retry_context(
                on=self._retry_hint,
                attempts=retries.attempts,
                timeout=retries.max_wait,
                wait_initial=retries.wait_initial,
                wait_max=retries.wait_max,
                wait_jitter=retries.wait_initial,
            ):
                with attempt:
                    tries = attempt.num
                    if first_failure is not None:
                        # stamina's attempt 1 is the try already made: hand it its
                        # error, so that backoff and the attempt count start right.
                        failure, first_failure = first_failure, None
                        raise failure
                    self._stats.retries += 1
                    return read(await self._try(url, params, page))
        except AsyncFetchError as exc:
            exc.attempts = tries
            raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _retry_hint(self, exc: Exception) -> bool | float:
        """stamina's backoff hook (see ``_retry_hint``), bounded by ``max_wait``."""
        hint = _retry_hint(exc)
        if hint is False:
            return False
        max_wait = self._retries.max_wait
        retry_after = exc.retry_after if isinstance(exc, APIError) else None
        if retry_after is not None and max_wait is not None and retry_after > max_wait:
            return False  # the server asks for longer than we may wait
        logger.info("retrying after: %s", exc)
        return hint

    async def _try(self, url: str, params: Mapping[str, str] | None, page: int | None) -> Any:
        session = self._session
        if session is None:
            raise RuntimeError("the client is not open: use it as 'async with IntercomClient(...)'")
        async with self._gate:
            sequence = await self._budget.acquire()
            # The user's cap is passed after the server's budget, so requests held
            # by a pause do not all go out at once when it ends.
            if self._limiter is not None:
                await self._limiter.acquire()
            self._stats.requests += 1
            started = time.perf_counter()
            try:
                async with session.get(url, params=params, allow_redirects=False) as response:
                    body = await response.read()
                    status = response.status
                    headers = response.headers
                    answered_url = response.url
            except BaseException as exc:
                self._budget.forget(sequence)
                if isinstance(exc, TimeoutError):
                    raise RequestTimeout(
                        f"no complete response within {self._timeout} s", url=url, page=page
                    ) from None
                # "from None": an aiohttp error can carry the request's headers,
                # the token among them; its message is kept in ours.
                if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
                    # A payload error is a body cut short: the connection dropped.
                    raise ConnectError(f"connection failed: {exc}", url=url, page=page) from None
                if isinstance(exc, aiohttp.ClientError):
                    raise TransportError(f"request failed: {exc}", url=url, page=page) from None
                raise
        self._budget.update(sequence, headers)
        stats = self._stats
        stats.statuses[status] += 1
        stats.bytes += len(body)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "GET %s page=%s -> %d, %d bytes, %.0f ms",
                answered_url, page, status, len(body), (time.perf_counter() - started) * 1000,
            )  # fmt: skip
        if status >= 300:
            error = _api_error(status, body, headers, url=str(answered_url), page=page)
            max_wait = self._retries.max_wait
            if isinstance(error, RateLimitError) and (
                error.retry_after is None or max_wait is None or error.retry_after <= max_wait
            ):
                # Pause every request, once, until the server says the budget is back.
                told = "X-RateLimit-Remaining" in headers
                self._budget.throttled(sequence, error.retry_after, told=told)
            raise error
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ResponseFormatError(
                f"HTTP {status} response body is not JSON: {_snippet(body)}",
                url=str(answered_url),
                page=page,
            ) from None


def _retry_hint(exc: Exception) -> bool | float:
    """stamina's backoff hook: ``False`` to fail at once, ``True`` for exponential
    backoff, a number for exactly that wait in seconds."""
    if isinstance(exc, RateLimitError):
        # The rate budget already holds every request until the window is back.
        return 0.0
    if isinstance(exc, APIError):
        if exc.status not in _RETRIED_STATUSES:
            return False
        return exc.retry_after if exc.retry_after is not None else True
    return isinstance(exc, TransportError | ResponseFormatError)


def _limiter_for(rate: float | None) -> AsyncLimiter | None:
    if rate is None:
        return None
    # One request per 1/rate seconds: AsyncLimiter(rate, 1) would let a burst of
    # `rate` through at once before pacing, twice the rate in the first second.
    return AsyncLimiter(1, 1.0 / rate)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str], *, url: str, page: int | None
) -> AsyncFetchError:
    code = request_id = message = None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("type") == "error.list":
        request_id = payload.get("request_id")
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            # Older payloads carry the code under "type" instead of "code".
            code = errors[0].get("code") or errors[0].get("type")
            message = errors[0].get("message")
    if not message:
        message = _snippet(body) or "no error message"
    if status == 400 and _PAGE_LIMIT_MESSAGE in str(message).lower():
        return PageLimitError(
            f"the API stopped page-numbered listing: {message}; "
            "Intercom lists at most 10,000 records by page (use the Scroll API past that)",
            url=url,
            page=page,
        )
    cls = ServerError if status >= 500 else _STATUS_ERRORS.get(status, APIError)
    return cls(
        str(message),
        status=status,
        code=str(code) if code else None,
        request_id=str(request_id) if request_id else None,
        retry_after=_retry_after(headers),
        url=url,
        page=page,
    )


def _snippet(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return " ".join(text.split()) + ("…" if len(body) > limit else "")
