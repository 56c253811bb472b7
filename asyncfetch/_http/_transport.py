"""The HTTP transport: one aiohttp session, the concurrency gate, rate limits, retries.

Everything a client fetches goes through one ``Transport``, so every list of
a client shares one connection pool, one concurrency bound and one rate
budget. This module is also the single boundary where aiohttp's and asyncio's
errors become asyncfetch's (``_exceptions.py``).

One try of a request, in order: take a place under the concurrency gate; wait
for the server's advertised budget (``RateBudget``); pass the user's ``rate``
cap (aiolimiter); then send, with the per-try timeout running from here, so
time spent waiting for a place is never counted against the request. Between
tries the place is given back, so a request waiting to retry blocks no other.
A place taken from the budget is given back on every way out, a cancellation
while waiting for the ``rate`` cap included: a lost probe would hold every
later request of the client for good.

``Retries.max_wait`` bounds the whole request: every wait (backoff, a
``Retry-After``, a rate-limit pause) is weighed against what is left of it,
and one that would overrun fails the request at once. ``Retry-After`` is a
minimum, never a reason to retry sooner than the backoff.

It knows no particular API: what an error body says (a code, a message, a
request id, or that the answer means something else entirely, such as
Intercom's "page limit reached") is read by the ``decode_error`` the API's
layer hands in (``_intercom/_errors.py`` for Intercom); without one, an
error's message is the start of its body.

Bodies are parsed by ``_json.loads`` (orjson, or the standard library for a
body with an integer wider than 64 bits), and the token is taken out of every
error built from a response, in case the server echoes it back.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import stamina
from aiolimiter import AsyncLimiter
from multidict import CIMultiDictProxy

from .._config import Retries
from .._exceptions import (
    APIError,
    AsyncFetchError,
    AuthenticationError,
    ConnectError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from .._json import loads
from .._redact import redact
from ._ratelimit import RateBudget, header_number
from ._shared import SharedRateBudget

__all__ = ["ErrorDecoder", "ErrorReport", "FetchStats", "Transport", "body_snippet"]

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


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """What an error response's body says, as an API's ``decode_error`` read it;
    ``None`` for what it does not say (the message then is the body's start)."""

    message: str | None = None
    code: str | None = None
    request_id: str | None = None
    #: The API says its rate budget is spent, whatever the status (GitHub's 403
    #: with ``X-RateLimit-Remaining: 0``): a ``RateLimitError``, waited out like a 429.
    rate_limited: bool = False


ErrorDecoder = Callable[[int, bytes, "CIMultiDictProxy[str]"], "ErrorReport | AsyncFetchError"]
"""Reads an error response (its status, body and headers) for ``Transport``:
an ``ErrorReport``, or an error to raise instead of the status's own (the
transport sets its ``url`` and ``page``). Never raises."""


def _no_decoder(status: int, body: bytes, headers: CIMultiDictProxy[str]) -> ErrorReport:
    return ErrorReport()


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
    to reading its whole body; ``retries`` says what is retried and how;
    ``decode_error`` reads what an error response's body says (see
    ``ErrorDecoder``); ``shared_budget``, a budget file shared with the other
    processes of the same credentials (``_shared.py``), or ``None`` for this
    process's own budget, which paces itself when the headers show others
    spending it (``_adaptive.py``).
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        concurrency: int,
        rate: float | None,
        timeout: float | None,
        retries: Retries,
        decode_error: ErrorDecoder = _no_decoder,
        owner: str = "Transport",
        clock: Callable[[], float] = time.time,
        secrets: Iterable[str] | None = None,
        shared_budget: Path | None = None,
    ) -> None:
        self._headers = dict(headers)
        # The budget file shared with other processes of the same token (``_shared.py``).
        self._shared_budget = shared_budget
        self._decode_error = decode_error
        # Named in the error for a request sent before open: what the user opens.
        self._owner = owner
        # Kept to take them out of anything a response puts into a message:
        # by default the Bearer token of Authorization; a generic source names
        # every secret header value it sends (``_generic.py``).
        if secrets is None:
            secrets = (_token_of(self._headers.get("Authorization", "")),)
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
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
        if self._shared_budget is None:
            self._budget = RateBudget(clock=self._clock, adaptive=True)
        else:
            try:
                self._budget = SharedRateBudget(self._shared_budget, clock=self._clock)
            except OSError as exc:
                raise ValueError(
                    f"shared_budget: cannot open the budget file in "
                    f"{self._shared_budget.parent}: {exc.strerror or exc}"
                ) from None

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
        with_headers: bool = False,
    ) -> R:
        """GET ``url``, parse its JSON body and pass it through ``read``.

        ``read`` raises ``ResponseFormatError`` for a body that is not what
        was expected; that is retried like a 5xx. ``page`` labels errors.
        After the last try, its error is raised with ``attempts`` set.
        ``retry=False`` makes one try only (a scroll request: re-sending it
        would skip a batch, so its caller starts the scroll again instead).
        ``with_headers=True`` hands ``read`` a pair, the parsed body and the
        response's headers (a page count sent as a header).
        """
        retries = self._retries
        # max_wait bounds the whole request, every wait included.
        deadline = None if retries.max_wait is None else time.monotonic() + retries.max_wait
        # The first try runs bare: building the retry machinery for every
        # request would cost more CPU than parsing a page.
        try:
            return read(await self._try(url, params, page, deadline, with_headers))
        except AsyncFetchError as exc:
            self.scrub(exc)
            if not retry or retries.attempts == 1 or self._retry_wait(exc, 1, deadline) is False:
                raise
            first_failure: AsyncFetchError | None = exc
        tries = 1

        def backoff_hook(exc: Exception) -> bool | float:
            return self._retry_wait(exc, tries, deadline)

        try:
            async for attempt in stamina.retry_context(
                on=backoff_hook,
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
                    try:
                        return read(await self._try(url, params, page, deadline, with_headers))
                    except AsyncFetchError as exc:
                        self.scrub(exc)
                        raise
        except AsyncFetchError as exc:
            exc.attempts = tries
            raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _retry_wait(self, exc: Exception, failures: int, deadline: float | None) -> bool | float:
        """stamina's backoff hook after the ``failures``-th failed try: ``False``
        to fail now, else the seconds to wait before the next try.

        The wait is the exponential backoff, or a server's ``Retry-After`` when
        that is longer (it is a minimum, never a reason to retry sooner), and
        never more than what is left of ``max_wait``.
        """
        hint = _retry_hint(exc)
        if hint is False:
            return False
        left = math.inf if deadline is None else deadline - time.monotonic()
        retry_after = exc.retry_after if isinstance(exc, APIError) else None
        if retry_after is not None and retry_after > left:
            return False  # the server asks for longer than we may wait
        if isinstance(exc, RateLimitError):
            wait = 0.0  # the rate budget holds every request for as long as needed
        else:
            wait = max(self._backoff(failures), retry_after or 0.0)
            if wait > left:
                return False
        logger.info("retrying after: %s", exc)
        return wait

    def _backoff(self, failures: int) -> float:
        """stamina's exponential backoff with jitter, after ``failures`` failed tries."""
        retries = self._retries
        # 2 ** 64 already exceeds any wait_max; the exponent is capped to stay a float.
        grown = retries.wait_initial * 2.0 ** min(failures - 1, 64)
        jitter = random.uniform(0, retries.wait_initial)
        return min(retries.wait_max, grown + jitter)

    def scrub(self, exc: AsyncFetchError) -> None:
        """Take the token out of everything an error built from a response says
        (``Listing`` applies it to errors raised outside ``get``, such as a
        ``pages.next`` that is not a URL)."""
        for token in self._secrets:
            _redact_error(exc, token)

    async def _try(
        self,
        url: str,
        params: Mapping[str, str] | None,
        page: int | None,
        deadline: float | None,
        with_headers: bool = False,
    ) -> Any:
        session = self._session
        if session is None:
            raise RuntimeError(f"the client is not open: use it as 'async with {self._owner}(...)'")
        budget = self._budget
        async with self._gate:
            left = None if deadline is None else deadline - time.monotonic()
            try:
                sequence = await budget.acquire(max_wait=left)
            except RateLimitError as exc:
                exc.url, exc.page = url, page
                raise
            # The user's cap is passed after the server's budget, so requests held
            # by a pause do not all go out at once when it ends.
            if self._limiter is not None:
                try:
                    await self._limiter.acquire()
                except BaseException:
                    # Cancelled while waiting: give the place (maybe the probe) back.
                    budget.forget(sequence)
                    raise
            self._stats.requests += 1
            started = time.perf_counter()
            sent = self._clock()
            try:
                async with session.get(url, params=params, allow_redirects=False) as response:
                    body = await response.read()
                    status = response.status
                    headers = response.headers
                    answered_url = response.url
            except BaseException as exc:
                budget.forget(sequence)
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
        budget.update(sequence, headers, sent=sent, received=self._clock())
        stats = self._stats
        stats.statuses[status] += 1
        stats.bytes += len(body)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "GET %s page=%s -> %d, %d bytes, %.0f ms",
                self._redacted(str(answered_url)), page, status, len(body),
                (time.perf_counter() - started) * 1000,
            )  # fmt: skip
        if status >= 300:
            error = self._api_error(status, body, headers, url=str(answered_url), page=page)
            if isinstance(error, RateLimitError):
                self._throttled(error, sequence, headers, deadline)
            raise error
        try:
            parsed = loads(body)
        except ValueError:
            raise ResponseFormatError(
                f"HTTP {status} response body is not JSON: "
                f"{body_snippet(self._without_secrets(body))}",
                url=str(answered_url),
                page=page,
            ) from None
        return (parsed, headers) if with_headers else parsed

    def _without_secrets(self, body: bytes) -> bytes:
        """``body`` with every secret replaced by ``[token]`` (error paths only)."""
        if not self._secrets:
            return body
        text = body.decode("utf-8", "replace")
        shown = self._redacted(text)
        return body if shown == text else shown.encode()

    def _redacted(self, text: str) -> str:
        for token in self._secrets:
            text = _redact(text, token)
        return text

    def _api_error(
        self,
        status: int,
        body: bytes,
        headers: CIMultiDictProxy[str],
        *,
        url: str,
        page: int | None,
    ) -> AsyncFetchError:
        # The secrets go before the decoder reads the body: a message cut from
        # it (``body_snippet``) would otherwise show the first half of a token
        # that straddles the cut, which no later redaction recognises.
        body = self._without_secrets(body)
        decoded = self._decode_error(status, body, headers)
        if isinstance(decoded, AsyncFetchError):
            decoded.url, decoded.page = url, page
            return decoded
        if decoded.rate_limited:
            cls: type[APIError] = RateLimitError
        else:
            cls = ServerError if status >= 500 else _STATUS_ERRORS.get(status, APIError)
        return cls(
            decoded.message or body_snippet(body) or "no error message",
            status=status,
            code=decoded.code,
            request_id=decoded.request_id,
            retry_after=_retry_after(headers),
            url=url,
            page=page,
        )

    def _throttled(
        self,
        error: RateLimitError,
        sequence: int,
        headers: CIMultiDictProxy[str],
        deadline: float | None,
    ) -> None:
        """A 429: pause every request, once, until the server says the budget is
        back, or, if it asks for longer than is left of ``max_wait``, say so."""
        budget = self._budget
        told = header_number(headers.get("X-RateLimit-Remaining")) is not None
        wait = error.retry_after
        if wait is None and told:
            reset = header_number(headers.get("X-RateLimit-Reset"))
            if reset is not None:
                wait = max(reset - budget.server_time(), 0.0)
        left = None if deadline is None else deadline - time.monotonic()
        if wait is not None and left is not None and wait > left:
            error.message = (
                f"{error.message}; the server asks to wait {wait:.0f} s, longer than the "
                f"{max(left, 0):.0f} s left of max_wait (--max-retry-wait)"
            )
            error.args = (error.message,)
            error.retry_after = wait  # so that it is not retried
            return  # update() has already ended the request (and any probe)
        budget.throttled(sequence, error.retry_after, told=told)


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
    """``Retry-After`` in seconds: a number of seconds or an HTTP date (compared
    with the answer's own ``Date``, so that our clock does not matter); ``None``
    when absent or not understood. Never raises."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when = _http_date(value)
    if when is None:
        return None
    now = _http_date(headers.get("Date") or "")
    return max(0.0, when - (time.time() if now is None else now))


def _http_date(value: str) -> float | None:
    try:
        stamp = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return stamp if math.isfinite(stamp) else None


def _token_of(authorization: str) -> str:
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _redact(text: str, token: str) -> str:
    for form in (token, quote(token, safe="")):
        text = redact(text, form, "[token]")
    return text


def _redact_error(exc: AsyncFetchError, token: str) -> None:
    """Replace the token, wherever a server put it, in what ``exc`` shows."""
    exc.message = _redact(exc.message, token)
    exc.args = tuple(_redact(arg, token) if isinstance(arg, str) else arg for arg in exc.args)
    if exc.url is not None:
        exc.url = _redact(exc.url, token)
    if isinstance(exc, APIError):
        if exc.code is not None:
            exc.code = _redact(exc.code, token)
        if exc.request_id is not None:
            exc.request_id = _redact(exc.request_id, token)


def body_snippet(body: bytes, limit: int = 80) -> str:
    """The start of ``body`` on one line, for a message about a response."""
    text = body[:limit].decode("utf-8", "replace").strip()
    return " ".join(text.split()) + ("…" if len(body) > limit else "")
