"""The rules of waiting (issue 14 items 1, 4-9; issue 8 item 6), over loopback.

Each test counts what the server saw (429s, requests) or asserts an error;
none measures time. Waits a test cannot avoid are one-second windows, and a
fix that would wait far longer is caught by a generous ``fail_after`` bound.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
import stamina
from aiohttp import web

from asyncfetch import IntercomClient, RateLimitError, Retries
from asyncfetch._http._ratelimit import RateBudget, header_number
from asyncfetch._http._transport import _retry_after
from asyncfetch.testing import IntercomServer
from asyncfetch.testing._faults import ODD_HEADER_VALUES, FaultConfig

from ..helpers import MakeServer, RawServer, error_body, ids, page_body

pytestmark = pytest.mark.anyio

TOKEN = "rate-rules-token-31337"
NOW = 1_700_000_000.0


def client_at(base_url: str, **options: object) -> IntercomClient:
    return IntercomClient(token=TOKEN, base_url=base_url, **options)  # type: ignore[arg-type]


def client_for(server: IntercomServer, **options: object) -> IntercomClient:
    return client_at(server.base_url, **options)


async def fetch_ids(client: IntercomClient) -> list[str]:
    async with client:
        return [str(user["id"]) async for user in client.users()]


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rate_headers(remaining: int, reset: float, *, date: float | None = None) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset)),
    }
    if date is not None:
        headers["Date"] = email.utils.formatdate(date, usegmt=True)
    return headers


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- 14.1: a cancelled probe ------------------------------------------------------


async def test_a_probe_cancelled_while_waiting_for_the_rate_cap_is_released(
    raw_server: RawServer,
) -> None:
    answers = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal answers
        answers += 1
        now = int(time.time())
        # The first answer spends the window (already reset by the time it is
        # read): the next request goes as the probe, and waits for rate=1.
        headers = rate_headers(0, now) if answers == 1 else rate_headers(50, now + 30)
        return web.Response(body=page_body(request, total=3), headers=headers)

    client = client_at(await raw_server(handler), rate=1.0, concurrency=2)
    async with client:
        with anyio.move_on_after(0.3):  # the consumer gives up while the probe waits
            async with client.users() as users:
                async for _ in users:
                    await asyncio.sleep(1)  # slow consumer: page 2 is prefetched meanwhile
        # A new listing of the same client must not wait forever for that probe.
        with anyio.fail_after(10):
            assert len([u async for u in client.users()]) == 6


# -- 14.4: clock skew ---------------------------------------------------------------


@pytest.mark.parametrize("skew", [7.0, -4.0])
async def test_pauses_follow_the_servers_clock_read_from_date(skew: float) -> None:
    clock = Clock(NOW - skew)  # our clock; the server's reads NOW
    budget = RateBudget(clock=clock)
    sequence = await budget.acquire()
    # Answered at the server's NOW + 0.3 (Date says NOW, whole seconds): window spent
    # until the server's NOW + 5.
    clock.now = NOW - skew + 0.3
    budget.update(sequence, rate_headers(0, NOW + 5, date=NOW), sent=clock.now, received=clock.now)
    waiter = asyncio.ensure_future(budget.acquire())
    # By the server's clock the window is still spent (whatever ours says) ...
    clock.now = NOW - skew + 4.9
    budget.forget(999)
    await settle()
    assert not waiter.done()
    # ... and once the server's reset has passed (Date's rounding can only make us
    # later, by less than a second), the probe goes: no longer than that.
    clock.now = NOW - skew + 5.4
    budget.forget(999)
    await asyncio.wait_for(waiter, 1)


async def test_a_server_clock_behind_ours_costs_no_429(make_server: MakeServer) -> None:
    # The server's clock is 0.7 s behind ours: by our clock its windows reset late.
    server = await make_server(
        users=60, rate_limit=4, rate_window_seconds=1, clock_skew_seconds=-0.7
    )
    async with client_for(server, per_page=10, concurrency=2) as client:
        got = [str(u["id"]) async for u in client.users()]
    assert got == ids(server.workspace.users)
    assert server.stats.statuses[429] == 0
    assert client.stats.rate_limit_pauses >= 1


async def test_skewed_server_moves_date_and_reset_together(make_server: MakeServer) -> None:
    clock = Clock(NOW + 3.2)
    server = await make_server(users=10, clock=clock, clock_skew_seconds=-60)
    async with client_for(server) as client, client.users() as users:
        assert len([u async for u in users]) == 10
    # The server's view: Date and the window reset, both one minute behind the clock.
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url + "/users", headers={"Authorization": "Bearer x"}) as resp,
    ):
        date = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
        assert date == NOW + 3 - 60
        assert resp.headers["X-RateLimit-Reset"] == str(int(NOW + 10 - 60))
        assert resp.headers["X-Request-Id"]


# -- 14.5: a proxy's 429 ---------------------------------------------------------------


async def test_a_proxys_429_holds_only_for_its_retry_after(raw_server: RawServer) -> None:
    hits: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.Response:
        page = request.query["page"]
        hits[page] += 1
        if page == "2" and hits[page] == 1:
            # A proxy's 429: no rate headers, a Retry-After of one second.
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "1"})
        # The API: plenty left, its window ending far away.
        headers = rate_headers(50, time.time() + 60)
        return web.Response(body=page_body(request, total=3), headers=headers)

    client = client_at(await raw_server(handler), concurrency=1)
    with anyio.fail_after(15):  # the API's window would hold it a minute
        assert await fetch_ids(client) == [f"u{i}" for i in range(6)]
    assert client.stats.statuses[429] == 1


# -- 14.6, 14.7: max_wait bounds the whole request --------------------------------------


@pytest.mark.parametrize("status", [200, 429])
async def test_a_reset_beyond_max_wait_fails_at_once_saying_how_long(
    raw_server: RawServer, status: int
) -> None:
    async def handler(request: web.Request) -> web.Response:
        headers = rate_headers(0, time.time() + 3600)
        if status == 429 or request.query["page"] != "1":
            body = error_body("rate_limit_exceeded", "Exceeded rate limit of 10 in 10_seconds")
            return web.Response(status=429, body=body, headers=headers)
        return web.Response(body=page_body(request, total=3), headers=headers)

    client = client_at(await raw_server(handler), retries=Retries(max_wait=120))
    with anyio.fail_after(10), pytest.raises(RateLimitError) as info:
        await fetch_ids(client)
    message = str(info.value)
    assert re.search(r"asks to wait 3[56]\d\d s", message), message
    assert "max_wait (--max-retry-wait)" in message
    assert info.value.retry_after is not None
    assert info.value.retry_after > 3500


async def test_a_retry_after_is_weighed_against_what_is_left_of_max_wait(
    raw_server: RawServer,
) -> None:
    tries = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal tries
        tries += 1
        body = error_body("service_unavailable", "later")
        return web.Response(status=503, body=body, headers={"Retry-After": "1"})

    retries = Retries(attempts=10, max_wait=1.5, wait_initial=0.01, wait_max=0.02)
    client = client_at(await raw_server(handler), retries=retries)
    with stamina.set_testing(False), pytest.raises(Exception, match="HTTP 503") as info:
        await fetch_ids(client)
    # Try 1, a 1 s wait, try 2: 0.5 s of max_wait left, less than the next wait.
    assert tries == 2
    assert info.value.attempts == 2  # type: ignore[attr-defined]


# -- 14.8: Retry-After is a minimum ----------------------------------------------------------


async def test_retry_after_0_does_not_turn_backoff_off(make_server: MakeServer) -> None:
    server = await make_server(users=30, faults=FaultConfig(hiccup_seconds=0.5))
    # Backoff 0.15, 0.3, 0.6...: the fourth try comes after the half-second hiccup.
    retries = Retries(attempts=5, wait_initial=0.15, wait_max=1)
    with stamina.set_testing(False):
        got = await fetch_ids(client_for(server, per_page=10, retries=retries))
    assert got == ids(server.workspace.users)
    assert server.stats.faults["hiccup"] >= 1


async def test_the_wait_before_a_retry_is_the_longer_of_backoff_and_retry_after() -> None:
    from asyncfetch._exceptions import ServerError
    from asyncfetch._http._transport import Transport

    transport = Transport(
        headers={}, concurrency=1, rate=None, timeout=None,
        retries=Retries(wait_initial=1, wait_max=8),
    )  # fmt: skip
    now_error = ServerError("down", status=503, retry_after=0.0)
    assert transport._retry_wait(now_error, 3, None) >= 4  # backoff, not 0
    later_error = ServerError("down", status=503, retry_after=30.0)
    assert transport._retry_wait(later_error, 1, None) == 30
    assert transport._retry_wait(later_error, 1, time.monotonic() + 10) is False


# -- 14.9: absurd header values ----------------------------------------------------------------


async def test_header_values_are_parsed_without_raising() -> None:
    for value in (*ODD_HEADER_VALUES, "1e999", "-1e999", "inf", "NaN", "1_000", "٣", "0x10", " 7 "):
        header_number(value)  # never raises
    assert header_number("1e999") is None
    assert header_number("9" * 400) is None
    assert header_number("nan") is None
    assert header_number(" 7 ") == 7
    for value in (*ODD_HEADER_VALUES, "Mon, 99 Foo 99999 99:99:99 GMT", "1e999"):
        _retry_after({"Retry-After": value})  # never raises
    assert _retry_after({"Retry-After": "1e999"}) is None


async def test_absurd_rate_headers_are_read_as_not_said(make_server: MakeServer) -> None:
    faults = FaultConfig(seed=3, odd_headers_rate=0.5, throttle_rate=0.05, throttle_burst=1)
    server = await make_server(users=300, faults=faults, rate_window_seconds=1)
    with anyio.fail_after(30):
        got = await fetch_ids(client_for(server, per_page=10, concurrency=4))
    assert got == ids(server.workspace.users)
    assert server.stats.faults["odd_headers"] > 5


async def test_the_cli_reads_absurd_headers_without_a_traceback(
    raw_server: RawServer, tmp_path: Path
) -> None:
    async def handler(request: web.Request) -> web.Response:
        headers = dict.fromkeys(
            ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"), "1e999"
        )
        return web.Response(body=page_body(request, total=3), headers=headers)

    out = tmp_path / "users.jsonl"
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncfetch", "users", "--base-url", await raw_server(handler),
         "--token", TOKEN, "--out", str(out)],
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert len(out.read_bytes().splitlines()) == 6


# -- 8.6: both Remaining models, and headers missing for a while --------------------------------


@pytest.mark.parametrize(
    ("server_options", "pages"),
    [
        ({"remaining_counts_request": False}, 25),  # the 1.x docs' model
        # Gone from the middle of the second window to past the end: the probe of
        # the third window learns nothing, and the windows after are counted blind.
        ({"remaining_counts_request": True, "rate_headers_missing": (12, 99)}, 32),
        ({"remaining_counts_request": False, "rate_headers_missing": (12, 99)}, 32),
    ],
    ids=["docs-model", "headers-missing", "docs-model-headers-missing"],
)
async def test_no_429_under_either_remaining_model_or_without_headers(
    make_server: MakeServer, server_options: dict[str, object], pages: int
) -> None:
    server = await make_server(
        users=pages * 10, rate_limit=10, rate_window_seconds=1, **server_options
    )
    async with client_for(server, per_page=10, concurrency=4) as client:
        got = [str(u["id"]) async for u in client.users()]
    assert got == ids(server.workspace.users)
    assert server.stats.statuses[429] == 0
    assert server.stats.requests == pages


async def test_server_remaining_models_and_rounded_down_limit(make_server: MakeServer) -> None:
    clock = Clock(NOW)
    docs = await make_server(
        users=10,
        rate_limit_per_minute=1000,
        clock=clock,
        remaining_counts_request=False,
        rate_headers_missing=(3, 3),
    )
    seen = []
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer x"}) as session:
        for _ in range(4):
            async with session.get(docs.base_url + "/users") as resp:
                seen.append(
                    (
                        resp.headers.get("X-RateLimit-Limit"),
                        resp.headers.get("X-RateLimit-Remaining"),
                    )
                )
    # 1,000 a minute is 166.7 per 10-s window: advertised rounded down; the docs'
    # model shows Remaining == Limit after the window's first request.
    assert seen == [("166", "166"), ("166", "165"), (None, None), ("166", "163")]


# -- 9.9: the token, echoed by a server ---------------------------------------------------------


@pytest.mark.parametrize(
    "where", ["message", "code", "request_id", "html", "200-not-json", "next-link"]
)
async def test_an_echoed_token_is_redacted_from_errors(raw_server: RawServer, where: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        echoed = request.headers["Authorization"]
        if where == "html":
            return web.Response(status=400, text=f"<p>bad auth {echoed}</p>")
        if where == "200-not-json":
            return web.Response(status=200, text=f"you sent {echoed}")
        if where == "next-link":  # followed without total_pages, and not a URL
            pages = {"type": "pages", "page": 1, "next": f"http://[{echoed}"}
            return web.Response(
                body=orjson.dumps({"type": "user.list", "users": [], "pages": pages})
            )
        error = {"code": "bad", "message": "refused"}
        payload: dict[str, object] = {"type": "error.list", "request_id": "r", "errors": [error]}
        if where == "request_id":
            payload["request_id"] = echoed
        else:
            error[where] = f"token {echoed} refused"
        return web.Response(status=401, body=orjson.dumps(payload))

    client = client_at(await raw_server(handler), retries=Retries(attempts=2))
    with pytest.raises(Exception) as info:  # noqa: PT011 - any error, as long as it is redacted
        await fetch_ids(client)
    exc = info.value
    shown = " ".join([str(exc), repr(exc), str(vars(exc))])
    assert TOKEN not in shown
    assert "[token]" in shown


@pytest.mark.parametrize("status", [502, 200])
async def test_a_token_cut_by_the_body_snippet_is_not_shown_in_part(
    raw_server: RawServer, status: int
) -> None:
    # An error built from a body that is not an error.list quotes its first 80
    # characters. An echoed token that straddles that cut must not show its
    # first half: the snippet is redacted before it is cut.
    async def handler(request: web.Request) -> web.Response:
        echoed = request.headers["Authorization"]
        return web.Response(status=status, text=f"<html><body>{'x' * 55} {echoed} </body></html>")

    client = client_at(await raw_server(handler), retries=Retries(attempts=1))
    with pytest.raises(Exception) as info:  # noqa: PT011 - any error, as long as it is redacted
        await fetch_ids(client)
    shown = " ".join([str(info.value), repr(info.value), str(vars(info.value))])
    assert "Bearer " in shown  # the cut falls a few characters into the token
    assert "Bearer " + TOKEN[:3] not in shown, shown


async def test_a_short_token_is_redacted_where_it_stands_alone_not_inside_words(
    raw_server: RawServer,
) -> None:
    # Token "ist": redacted inside "scroll_exists" it would garble the code the
    # scroll acts on (a test's token "x" turned "scroll_exists" into an error).
    async def handler(request: web.Request) -> web.Response:
        body = error_body("scroll_exists", f"token {request.headers['Authorization'][7:]} refused")
        return web.Response(status=400, body=body)

    client = IntercomClient(token="ist", base_url=await raw_server(handler))
    with pytest.raises(Exception) as info:  # noqa: PT011 - the error's fields are the point
        await fetch_ids(client)
    assert info.value.code == "scroll_exists"  # type: ignore[attr-defined]
    assert "token [token] refused" in str(info.value)


async def test_the_cli_never_prints_an_echoed_token(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = error_body("unauthorized", f"no such token: {request.headers['Authorization']}")
        return web.Response(status=401, body=body)

    result = await anyio.run_process(
        [sys.executable, "-m", "asyncfetch", "users", "--base-url", await raw_server(handler),
         "--token", TOKEN],
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert TOKEN.encode() not in result.stderr + result.stdout
    assert b"[token]" in result.stderr


async def test_every_api_answer_carries_a_request_id_and_rate_headers(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=10, rate_limit=1, clock=Clock(NOW))
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer x"}) as session:
        for path, status in (("/users", 200), ("/users", 429), ("/no/such/path", 429)):
            async with session.get(server.base_url + path) as resp:
                assert resp.status == status
                assert resp.headers["X-RateLimit-Limit"] == "1"
                assert resp.headers["X-RateLimit-Reset"] == str(int(NOW) + 10)
                if status != 200:
                    assert resp.headers["X-Request-Id"] == (await resp.json())["request_id"]
                assert resp.headers["X-Request-Id"]
    # 500 a minute shows as 83 per 10-s window, rounded down.
    per_minute = await make_server(users=10, rate_limit_per_minute=500, clock=Clock(NOW))
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer x"}) as session,
        session.get(per_minute.base_url + "/tags") as resp,
    ):
        assert resp.headers["X-RateLimit-Limit"] == "83"
