"""The token goes to the configured API only, and is shown nowhere."""

from __future__ import annotations

import logging
import traceback
from collections import Counter

import orjson
import pytest
from aiohttp import web

from asyncfetch import (
    AuthenticationError,
    IntercomClient,
    ResponseFormatError,
    Retries,
    UnsafeURLError,
)

from ..helpers import RawServer, error_body, page_body

pytestmark = pytest.mark.anyio

TOKEN = "tok-DO-NOT-LEAK-7f3a9c"


async def test_token_is_in_no_log_record_or_error_even_at_debug(
    raw_server: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    hits: Counter[str] = Counter()

    async def handler(request: web.Request) -> web.StreamResponse:
        page = request.query["page"]
        hits[page] += 1
        if page == "2" and hits[page] == 1:
            return web.Response(status=503, body=b"<html>oops</html>")
        if page == "3" and hits[page] == 1:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if page == "4":
            return web.Response(status=401, body=error_body("unauthorized", "Access Token Invalid"))
        return web.Response(body=page_body(request, total=5))

    caplog.set_level(logging.DEBUG)
    client = IntercomClient(token=TOKEN, base_url=await raw_server(handler), concurrency=2)
    with pytest.raises(AuthenticationError) as info:
        async with client:
            async for _ in client.users():
                pass
    assert (hits["2"], hits["3"]) == (2, 2)  # retried, and logged
    assert any("GET" in r.getMessage() for r in caplog.records)  # debug logging is on
    shown = [repr(client), str(info.value), repr(info.value)]
    shown += ["".join(traceback.format_exception(info.value))]
    for record in caplog.records:
        shown.append(record.getMessage())
        shown.append(repr(record.__dict__))
    for text in shown:
        assert TOKEN not in text


async def test_a_next_link_to_another_port_is_refused(raw_server: RawServer) -> None:
    async def other(request: web.Request) -> web.Response:
        return web.Response(body=page_body(request, total=1))

    elsewhere = await raw_server(other)

    async def handler(request: web.Request) -> web.Response:
        body = {
            "type": "user.list",
            "users": [{"id": "u0"}],
            "pages": {"type": "pages", "page": 1, "next": f"{elsewhere}/users?page=2"},
        }
        return web.Response(body=orjson.dumps(body))

    with pytest.raises(UnsafeURLError, match="refusing to send the token there"):
        async with IntercomClient(token=TOKEN, base_url=await raw_server(handler)) as client:
            async for _ in client.users():
                pass


async def test_relative_and_default_port_next_links_are_followed(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page", "1"))
        nxt = {1: "/users?page=2", 2: f"http://127.0.0.1:{request.url.port}/users?page=3"}.get(
            number
        )
        body = {
            "type": "user.list",
            "users": [{"id": f"u{number}"}],
            "pages": {"type": "pages", "page": number, "next": nxt},
        }
        return web.Response(body=orjson.dumps(body))

    async with IntercomClient(token=TOKEN, base_url=await raw_server(handler)) as client:
        assert [u["id"] async for u in client.users()] == ["u1", "u2", "u3"]


async def test_a_server_that_ignores_the_page_number_is_caught(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {
            "type": "user.list",
            "users": [{"id": "u1"}],
            "pages": {
                "type": "pages",
                "page": 1,
                "total_pages": 3,
                "next": str(request.url.with_query(page="2")),
            },
        }
        return web.Response(body=orjson.dumps(body))

    client = IntercomClient(
        token=TOKEN, base_url=await raw_server(handler), retries=Retries(attempts=2)
    )
    with pytest.raises(ResponseFormatError, match="asked for page 2, got page 1"):
        async with client:
            async for _ in client.users():
                pass
