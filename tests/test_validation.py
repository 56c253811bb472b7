"""Bad arguments raise ValueError saying what is allowed, before any request is sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from asyncfetch import IntercomClient
from asyncfetch._server import IntercomServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token": ""}, "token must be a non-empty string"),
        ({"token": "   "}, "token must be a non-empty string"),
        (
            {"base_url": "api.intercom.io"},
            "base_url must be an http:// or https:// URL with a host",
        ),
        ({"base_url": "ftp://api.intercom.io"}, "base_url must be an http:// or https:// URL"),
        ({"base_url": "https://x.io/?a=1"}, "base_url must not carry a query or fragment"),
        ({"concurrency": 0}, "concurrency must be a whole number of at least 1, got 0"),
        ({"concurrency": -3}, "concurrency must be a whole number of at least 1, got -3"),
        ({"concurrency": 2.5}, "concurrency must be a whole number of at least 1, got 2.5"),
        ({"concurrency": True}, "concurrency must be a whole number of at least 1, got True"),
        ({"rate": 0}, "rate must be a positive number of requests per second or None, got 0"),
        ({"rate": -1.5}, "rate must be a positive number of requests per second or None"),
        ({"rate": float("nan")}, "rate must be a positive number"),
        ({"rate": float("inf")}, "rate must be a positive number"),
        ({"per_page": 0}, "per_page must be an integer from 1 to 60, got 0"),
        ({"per_page": 61}, "per_page must be an integer from 1 to 60, got 61"),
        ({"timeout": 0}, "timeout must be a positive number of seconds or None, got 0"),
        ({"window": 0}, "window must be a whole number of at least 1, got 0"),
    ],
)
def test_bad_client_option(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"token": "t", **options}
    with pytest.raises(ValueError, match=re.escape(message)):
        IntercomClient(**arguments)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.users(tag_id="1", segment_id="2"), "pass tag_id or segment_id, not both"),
        (lambda c: c.companies(tag_id="1", segment_id="2"), "pass tag_id or segment_id, not both"),
        (lambda c: c.users(tag_id=""), "tag_id must be a non-empty string or integer, got ''"),
        (lambda c: c.users(segment_id="  "), "segment_id must be a non-empty string or integer"),
        (lambda c: c.company_users(), "pass exactly one of id"),
        (lambda c: c.company_users(id="1", company_id="2"), "pass exactly one of id"),
        (lambda c: c.company_users(id=""), "id must be a non-empty string or integer"),
        (lambda c: c.company_users(company_id=""), "company_id must be a non-empty string"),
    ],
)
async def test_bad_list_arguments_fail_before_any_request(
    server: IntercomServer, call: Callable[[IntercomClient], object], message: str
) -> None:
    async with IntercomClient(token="t", base_url=server.base_url) as client:
        with pytest.raises(ValueError, match=message):
            call(client)
    assert server.stats.requests == 0


async def test_ids_are_quoted_into_one_path_segment(server: IntercomServer) -> None:
    async with IntercomClient(token="t", base_url=server.base_url) as client:
        with pytest.raises(Exception, match="404") as info:
            await anext(aiter(client.company_users(id="../users")))
    assert "/companies/..%2Fusers/users" in str(info.value)


async def test_using_a_client_that_is_not_open_says_how() -> None:
    client = IntercomClient(token="t")
    with pytest.raises(RuntimeError, match="use it as 'async with IntercomClient"):
        await anext(aiter(client.users()))
