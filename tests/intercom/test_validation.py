"""Bad arguments raise ValueError saying what is allowed, before any request is sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from asyncfetch import IntercomClient, NotFoundError, Retries
from asyncfetch.testing import IntercomServer

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
        ({"per_page": True}, "per_page must be an integer from 1 to 60, got True"),
        ({"per_page": "50"}, "per_page must be an integer from 1 to 60, got '50'"),
        ({"timeout": 0}, "timeout must be a positive number of seconds or None, got 0"),
        ({"timeout": -1}, "timeout must be a positive number of seconds or None, got -1"),
        ({"timeout": float("nan")}, "timeout must be a positive number of seconds or None"),
        ({"window": 0}, "window must be a whole number of at least 1, got 0"),
        ({"retries": 3}, "retries must be an asyncfetch.Retries, got 3"),
        ({"intercom_version": "1.1\r\nX-Evil: 1"}, "intercom_version must be printable text"),
        (
            {"base_url": "http://api.example.com"},
            "base_url 'http://api.example.com' is plain http:// to a non-loopback host",
        ),
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
        with pytest.raises(NotFoundError) as info:
            await anext(aiter(client.company_users(id="../users")))
    assert "/companies/..%2Fusers/users" in str(info.value)


async def test_using_a_client_that_is_not_open_says_how() -> None:
    client = IntercomClient(token="t")
    with pytest.raises(RuntimeError, match="use it as 'async with IntercomClient"):
        await anext(aiter(client.users()))


@pytest.mark.parametrize(
    "base_url",
    [
        "https://sekrit-token-1@api.intercom.io",
        "sekrit-token-1@api.intercom.io",
        "https://sekrit-token-1:x@h",
    ],
)
def test_credentials_in_base_url_are_refused_without_echoing_them(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        IntercomClient(token="t", base_url=base_url)
    assert "sekrit-token-1" not in str(info.value)


def test_token_with_a_newline_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="token must not contain control characters") as info:
        IntercomClient(token="sekrit-token-2\n")
    assert "sekrit-token-2" not in str(info.value)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "https://example.com"],
)
def test_loopback_http_and_any_https_are_allowed(base_url: str) -> None:
    IntercomClient(token="t", base_url=base_url)


def test_insecure_http_can_be_allowed_explicitly() -> None:
    IntercomClient(token="t", base_url="http://intercom.internal", allow_insecure_http=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attempts": 0}, "attempts must be a whole number of at least 1, got 0"),
        ({"attempts": 1.5}, "attempts must be a whole number of at least 1, got 1.5"),
        ({"max_wait": 0}, "max_wait must be a positive number of seconds or None, got 0"),
        ({"wait_initial": -1}, "wait_initial must be a positive number of seconds, got -1"),
        ({"wait_initial": 5, "wait_max": 1}, "wait_max (1) must be at least wait_initial (5)"),
    ],
)
def test_bad_retries(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Retries(**options)
