"""Retries, Retry-After and the coordinated 429 pause, against small servers of the test's own.

stamina's testing switch (conftest) removes the exponential backoff sleeps; the
pauses a server asks for (Retry-After, X-RateLimit-Reset) stay real, so the
tests that meet them ask for one second.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest
import stamina
from aiohttp import web

from asyncfetch import (
    AuthenticationError,
    IntercomClient,
    InvalidRequestError,
    NotFoundError,
    Retries,
    ServerError,
)

from ..helpers import RawServer, error_body, page_body

pytestmark = pytest.mark.anyio

TOKEN = "retry-test-token-4242"


def client_at(base_url: str, **options: object) -> IntercomClient:
    return IntercomClient(token=TOKEN, base_url=base_url, **options)  # type: ignore[arg-type]


async def collect(client: IntercomClient) -> list[str]:
    async with client:
        return [str(user["id"]) async for user in client.users()]


def failing_first(
    tries: int, failure: Callable[[], web.Response] | None, *, total: int = 3
) -> object:
    """A handler failing each page's first ``tries`` tries with a fresh ``failure()``
    response (``None``: close the connection without answering)."""
    hits: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.StreamResponse:
        page = request.query["page"]
        hits[page] += 1
        if hits[page] <= tries:
            if failure is None:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return failure()
        return web.Response(body=page_body(request, total=total))

    handler.hits = hits  # type: ignore[attr-defined]
    return handler


@pytest.mark.parametrize(
    "failure",
    [
        lambda: web.Response(status=500, body=error_body("server_error", "boom")),
        lambda: web.Response(
            status=502, body=b"<html>Bad Gateway</html>", content_type="text/html"
        ),
        lambda: web.Response(status=503, body=error_body("service_unavailable", "later")),
        lambda: web.Response(status=504, body=b"<html>Timeout</html>", content_type="text/html"),
        lambda: web.Response(
            status=200, body=b"<html>captive portal</html>", content_type="text/html"
        ),
        lambda: web.Response(status=200, body=b'{"type": "user.list", "users": [{"id'),
        None,  # connection closed without an answer
    ],
    ids=["500", "502-html", "503", "504-html", "200-html", "200-truncated", "reset"],
)
async def test_retried_failures_end_in_every_item_once_in_order(
    raw_server: RawServer, failure: Callable[[], web.Response] | None
) -> None:
    handler = failing_first(2, failure)
    client = client_at(await raw_server(handler))  # type: ignore[arg-type]
    assert await collect(client) == [f"u{i}" for i in range(6)]
    assert handler.hits == {"1": 3, "2": 3, "3": 3}  # type: ignore[attr-defined]
    assert client.stats.retries == 6


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [(400, InvalidRequestError), (401, AuthenticationError), (403, AuthenticationError),
     (404, NotFoundError), (422, InvalidRequestError)],
)  # fmt: skip
async def test_client_errors_fail_at_once(
    raw_server: RawServer, status: int, exc_type: type[Exception]
) -> None:
    handler = failing_first(
        99, lambda: web.Response(status=status, body=error_body("no", "refused"))
    )
    with pytest.raises(exc_type) as info:
        await collect(client_at(await raw_server(handler)))  # type: ignore[arg-type]
    assert handler.hits == {"1": 1}  # type: ignore[attr-defined]
    assert info.value.attempts == 1  # type: ignore[attr-defined]


async def test_a_slow_try_times_out_and_the_retry_succeeds(raw_server: RawServer) -> None:
    hits: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.Response:
        hits[request.query["page"]] += 1
        if hits[request.query["page"]] == 1:
            await asyncio.sleep(5)
        return web.Response(body=page_body(request, total=2))

    client = client_at(await raw_server(handler), timeout=0.2)
    assert await collect(client) == ["u0", "u1", "u2", "u3"]
    assert hits == {"1": 2, "2": 2}


async def test_a_page_that_keeps_failing_comes_after_the_pages_before_it(
    raw_server: RawServer,
) -> None:
    hits: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.Response:
        hits[request.query["page"]] += 1
        if request.query["page"] == "4":
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return web.Response(body=page_body(request, total=9))

    client = client_at(await raw_server(handler), retries=Retries(attempts=3), concurrency=3)
    got: list[str] = []
    with pytest.raises(ServerError) as info:
        async with client:
            async for user in client.users():
                got.append(str(user["id"]))
    assert got == [f"u{i}" for i in range(6)]  # pages 1-3, whole, once
    error = info.value
    assert (error.page, error.status, error.attempts) == (4, 503, 3)
    assert "HTTP 503 service_unavailable: down (page 4" in str(error)
    assert str(error).endswith("after 3 attempts)")
    assert hits["4"] == 3


async def test_max_wait_bounds_the_time_spent_retrying(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(status=503, body=error_body("service_unavailable", "down"))

    retries = Retries(attempts=1000, max_wait=0.3, wait_initial=0.01, wait_max=0.02)
    client = client_at(await raw_server(handler), retries=retries)
    with stamina.set_testing(False), pytest.raises(ServerError) as info:
        await collect(client)
    assert 2 <= info.value.attempts < 1000


def _arrivals_handler(
    *, throttle_page: str, answer: web.Response, total: int
) -> tuple[object, list[tuple[float, str]], list[tuple[float, str, str]]]:
    """A handler recording each request's arrival (time, page) and, in order,
    its ``(time, "in" | "out", page)`` events: which request was answered
    before which other arrived."""
    arrivals: list[tuple[float, str]] = []
    events: list[tuple[float, str, str]] = []
    throttled = False

    async def handler(request: web.Request) -> web.Response:
        nonlocal throttled
        page = request.query["page"]
        arrivals.append((time.monotonic(), page))
        events.append((time.monotonic(), "in", page))
        await asyncio.sleep(0.02)
        events.append((time.monotonic(), "out", page))
        if page == throttle_page and not throttled:
            throttled = True
            return answer
        return web.Response(body=page_body(request, total=total))

    return handler, arrivals, events


@pytest.mark.parametrize("how", ["retry-after", "ratelimit-reset"])
async def test_a_429_pauses_every_request_once_then_resumes(
    raw_server: RawServer, how: str
) -> None:
    if how == "retry-after":
        headers = {"Retry-After": "1"}
    else:
        headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": str(int(time.time()) + 2)}  # fmt: skip
    answer = web.Response(
        status=429, body=error_body("rate_limit_exceeded", "slow down"), headers=headers
    )
    handler, arrivals, events = _arrivals_handler(throttle_page="5", answer=answer, total=20)
    client = client_at(await raw_server(handler), concurrency=4)  # type: ignore[arg-type]
    assert await collect(client) == [f"u{i}" for i in range(40)]

    throttled_at = next(t for t, page in arrivals if page == "5") + 0.02
    # Requests already on the wire may arrive just after; then nothing until the pause ends.
    after = [t - throttled_at for t, _ in arrivals if t > throttled_at + 0.05]
    assert after, "the fetch resumed"
    assert min(after) >= 0.9
    assert client.stats.statuses[429] == 1
    assert client.stats.rate_limit_pauses == 1
    if how == "ratelimit-reset":
        # The 429 spoke of the window: one probe first, whose answer (here without
        # rate headers) lets the rest go. The second request waits for it: it
        # arrives only after the probe was answered (order, not durations).
        resumed = [(kind, page) for t, kind, page in events if t > throttled_at + 0.05]
        (_, probe) = resumed[0]
        assert resumed[:2] == [("in", probe), ("out", probe)]
    # Then full speed: the 4 requests allowed are in flight together again
    # (counted by the server, as requests in and answers out).
    in_flight = peak = 0
    for t, kind, _ in events:
        in_flight += 1 if kind == "in" else -1
        if t > throttled_at + 0.05:
            peak = max(peak, in_flight)
    assert peak == 4


async def test_redirects_are_not_followed(raw_server: RawServer) -> None:
    elsewhere_hits: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        elsewhere_hits.append(request.headers.get("Authorization", ""))
        return web.Response(body=page_body(request, total=1))

    target = await raw_server(elsewhere)

    async def redirecting(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{target}/users?page=1")

    with pytest.raises(Exception, match="HTTP 302"):
        await collect(client_at(await raw_server(redirecting)))
    assert elsewhere_hits == []


async def test_error_body_and_headers_of_a_429_are_read(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = orjson.dumps({"type": "error.list", "errors": [{"code": "rate_limit_exceeded"}]})
        return web.Response(status=429, body=body, headers={"Retry-After": "0"})

    from asyncfetch import RateLimitError

    with pytest.raises(RateLimitError) as info:
        await collect(client_at(await raw_server(handler), retries=Retries(attempts=2)))
    assert info.value.retry_after == 0.0
    assert info.value.attempts == 2
