"""The transport on its own: it knows no particular API (issue 10).

What an error body means is read by the decoder the API's layer hands in;
a ``Transport`` without one reads no ``error.list`` and no record cap, and the
one ``IntercomClient`` hands in reads both. Over loopback, against a small
server of the test's own.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from asyncfetch import InvalidRequestError, PageLimitError, Retries
from asyncfetch._http._transport import ErrorReport, Transport
from asyncfetch._intercom._errors import decode_error

from ..helpers import RawServer, error_body

pytestmark = pytest.mark.anyio

PAGE_LIMIT = error_body("bad_request", "page limit reached, please use scroll API")


async def get_error(base_url: str, **options: object) -> Exception:
    transport = Transport(
        headers={}, concurrency=1, rate=None, timeout=5.0, retries=Retries(attempts=1),
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
    await transport.open()
    try:
        with pytest.raises(Exception) as caught:  # noqa: PT011
            await transport.get(f"{base_url}/users", read=lambda body: body, page=3)
    finally:
        await transport.close()
    return caught.value


async def page_limit(request: web.Request) -> web.Response:
    return web.Response(status=400, body=PAGE_LIMIT, content_type="application/json")


async def test_without_a_decoder_an_error_body_is_only_text(raw_server: RawServer) -> None:
    error = await get_error(await raw_server(page_limit))
    assert type(error) is InvalidRequestError
    assert error.code is None
    assert error.request_id is None
    assert error.message == PAGE_LIMIT.decode()[:80] + "…"
    assert error.page == 3


async def test_intercoms_decoder_reads_the_error_list_and_the_cap(raw_server: RawServer) -> None:
    error = await get_error(await raw_server(page_limit), decode_error=decode_error)
    assert type(error) is PageLimitError
    assert "page limit reached, please use scroll API" in error.message
    assert error.page == 3
    assert error.url is not None
    assert error.url.endswith("/users")


async def test_a_decoder_reports_code_message_and_request_id(raw_server: RawServer) -> None:
    def decode(status: int, body: bytes, headers: object) -> ErrorReport:
        return ErrorReport(message=f"{status}: refused", code="nope", request_id="r-1")

    error = await get_error(await raw_server(page_limit), decode_error=decode)
    assert type(error) is InvalidRequestError
    assert (error.message, error.code, error.request_id) == ("400: refused", "nope", "r-1")
