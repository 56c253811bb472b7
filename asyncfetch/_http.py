"""The HTTP layer: one aiohttp session, a concurrency gate and a rate limiter.

Everything a client fetches goes through one ``Transport``, so every list of
a client shares one connection pool, one concurrency bound and one rate
budget. This module is also the single boundary where aiohttp's and asyncio's
errors become asyncfetch's (``_exceptions.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio
import orjson
from aiolimiter import AsyncLimiter

from ._exceptions import (
    APIError,
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

__all__ = ["Transport"]

_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}


class Transport:
    """Sends GET requests and returns their parsed JSON bodies.

    ``concurrency`` bounds the requests on the wire at once (the connection
    pool is sized to match, so no request queues for a connection);
    ``rate`` (requests per second, ``None`` for no cap) paces their start;
    ``timeout`` (seconds, ``None`` for none) bounds each request from sending
    it to reading its whole body, not the wait for the gate.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        concurrency: int,
        rate: float | None,
        timeout: float | None,
    ) -> None:
        self._headers = dict(headers)
        self._concurrency = concurrency
        self._gate = asyncio.Semaphore(concurrency)
        self._limiter = _limiter_for(rate)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # The session binds to the running loop, so it is made here, not in __init__.
        connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=self._concurrency)
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=connector,
            # The per-request deadline is ours (see get_json): aiohttp's "total"
            # would also count the time spent queueing for a connection.
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(
        self, url: str, *, params: Mapping[str, str] | None = None, page: int | None = None
    ) -> Any:
        """GET ``url`` and return its parsed JSON body.

        Raises an ``APIError`` subclass for an error status, ``TransportError``
        when no answer arrives and ``ResponseFormatError`` for a body that is
        not JSON. ``page`` only labels errors.
        """
        session = self._session
        if session is None:
            raise RuntimeError("the client is not open: use it as 'async with IntercomClient(...)'")
        async with self._gate:
            if self._limiter is not None:
                await self._limiter.acquire()
            try:
                with anyio.fail_after(self._timeout):
                    async with session.get(url, params=params, allow_redirects=False) as response:
                        body = await response.read()
                        status = response.status
                        shown_url = str(response.url)
            except TimeoutError as exc:
                raise RequestTimeout(
                    f"no complete response within {self._timeout:g} s", url=url, page=page
                ) from exc
            except aiohttp.ClientConnectionError as exc:
                raise ConnectError(f"connection failed: {exc}", url=url, page=page) from exc
            except aiohttp.ClientPayloadError as exc:
                # The body was cut short: the connection dropped mid-response.
                raise ConnectError(
                    f"connection lost mid-response: {exc}", url=url, page=page
                ) from exc
            except aiohttp.ClientError as exc:
                raise TransportError(f"request failed: {exc}", url=url, page=page) from exc
        if status >= 300:
            raise _api_error(status, body, url=shown_url, page=page)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ResponseFormatError(
                f"HTTP {status} response body is not JSON: {_snippet(body)}",
                url=shown_url,
                page=page,
            ) from None


def _limiter_for(rate: float | None) -> AsyncLimiter | None:
    if rate is None:
        return None
    # aiolimiter counts whole requests per period: below 1/s, one per 1/rate seconds.
    return AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1.0 / rate)


def _api_error(status: int, body: bytes, *, url: str, page: int | None) -> APIError:
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
    if status >= 500:
        cls: type[APIError] = ServerError
    else:
        cls = _STATUS_ERRORS.get(status, APIError)
    return cls(
        str(message),
        status=status,
        code=str(code) if code else None,
        request_id=str(request_id) if request_id else None,
        url=url,
        page=page,
    )


def _snippet(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return " ".join(text.split()) + ("…" if len(body) > limit else "")
