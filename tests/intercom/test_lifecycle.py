"""A listing's life: iterated once, closed from anywhere (issue 14 items 10, 11;
issue 9 item 8), and values that survive the trip whole (issue 14 item 13)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from asyncfetch import IntercomClient
from asyncfetch._cli._formats import make_format
from asyncfetch.testing import IntercomServer

from ..helpers import MakeServer, RawServer

pytestmark = pytest.mark.anyio

TOKEN = "lifecycle-token"
WIDE = 123456789012345678901234567890  # wider than 64 bits


def client_for(server: IntercomServer, **options: object) -> IntercomClient:
    return IntercomClient(token=TOKEN, base_url=server.base_url, **options)  # type: ignore[arg-type]


async def _until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - polling what a consumer task collects
            await asyncio.sleep(0.01)


# -- 9.8: iterated once ------------------------------------------------------------------


async def test_a_second_async_for_over_one_listing_raises(make_server: MakeServer) -> None:
    server = await make_server(users=30)
    async with client_for(server, per_page=10) as client:
        users = client.users()
        assert len([u async for u in users]) == 30
        with pytest.raises(RuntimeError, match=r"call the client's method again"):
            async for _ in users:
                pass
        with pytest.raises(RuntimeError, match=r"call the client's method again"):
            users.pages()
        # Stopped early and closed: the same.
        async with client.users() as again:
            async for _ in again:
                break
        with pytest.raises(RuntimeError, match=r"call the client's method again"):
            async for _ in again:
                pass


# -- 14.10: break, then the client closes ---------------------------------------------------


async def test_break_then_closing_the_client_logs_no_task_error(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(users=1000, latency_ms=5)
    with caplog.at_level(logging.ERROR):
        async with client_for(server, per_page=10) as client:
            async for _ in client.contacts():
                break
        # Let the dropped listing's finalizer run, and its task be collected.
        await asyncio.sleep(0.2)
        gc.collect()
        await asyncio.sleep(0.2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- 14.11: closed from another task ------------------------------------------------------------


async def test_listing_aclose_from_another_task_stops_the_consumer_at_once(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=1000, latency_ms=50)
    got: list[str] = []
    errors: list[BaseException] = []

    async def consume(users: object) -> None:
        try:
            async for user in users:  # type: ignore[attr-defined]
                got.append(str(user["id"]))
        except RuntimeError as exc:
            errors.append(exc)

    async with client_for(server, per_page=10, concurrency=4) as client:
        users = client.users()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, users)
            await _until(lambda: len(got) >= 15)
            with anyio.fail_after(5):
                await users.aclose()  # no "already running" error
            requests_at_close = server.stats.requests
        assert len(errors) == 1
        assert "closed (aclose())" in str(errors[0])
        assert 15 <= len(got) < 1000
        await asyncio.sleep(0.2)
        assert server.stats.requests == requests_at_close  # nothing more was sent


async def test_client_aclose_from_another_task_gives_the_closed_error_at_once(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=1000, latency_ms=50)
    got: list[str] = []
    errors: list[BaseException] = []
    client = client_for(server, per_page=10, concurrency=4)

    async def consume() -> None:
        try:
            async for user in client.users():
                got.append(str(user["id"]))
        except RuntimeError as exc:
            errors.append(exc)

    await client.__aenter__()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await _until(lambda: len(got) >= 15)
        await client.aclose()
        requests_at_close = client.stats.requests
    assert len(errors) == 1
    assert "the client was closed while this listing was being iterated" in str(errors[0])
    # No retries against the closed pool, nothing sent after.
    await asyncio.sleep(0.2)
    assert client.stats.retries == 0
    assert client.stats.requests == requests_at_close


# -- 14.13: integers wider than 64 bits ----------------------------------------------------------


def _page_with_wide_numbers(request: web.Request) -> web.Response:
    body = (
        b'{"type":"user.list","total_count":2,"users":['
        b'{"type":"user","id":"a","custom_attributes":{"big":%d,"neg":-%d,"ok":7}},'
        b'{"type":"user","id":"b","custom_attributes":{"big":18446744073709551616}}],'
        b'"pages":{"type":"pages","next":null,"page":1,"per_page":50,"total_pages":1}}'
        % (WIDE, WIDE)
    )
    return web.Response(body=body, content_type="application/json")


async def test_integers_wider_than_64_bits_stay_exact(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        return _page_with_wide_numbers(request)

    base = await raw_server(handler)
    async with IntercomClient(token=TOKEN, base_url=base) as client:
        users = [u async for u in client.users()]
    assert users[0]["custom_attributes"] == {"big": WIDE, "neg": -WIDE, "ok": 7}
    assert users[1]["custom_attributes"]["big"] == 2**64


async def test_a_negative_19_digit_integer_below_int64_stays_exact(raw_server: RawServer) -> None:
    # The wide-number check looked for 20 digits in a row, but -2**63 - 1 and
    # below need only 19: orjson read -9300000000000000000 as -9.3e+18.
    below = -(2**63) - 1
    low = -9_300_000_000_000_000_000

    async def handler(request: web.Request) -> web.Response:
        body = (
            b'{"type":"user.list","total_count":1,"users":[{"type":"user","id":"a",'
            b'"custom_attributes":{"below":%d,"low":%d,"min":%d}}],'
            b'"pages":{"type":"pages","next":null,"page":1,"per_page":50,"total_pages":1}}'
            % (below, low, -(2**63))
        )
        return web.Response(body=body, content_type="application/json")

    base = await raw_server(handler)
    async with IntercomClient(token=TOKEN, base_url=base) as client:
        users = [u async for u in client.users()]
    assert users[0]["custom_attributes"] == {"below": below, "low": low, "min": -(2**63)}
    assert all(type(v) is int for v in users[0]["custom_attributes"].values())


@pytest.mark.parametrize("name", ["jsonl", "json", "csv"])
async def test_every_format_writes_wide_integers_exactly(name: str) -> None:
    items = [{"id": "a", "n": WIDE, "nested": {"n": WIDE}}, {"id": "b", "n": 1.5, "nested": {}}]
    fmt = make_format(name, ["id", "n", "nested"] if name == "csv" else None)
    data = fmt.header() + fmt.page(items, written_before=0) + fmt.footer(written=2)
    assert data.count(str(WIDE).encode()) == 2
    assert b"e+29" not in data
    if name == "jsonl":
        assert [json.loads(line) for line in data.splitlines()] == items


async def test_the_cli_exports_wide_integers_exactly(raw_server: RawServer, tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return _page_with_wide_numbers(request)

    out = tmp_path / "users.jsonl"
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncfetch", "users", "--base-url", await raw_server(handler),
         "--token", TOKEN, "--out", str(out)],
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert str(WIDE).encode() in out.read_bytes()
    assert b"e+29" not in out.read_bytes()
    first = out.read_bytes().splitlines()[0]
    assert json.loads(first)["custom_attributes"] == {"big": WIDE, "neg": -WIDE, "ok": 7}
