"""The bundled Intercom-compatible server, over real loopback sockets.

The server is the stand-in for api.intercom.io everywhere else, so these tests
pin the wire format clients depend on, and check that the real python-intercom
3.1.0 SDK pages through it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from intercom import errors as intercom_errors  # type: ignore[import-untyped]
from intercom.client import Client  # type: ignore[import-untyped]

from asyncfetch.testing._server import (
    ADVERTISED_RATE_LIMIT,
    CAP_MESSAGE,
    CONTACTS_CAP_MESSAGE,
    IntercomServer,
    ServerConfig,
    ServerThread,
)
from asyncfetch.testing._workspace import ListKey, Workspace

pytestmark = pytest.mark.anyio

BEARER = {"Authorization": "Bearer tok"}

Json = dict[str, Any]


def basic(login: str, password: str) -> str:
    """An HTTP Basic Authorization header value (aiohttp.BasicAuth is deprecated)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


class FakeClock:
    """A settable stand-in for time.time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def get(
    server: IntercomServer, path_or_url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, Mapping[str, str]]:
    """GET a path (or absolute URL); return (status, parsed JSON body, headers)."""
    url = path_or_url if path_or_url.startswith("http") else server.base_url + path_or_url
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=BEARER if headers is None else headers) as resp,
    ):
        return resp.status, await resp.json(), resp.headers


def assert_error(status: int, body: Json, want_status: int, code: str) -> None:
    assert status == want_status, body
    assert body["type"] == "error.list"
    assert re.fullmatch(r"[0-9a-f]{8,}", body["request_id"])
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]


# -- envelope and pagination ----------------------------------------------------


async def test_list_envelope_matches_intercom_v1(server: IntercomServer) -> None:
    status, body, headers = await get(server, "/users")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert set(body) == {"type", "total_count", "users", "pages"}
    assert body["type"] == "user.list"
    assert body["total_count"] == 1000
    assert len(body["users"]) == 50  # default per_page
    assert body["users"] == server.workspace.items(ListKey("users"))[:50]
    pages = body["pages"]
    assert pages == {
        "type": "pages",
        "next": pages["next"],
        "page": 1,
        "per_page": 50,
        "total_pages": 20,
    }
    # Absolute, back to this server, per_page spelt out, page + 1.
    assert pages["next"] == f"{server.base_url}/users?per_page=50&page=2"


async def test_next_keeps_filters_and_clamped_per_page(server: IntercomServer) -> None:
    tag = server.workspace.largest_tag_id
    status, body, _ = await get(server, f"/users?tag_id={tag}&per_page=500&page=2")
    assert status == 200
    assert body["pages"]["per_page"] == 60
    assert len(body["users"]) == 60
    next_url = urlsplit(body["pages"]["next"])
    assert f"{next_url.scheme}://{next_url.netloc}" == server.base_url
    assert next_url.path == "/users"
    assert parse_qsl(next_url.query) == [("tag_id", tag), ("per_page", "60"), ("page", "3")]


async def test_last_page_and_past_the_end_have_null_next(server: IntercomServer) -> None:
    status, body, _ = await get(server, "/users?per_page=60&page=17")
    assert status == 200
    assert len(body["users"]) == 1000 - 16 * 60
    assert "next" in body["pages"]
    assert body["pages"]["next"] is None
    assert body["pages"]["total_pages"] == 17

    status, body, _ = await get(server, "/users?per_page=60&page=18")
    assert status == 200
    assert body["users"] == []
    assert body["total_count"] == 1000
    assert body["pages"]["next"] is None


async def test_empty_list_has_zero_pages(server: IntercomServer) -> None:
    status, body, _ = await get(server, f"/users?tag_id={server.workspace.empty_tag_id}")
    assert status == 200
    assert body["total_count"] == 0
    assert body["users"] == []
    assert body["pages"]["total_pages"] == 0
    assert body["pages"]["next"] is None


def _list_specs() -> list[tuple[str, Callable[[Workspace], tuple[str, ListKey]]]]:
    """(id, workspace -> (first path, the ListKey it must walk))."""
    return [
        ("users", lambda ws: ("/users", ListKey("users"))),
        (
            "users-by-tag",
            lambda ws: (
                f"/users?tag_id={ws.largest_tag_id}",
                ListKey("users", "tag_id", ws.largest_tag_id),
            ),
        ),
        (
            "users-by-segment",
            lambda ws: (
                f"/users?segment_id={ws.segments[2]['id']}",
                ListKey("users", "segment_id", ws.segments[2]["id"]),
            ),
        ),
        (
            "company-users-by-id",
            lambda ws: (
                f"/companies/{ws.largest_company_id}/users",
                ListKey("users", "company", ws.largest_company_id),
            ),
        ),
        (
            "company-users-by-company-id",
            lambda ws: (
                "/companies?company_id=company-0&type=user",
                ListKey("users", "company", ws.company_ids["company-0"]),
            ),
        ),
        ("companies", lambda ws: ("/companies", ListKey("companies"))),
        (
            "companies-by-tag",
            lambda ws: (
                f"/companies?tag_id={ws.largest_tag_id}",
                ListKey("companies", "tag_id", ws.largest_tag_id),
            ),
        ),
        ("contacts", lambda ws: ("/contacts", ListKey("contacts"))),
    ]


@pytest.mark.parametrize("per_page", [7, 60])
@pytest.mark.parametrize(
    "spec", [spec for _, spec in _list_specs()], ids=[name for name, _ in _list_specs()]
)
async def test_walking_next_links_yields_every_item_once_in_creation_order(
    server: IntercomServer,
    spec: Callable[[Workspace], tuple[str, ListKey]],
    per_page: int,
) -> None:
    path, key = spec(server.workspace)
    expected = server.workspace.items(key)
    assert len(expected) > 1
    sep = "&" if "?" in path else "?"
    url: str | None = f"{server.base_url}{path}{sep}per_page={per_page}"
    got: list[Json] = []
    numbers: list[int] = []
    while url is not None:
        status, body, _ = await get(server, url)
        assert status == 200, body
        assert body["total_count"] == len(expected)
        got.extend(body[key.collection])
        numbers.append(body["pages"]["page"])
        url = body["pages"]["next"]
    assert [item["id"] for item in got] == [item["id"] for item in expected]
    assert got == expected
    created = [item["created_at"] for item in got]
    assert created == sorted(created)
    assert len({item["id"] for item in got}) == len(got)
    assert numbers == list(range(1, math.ceil(len(expected) / per_page) + 1))


async def test_small_lists_have_no_pages(server: IntercomServer) -> None:
    ws = server.workspace
    for name, kind, items in (
        ("tags", "tag", ws.tags),
        ("segments", "segment", ws.segments),
        ("admins", "admin", ws.admins),
    ):
        status, body, _ = await get(server, f"/{name}")
        assert status == 200
        assert body == {"type": f"{kind}.list", name: list(items)}


# -- parameter errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["page=0", "page=-1", "page=abc", "page=1.5", "per_page=0", "per_page=x"]
)
async def test_bad_paging_params_are_400(server: IntercomServer, query: str) -> None:
    status, body, _ = await get(server, f"/users?{query}")
    assert_error(status, body, 400, "parameter_invalid")


@pytest.mark.parametrize("path", ["/users", "/companies"])
async def test_tag_and_segment_together_are_400(server: IntercomServer, path: str) -> None:
    ws = server.workspace
    query = f"tag_id={ws.largest_tag_id}&segment_id={ws.segments[0]['id']}"
    status, body, _ = await get(server, f"{path}?{query}")
    assert_error(status, body, 400, "parameter_invalid")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("company_id=company-0&type=lead", "parameter_invalid"),
        ("company_id=company-0&type=", "parameter_invalid"),
    ],
)
async def test_company_id_needs_type_user(server: IntercomServer, query: str, code: str) -> None:
    status, body, _ = await get(server, f"/companies?{query}")
    assert_error(status, body, 400, code)


async def test_company_id_alone_views_the_company(server: IntercomServer) -> None:
    # API 1.x "View a Company": GET /companies?company_id=X is the company itself.
    ws = server.workspace
    status, body, _ = await get(server, "/companies?company_id=company-1")
    assert status == 200
    assert body == ws.companies[1]
    assert body["id"] == ws.company_ids["company-1"]
    status, body, _ = await get(server, "/companies?company_id=no-such-company")
    assert_error(status, body, 404, "company_not_found")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/users?tag_id=999", "not_found"),
        ("/users?segment_id=ffffffffffffffffffffffff", "not_found"),
        ("/companies?tag_id=999", "not_found"),
        ("/companies/ffffffffffffffffffffffff/users", "company_not_found"),
        ("/companies?company_id=no-such-company&type=user", "company_not_found"),
        ("/no/such/path", "not_found"),
    ],
)
async def test_unknown_ids_and_paths_are_404(server: IntercomServer, path: str, code: str) -> None:
    status, body, _ = await get(server, path)
    assert_error(status, body, 404, code)


async def test_page_cap_at_10000_records(server: IntercomServer) -> None:
    # Page 200 of 50 starts at record 9,950: allowed (and empty, 1,000 users).
    status, body, _ = await get(server, "/users?page=200")
    assert status == 200
    assert body["users"] == []
    status, body, _ = await get(server, "/users?page=201")  # starts at record 10,000
    assert_error(status, body, 400, "bad_request")
    assert body["errors"][0]["message"] == CAP_MESSAGE
    status, body, _ = await get(server, "/users?page=167&per_page=60")  # 9,960
    assert status == 200
    status, body, _ = await get(server, "/users?page=168&per_page=60")  # 10,020
    assert_error(status, body, 400, "bad_request")


async def test_each_endpoint_answers_past_the_cap_as_intercoms_does() -> None:
    # intercom-node#115 (users), intercom-ruby#274 (companies, contacts).
    async with IntercomServer(users=1000, page_cap_records=5) as server:
        for path in ("/users", f"/companies/{server.workspace.largest_company_id}/users"):
            status, body, _ = await get(server, f"{path}?per_page=5&page=2")
            assert_error(status, body, 400, "bad_request")
            assert body["errors"][0]["message"] == CAP_MESSAGE
        status, body, _ = await get(server, "/contacts?per_page=5&page=2")
        assert_error(status, body, 400, "parameter_invalid")
        assert body["errors"][0]["message"] == CONTACTS_CAP_MESSAGE
        # Companies: a 200 that looks like the end of an empty list.
        status, body, _ = await get(server, "/companies?per_page=5&page=2")
        assert status == 200
        assert body["companies"] == []
        assert body["total_count"] == 0
        assert body["pages"]["total_pages"] == 0
        assert body["pages"]["next"] is None
    async with IntercomServer(users=1000, page_cap_records=5, cap_per_endpoint=False) as server:
        for path in ("/users", "/contacts", "/companies"):
            status, body, _ = await get(server, f"{path}?per_page=5&page=2")
            assert_error(status, body, 400, "parameter_invalid")
            assert body["errors"][0]["message"] == CAP_MESSAGE


async def test_page_cap_is_configurable_and_next_leads_into_it() -> None:
    async with IntercomServer(users=1000, page_cap_records=100) as server:
        status, body, _ = await get(server, "/users?page=2")
        assert status == 200
        # Like Intercom: the last allowed page still links on, and the link 400s.
        status, body, _ = await get(server, body["pages"]["next"])
        assert_error(status, body, 400, "bad_request")
        assert body["errors"][0]["message"] == CAP_MESSAGE


# -- authentication -------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Token tok",
        "Basic !!!not-base64",
        basic("", ""),
        basic("app_id", "api_key"),  # the retired key pair
    ],
)
async def test_missing_or_malformed_credentials_are_401(
    server: IntercomServer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    status, body, response_headers = await get(server, "/users", headers=headers)
    assert_error(status, body, 401, "unauthorized")
    # Like every answer of the API, 401 included (intercom-node test/errors.js);
    # a 401 is not counted against the budget.
    assert response_headers["X-RateLimit-Limit"] == str(ADVERTISED_RATE_LIMIT)
    assert response_headers["X-RateLimit-Remaining"] == str(ADVERTISED_RATE_LIMIT)
    assert int(response_headers["X-RateLimit-Reset"]) > 0
    assert response_headers["X-Request-Id"] == body["request_id"]


async def test_basic_auth_with_token_as_user_name_is_accepted(server: IntercomServer) -> None:
    headers = {"Authorization": basic("tok", "")}
    status, body, _ = await get(server, "/users", headers=headers)
    assert status == 200
    assert body["type"] == "user.list"


async def test_configured_token_is_the_only_one_accepted() -> None:
    async with IntercomServer(users=10, token="s3cret") as server:
        status, body, _ = await get(server, "/users")
        assert_error(status, body, 401, "unauthorized")
        basic_wrong = {"Authorization": basic("tok", "")}
        status, body, _ = await get(server, "/users", headers=basic_wrong)
        assert_error(status, body, 401, "unauthorized")
        for header in ("Bearer s3cret", basic("s3cret", "")):
            status, _, _ = await get(server, "/users", headers={"Authorization": header})
            assert status == 200


# -- rate limits ----------------------------------------------------------------


async def test_rate_limit_headers_advertised_but_not_enforced_by_default() -> None:
    clock = FakeClock(1_700_000_003.7)
    async with IntercomServer(users=10, clock=clock) as server:
        remaining = []
        for path in ("/users", "/tags", "/no/such/path"):
            _, _, headers = await get(server, path)
            assert headers["X-RateLimit-Limit"] == str(ADVERTISED_RATE_LIMIT)
            assert headers["X-RateLimit-Reset"] == "1700000010"  # end of the 10 s window
            remaining.append(int(headers["X-RateLimit-Remaining"]))
        assert remaining == [1665, 1664, 1663]


async def test_rate_limit_enforced_per_fixed_window() -> None:
    clock = FakeClock(1_700_000_000.0)
    async with IntercomServer(users=10, rate_limit=3, clock=clock) as server:
        remaining = []
        for _ in range(3):
            status, _, headers = await get(server, "/users")
            assert status == 200
            assert headers["X-RateLimit-Limit"] == "3"
            remaining.append(headers["X-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]

        clock.now += 9.9  # same window
        status, body, headers = await get(server, "/users")
        assert_error(status, body, 429, "rate_limit_exceeded")
        assert body["errors"][0]["message"] == "Exceeded rate limit of 3 in 10_seconds"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert headers["X-RateLimit-Reset"] == "1700000010"

        clock.now += 0.1  # the next window starts at 1_700_000_010
        status, _, headers = await get(server, "/users")
        assert status == 200
        assert headers["X-RateLimit-Remaining"] == "2"
        assert headers["X-RateLimit-Reset"] == "1700000020"
        assert server.stats.statuses == {200: 4, 429: 1}


# -- latency, concurrency and stats ---------------------------------------------


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a plain counter: no event to wait on) for up to 5 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def test_latency_holds_requests_in_flight_together() -> None:
    async with IntercomServer(users=100, latency_ms=300) as server:
        async with aiohttp.ClientSession(headers=BEARER) as session:

            async def fetch(page: int) -> int:
                async with session.get(f"{server.base_url}/users?per_page=10&page={page}") as r:
                    await r.read()
                    return r.status

            task = asyncio.ensure_future(asyncio.gather(*(fetch(p) for p in range(1, 9))))
            await _until(lambda: server.stats.in_flight == 8)
            assert await task == [200] * 8
        assert server.stats.in_flight == 0
        assert server.stats.max_in_flight == 8
        assert server.stats.requests == 8
        assert sorted(page for _, page in server.stats.pages) == list(range(1, 9))


async def test_client_disconnect_cancels_the_handler() -> None:
    async with IntercomServer(users=10, latency_ms=60_000) as server:
        async with aiohttp.ClientSession(headers=BEARER) as session:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await session.get(f"{server.base_url}/users")
        await _until(lambda: server.stats.in_flight == 0)
        assert server.stats.requests == 1
        assert server.stats.max_in_flight == 1
        assert server.stats.statuses == {}  # the client never got a status


async def test_stats_count_requests_statuses_and_pages(server: IntercomServer) -> None:
    tag = server.workspace.largest_tag_id
    await get(server, "/users?page=3")
    await get(server, f"/users?tag_id={tag}")
    await get(server, "/contacts?page=x")
    await get(server, "/users", headers={})
    stats = server.stats
    assert stats.requests == 4
    assert stats.in_flight == 0
    assert stats.max_in_flight == 1
    assert stats.statuses == {200: 2, 400: 1, 401: 1}
    assert stats.pages == [("/users", 3), ("/users", 1), ("/contacts", 0), ("/users", 1)]
    stats.reset()
    assert (stats.requests, stats.max_in_flight, stats.statuses, stats.pages) == (0, 0, {}, [])
    await get(server, "/users?page=2")
    assert stats.pages == [("/users", 2)]


# -- workspace and config -------------------------------------------------------


def test_workspace_is_deterministic_and_well_formed() -> None:
    ws = Workspace.generate(users=1000, seed=7)
    again = Workspace.generate(users=1000, seed=7)
    other = Workspace.generate(users=1000, seed=8)
    assert ws.users == again.users
    assert ws.list_blobs(ListKey("users")) == again.list_blobs(ListKey("users"))
    assert ws.users != other.users

    assert len(ws.companies) == 10
    assert len(ws.contacts) == 250
    assert (len(ws.tags), len(ws.segments)) == (8, 5)
    all_ids = [x["id"] for x in (*ws.users, *ws.contacts, *ws.companies, *ws.segments)]
    assert len(set(all_ids)) == len(all_ids)
    for user in ws.users:
        assert re.fullmatch(r"[0-9a-f]{24}", user["id"])
        assert user["type"] == "user"
        assert user["tags"]["type"] == "tag.list"
        assert user["segments"]["type"] == "segment.list"
        assert user["companies"]["type"] == "company.list"
        assert all(isinstance(v, str | int | float) for v in user["custom_attributes"].values())
    created = [u["created_at"] for u in ws.users]
    assert created == sorted(set(created))  # strictly increasing
    assert [u["id"] for u in ws.users] == sorted(u["id"] for u in ws.users)
    blobs = ws.list_blobs(ListKey("users"))
    assert blobs is not None
    assert 700 < sum(map(len, blobs)) / len(blobs) < 2000  # "about 1 KB" per user
    # The 1.x User Model's fields, nested companies as {"type", "id"} only.
    for user in ws.users:
        assert {"referrer", "utm_campaign", "utm_content", "utm_medium", "utm_source"} <= set(user)
        assert {"utm_term", "location_data"} <= set(user)
        assert isinstance(user["location_data"]["latitude"], float)
        assert isinstance(user["location_data"]["longitude"], float)
        assert all(set(c) == {"type", "id"} for c in user["companies"]["companies"])
    full = Workspace.generate(users=1000, seed=7, company_refs_id_only=False)
    refs = [c for u in full.users for c in u["companies"]["companies"]]
    assert refs
    assert all(set(c) == {"type", "id", "company_id", "name"} for c in refs)
    bare = Workspace.generate(users=1000, seed=7, leads_in_lists=False)
    assert all(not c["tags"]["tags"] for c in bare.contacts)
    assert all(
        u["type"] == "user" for u in bare.items(ListKey("users", "tag_id", bare.largest_tag_id))
    )


@pytest.mark.parametrize("users", [0, 1, 1000, 5000])
def test_workspace_memberships_agree_with_the_objects(users: int) -> None:
    ws = Workspace.generate(users=users)

    def by_creation(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(objects, key=lambda o: o["created_at"])

    largest = ws.items(ListKey("users", "tag_id", ws.largest_tag_id))
    assert len(largest) == math.ceil(users / 2) + math.ceil(len(ws.contacts) / 2)
    assert ws.items(ListKey("users", "tag_id", ws.empty_tag_id)) == []
    for tag in ws.tags:
        # Users and leads, in creation order.
        carried = [p for p in (*ws.users, *ws.contacts) if tag in p["tags"]["tags"]]
        assert ws.items(ListKey("users", "tag_id", tag["id"])) == by_creation(carried)
        tagged = [c for c in ws.companies if tag in c["tags"]["tags"]]
        assert ws.items(ListKey("companies", "tag_id", tag["id"])) == tagged
    for segment in ws.segments:
        ref = {"type": "segment", "id": segment["id"]}
        members = [p for p in (*ws.users, *ws.contacts) if ref in p["segments"]["segments"]]
        assert ws.items(ListKey("users", "segment_id", segment["id"])) == by_creation(members)
        assert ws.items(ListKey("companies", "segment_id", segment["id"])) == []
    if users >= 1000:
        # Leads are in lists: "a pageable list of users and leads".
        active = ws.items(ListKey("users", "segment_id", ws.segments[0]["id"]))
        assert {p["type"] for p in active} == {"user", "contact"}
    sizes = []
    for company in ws.companies:
        members = [
            u
            for u in ws.users
            if any(c["id"] == company["id"] for c in u["companies"]["companies"])
        ]
        assert ws.items(ListKey("users", "company", company["id"])) == members
        assert company["user_count"] == len(members)
        sizes.append(len(members))
    biggest = max(sizes)
    assert ws.largest_company_id == ws.companies[sizes.index(biggest)]["id"]
    if users >= 1000:
        assert sizes[0] == biggest  # Zipf weights: company 0 is the big customer
    assert ws.list_blobs(ListKey("users", "tag_id", "nope")) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"users": -1}, "users must be"),
        ({"users": True}, "users must be"),
        ({"users": 10_000_000}, "users must be"),
        ({"seed": 1.5}, "seed must be"),
        ({"latency_ms": -1}, "latency_ms must be"),
        ({"latency_ms": float("nan")}, "latency_ms must be"),
        ({"rate_limit": 0}, "rate_limit must be"),
        ({"token": ""}, "token must be"),
        ({"token": "a b"}, "token must be"),
        ({"page_cap_records": 0}, "page_cap_records must be"),
    ],
)
def test_server_config_rejects_bad_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**fields)


@pytest.mark.parametrize("users", [True, 1.0, -1, "10"])
def test_workspace_refuses_a_number_of_users_that_is_no_int(users: Any) -> None:
    # The same integer check as ServerConfig's, also for a Workspace built alone.
    with pytest.raises(ValueError, match="users must be an int"):
        Workspace.generate(users=users)


# -- synchronous use: ServerThread and python-intercom 3.1.0 --------------------


@pytest.fixture(scope="module")
def server_thread() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=1000)) as started:
        yield started


@pytest.fixture
def intercom(server_thread: ServerThread) -> Iterator[Client]:
    client = Client(personal_access_token="tok")
    client.base_url = server_thread.base_url
    yield client
    client.http_session.close()


def test_server_thread_starts_and_stops_cleanly() -> None:
    before = set(threading.enumerate())
    with ServerThread(users=20) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
        assert len(server.workspace.users) == 20
        assert len(set(threading.enumerate()) - before) == 1
    assert set(threading.enumerate()) == before


def test_server_thread_reports_a_failed_start() -> None:
    with ServerThread(users=1) as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        taken = ServerThread(users=1, port=port)
        with pytest.raises(RuntimeError, match="failed to start") as info:
            taken.start()
        assert isinstance(info.value.__cause__, OSError)


def test_run_server_prints_its_url_and_stops_on_ctrl_c() -> None:
    code = "from asyncfetch.testing._server import *; run_server(ServerConfig(users=10), port=0)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        assert match is not None
        request = urllib.request.Request(match.group() + "/users", headers=BEARER)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.load(response)["total_count"] == 10
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert stderr == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_python_intercom_pages_through_a_tag(server_thread: ServerThread, intercom: Client) -> None:
    ws = server_thread.workspace
    tag_id = ws.largest_tag_id
    expected = [u["id"] for u in ws.items(ListKey("users", "tag_id", tag_id))]
    server_thread.stats.reset()
    got = [user.id for user in intercom.users.find_all(tag_id=tag_id)]
    assert got == expected
    assert len(got) == 625  # 500 users and 125 leads
    # Thirteen pages of 50, one after the other, each once.
    assert server_thread.stats.pages == [("/users", page) for page in range(1, 14)]
    assert intercom.rate_limit_details["limit"] == ADVERTISED_RATE_LIMIT


def test_python_intercom_other_lists(server_thread: ServerThread, intercom: Client) -> None:
    ws = server_thread.workspace

    def ids(items: Any) -> list[str]:
        return [item.id for item in items]

    assert ids(intercom.users.all()) == [u["id"] for u in ws.users]
    segment_id = ws.segments[0]["id"]
    assert ids(intercom.users.find_all(segment_id=segment_id)) == [
        u["id"] for u in ws.items(ListKey("users", "segment_id", segment_id))
    ]
    company = ws.largest_company_id
    assert ids(intercom.companies.users(company)) == [
        u["id"] for u in ws.items(ListKey("users", "company", company))
    ]
    assert ids(intercom.companies.all()) == [c["id"] for c in ws.companies]
    assert ids(intercom.leads.all()) == [c["id"] for c in ws.contacts]
    assert ids(intercom.tags.all()) == [t["id"] for t in ws.tags]
    assert ids(intercom.segments.all()) == [s["id"] for s in ws.segments]
    assert ids(intercom.admins.all()) == [a["id"] for a in ws.admins]


def test_python_intercom_sees_intercom_errors(intercom: Client) -> None:
    with pytest.raises(intercom_errors.ResourceNotFound):
        list(intercom.users.find_all(tag_id="999"))
    with pytest.raises(intercom_errors.BadRequestError):
        list(intercom.users.find_all(tag_id="1", segment_id="2"))


def test_python_intercom_hits_the_page_cap_and_a_bad_token() -> None:
    with ServerThread(users=1000, page_cap_records=100, token="right") as server:
        client = Client(personal_access_token="right")
        client.base_url = server.base_url
        seen: list[str] = []
        with pytest.raises(intercom_errors.BadRequestError, match="scroll API"):
            seen.extend(user.id for user in client.users.all())
        assert len(seen) == 100
        client.personal_access_token = "wrong"
        with pytest.raises(intercom_errors.AuthenticationError):
            list(client.users.all())
        client.http_session.close()
