"""Error statuses, broken bodies and broken connections, each mapped to its exception.

These use a small aiohttp.web app of the test's own, over real loopback
sockets, to answer exactly the way each case needs.
"""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest
from aiohttp import web

import asyncfetch
from asyncfetch import (
    APIError,
    AuthenticationError,
    ConnectError,
    IntercomClient,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ResponseFormatError,
    ServerError,
    UnsafeURLError,
)

from ..helpers import RawServer, error_body, page_body

pytestmark = pytest.mark.anyio

TOKEN = "secret-token-value-123"


async def collect(base_url: str, **options: object) -> list[str]:
    async with IntercomClient(token=TOKEN, base_url=base_url, **options) as client:  # type: ignore[arg-type]
        return [str(user["id"]) async for user in client.users()]


@pytest.mark.parametrize(
    ("status", "code", "exc_type"),
    [
        (400, "parameter_invalid", InvalidRequestError),
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", AuthenticationError),
        (404, "not_found", NotFoundError),
        (422, "parameter_invalid", InvalidRequestError),
        (429, "rate_limit_exceeded", RateLimitError),
        (500, "server_error", ServerError),
        (502, "bad_gateway", ServerError),
        (503, "service_unavailable", ServerError),
        (504, "gateway_timeout", ServerError),
        (418, "teapot", APIError),
    ],
)
async def test_error_status_maps_to_its_exception(
    raw_server: RawServer, status: int, code: str, exc_type: type[APIError]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            status=status, body=error_body(code, "it went wrong"), content_type="application/json"
        )

    base = await raw_server(handler)
    with pytest.raises(exc_type) as info:
        await collect(base)
    err = info.value
    assert type(err) is exc_type
    assert isinstance(err, asyncfetch.AsyncFetchError)
    assert (err.status, err.code, err.message, err.request_id, err.page) == (
        status,
        code,
        "it went wrong",
        "req-42",
        1,
    )
    assert f"HTTP {status} {code}: it went wrong (page 1, {base}/users" in str(err)


async def test_older_error_payload_with_type_instead_of_code(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=404, body=error_body("not_found", "no tag", key="type"))

    with pytest.raises(NotFoundError) as info:
        await collect(await raw_server(handler))
    assert info.value.code == "not_found"


async def test_error_on_a_later_page_comes_after_the_earlier_pages(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.query["page"] == "4":
            return web.Response(status=503, body=b"<html>Service Unavailable</html>")
        return web.Response(body=page_body(request, total=8))

    got: list[str] = []
    with pytest.raises(ServerError) as info:
        async with IntercomClient(token=TOKEN, base_url=await raw_server(handler)) as client:
            async for user in client.users():
                got.append(user["id"])
    assert got == [f"u{i}" for i in range(6)]  # pages 1 to 3, whole
    assert info.value.page == 4
    assert "Service Unavailable" in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html><body>Bad gateway</body></html>", "response body is not JSON"),
        (b'{"type": "user.list"}', "expected a JSON object with a 'users' list"),
        (b"[1, 2]", "expected a JSON object with a 'users' list"),
    ],
)
async def test_unexpected_body_is_a_response_format_error(
    raw_server: RawServer, body: bytes, expected: str
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html")

    base = await raw_server(handler)
    with pytest.raises(ResponseFormatError, match=expected) as info:
        await collect(base)
    assert info.value.page == 1
    assert f"{base}/users" in str(info.value)


async def test_request_slower_than_timeout_raises_request_timeout(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(body=page_body(request, total=1))

    with pytest.raises(RequestTimeout, match=r"no complete response within 0.2 s \(page 1"):
        await collect(await raw_server(handler), timeout=0.2)


async def test_connection_refused_raises_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    with pytest.raises(ConnectError, match="connection failed") as info:
        await collect(f"http://127.0.0.1:{port}")
    assert info.value.page == 1


async def test_connection_dropped_mid_response_raises_connect_error(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b'{"type": "user.list", "users": [')
        assert request.transport is not None
        request.transport.close()
        return response

    with pytest.raises(ConnectError):
        await collect(await raw_server(handler))


async def test_without_total_pages_follows_next_links(raw_server: RawServer) -> None:
    seen_pages: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen_pages.append(request.query.get("page", "?"))
        return web.Response(body=page_body(request, total=5, with_total=False))

    got = await collect(await raw_server(handler), concurrency=8)
    assert got == [f"u{i}" for i in range(10)]
    assert seen_pages == ["1", "2", "3", "4", "5"]


async def test_next_link_to_another_host_is_refused(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {
            "type": "user.list",
            "users": [{"id": "u0"}],
            "pages": {"type": "pages", "page": 1, "next": "https://evil.example/users?page=2"},
        }
        return web.Response(body=orjson.dumps(body))

    with pytest.raises(UnsafeURLError, match="refusing to send the token there") as info:
        await collect(await raw_server(handler))
    assert info.value.page == 2


async def test_headers_sent_and_token_never_shown(raw_server: RawServer) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=401, body=error_body("unauthorized", "Access Token Invalid"))

    base = await raw_server(handler)
    client = IntercomClient(token=TOKEN, base_url=base, intercom_version="1.1")
    assert TOKEN not in repr(client)
    with pytest.raises(AuthenticationError) as info:
        async with client:
            await anext(aiter(client.users()))
    headers = seen[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == f"asyncfetch/{asyncfetch.__version__}"
    assert headers["Intercom-Version"] == "1.1"
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
