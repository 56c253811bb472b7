"""The bundled server's Scroll API (``/users/scroll`` etc.), over real loopback sockets.

Clients use the scroll to get past the 10,000-record cap of page-numbered
listing, so this pins the envelope and Intercom's rules: no filters, one open
scroll per collection, expiry after a minute unused, an empty batch ends it,
and a 5xx means starting again.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from asyncfetch.testing._faults import FaultConfig
from asyncfetch.testing._scroll_server import EXPIRED_MESSAGE, SCROLL_EXISTS_MESSAGE
from asyncfetch.testing._server import CAP_MESSAGE, IntercomServer, ServerConfig
from asyncfetch.testing._workspace import ListKey

from ..helpers import MakeServer, ids

pytestmark = pytest.mark.anyio

BEARER = {"Authorization": "Bearer tok"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
ITEMS_KEYS = {"user.list": "users", "contact.list": "contacts", "company.list": "companies"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class FakeClock:
    """A settable stand-in for time.time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Answer:
    """One response: status, parsed JSON body (None for a non-JSON body) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def items(self) -> list[dict[str, Any]]:
        """The batch of a scroll answer, whatever the collection."""
        items: list[dict[str, Any]] = self.body[ITEMS_KEYS[self.body["type"]]]
        return items

    @property
    def param(self) -> str:
        param: str = self.body["scroll_param"]
        return param


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=BEARER) as client:
        yield client


async def get(
    session: aiohttp.ClientSession,
    server: IntercomServer,
    path: str,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    async with session.get(server.base_url + path, headers=headers) as resp:
        raw = await resp.read()
        is_json = resp.headers.get("Content-Type", "").startswith("application/json")
        return Answer(resp.status, json.loads(raw) if is_json else None, resp.headers)


async def scroll_all(
    session: aiohttp.ClientSession, server: IntercomServer, kind: str = "users"
) -> list[Answer]:
    """Walk one whole scroll of ``kind``; every answer, the ending empty batch included."""
    answers = [await get(session, server, f"/{kind}/scroll")]
    while answers[-1].status == 200 and answers[-1].items:
        answers.append(
            await get(session, server, f"/{kind}/scroll?scroll_param={answers[-1].param}")
        )
    assert [a.status for a in answers] == [200] * len(answers), answers[-1]
    return answers


def assert_error(answer: Answer, status: int, code: str, message: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert answer.body["type"] == "error.list"
    error = answer.body["errors"][0]
    assert error["code"] == code
    if message is not None:
        assert error["message"] == message


# -- the walk -------------------------------------------------------------------


async def test_scroll_yields_every_user_once_in_order_then_an_empty_batch(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=250, scroll_cursor="single_use")
    answers = await scroll_all(session, server)
    assert [len(a.items) for a in answers] == [100, 100, 50, 0]  # default batch of 100
    for answer in answers:
        assert list(answer.body) == ["type", "users", "scroll_param"]
        assert answer.body["type"] == "user.list"
        assert answer.headers["Content-Type"].startswith("application/json")
        assert UUID.fullmatch(answer.param)  # the ending batch carries one too
    got = [user for answer in answers for user in answer.items]
    assert got == server.workspace.items(ListKey("users"))
    assert len({answer.param for answer in answers}) == len(answers)  # fresh each time

    # The param that came with the empty batch leads nowhere.
    after = await get(session, server, f"/users/scroll?scroll_param={answers[-1].param}")
    assert_error(after, 404, "not_found", EXPIRED_MESSAGE)
    assert server.stats.pages == [("/users/scroll", n) for n in (1, 2, 3, 4)] + [
        ("/users/scroll", 0)
    ]
    assert server.stats.requests == 5
    assert server.stats.statuses == {200: 4, 404: 1}


async def test_batch_size_is_configurable(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=20, scroll_page_size=7)
    answers = await scroll_all(session, server)
    assert [len(a.items) for a in answers] == [7, 7, 6, 0]
    # An exact multiple still ends with its own empty batch.
    exact = await make_server(users=21, scroll_page_size=7)
    assert [len(a.items) for a in await scroll_all(session, exact)] == [7, 7, 7, 0]
    empty = await make_server(users=0)
    answers = await scroll_all(session, empty)
    assert [a.items for a in answers] == [[]]
    # An empty collection ends at once and frees the slot.
    assert (await get(session, empty, "/users/scroll")).status == 200


@pytest.mark.parametrize(
    ("kind", "list_type"), [("contacts", "contact.list"), ("companies", "company.list")]
)
async def test_contacts_and_companies_scroll_the_same_way(
    make_server: MakeServer, session: aiohttp.ClientSession, kind: str, list_type: str
) -> None:
    server = await make_server(users=1000, scroll_page_size=4)
    answers = await scroll_all(session, server, kind)
    assert all(list(a.body) == ["type", kind, "scroll_param"] for a in answers)
    assert {a.body["type"] for a in answers} == {list_type}
    assert answers[-1].items == []
    got = [item for answer in answers for item in answer.items]
    assert got == server.workspace.items(ListKey(kind))
    assert len(got) == {"contacts": 250, "companies": 10}[kind]
    # Another collection's param means nothing here.
    users = await get(session, server, "/users/scroll")
    other = await get(session, server, f"/{kind}/scroll?scroll_param={users.param}")
    assert_error(other, 404, "not_found")


async def test_scroll_goes_past_the_page_cap_of_a_large_workspace(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=24_000, scroll_page_size=1000)
    ws = server.workspace
    # The largest tag is carried by every even-index user and lead: 12,000 +
    # 3,000 of them, so its page-numbered list hits the 10,000 cap.
    assert len(ws.items(ListKey("users", "tag_id", ws.largest_tag_id))) == 15_000
    capped = await get(session, server, f"/users?tag_id={ws.largest_tag_id}&page=201")
    assert_error(capped, 400, "bad_request", CAP_MESSAGE)
    answers = await scroll_all(session, server)
    assert len(answers) == 25
    assert [u["id"] for a in answers for u in a.items] == ids(ws.users)


async def test_users_signed_up_during_a_scroll_are_not_in_it(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=250, insert_users_every=1)
    ws = server.workspace
    before = ids(ws.items(ListKey("users")))
    first = await get(session, server, "/users/scroll")  # a user signs up after it
    assert len(ws.users) == 251
    # Page-numbered reads in between shift the list and sign more users up.
    page = await get(session, server, "/users?per_page=60")
    assert page.body["users"][0]["id"] == ws.users[250]["id"]
    assert len(ws.users) == 252
    answers = [first]
    while answers[-1].items:
        answers.append(
            await get(session, server, f"/users/scroll?scroll_param={answers[-1].param}")
        )
    got = [u["id"] for a in answers for u in a.items]
    # The snapshot taken at the start: each user once, in its order, no newcomer.
    assert got == before
    assert len(ws.users) == 255  # every scroll batch counted as a user-list page
    # The next scroll sees the newcomers, at the front like the all-users list.
    again = await scroll_all(session, server)
    assert [u["id"] for a in again for u in a.items][:5] == ids(reversed(ws.users[250:255]))


# -- rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "tag_id={tag}",
        "segment_id={segment}",
        "company_id=company-0&type=user",
        "created_since=7",
        "tag_id={tag}&scroll_param=x",
    ],
)
async def test_scroll_has_no_filters(
    make_server: MakeServer, session: aiohttp.ClientSession, query: str
) -> None:
    server = await make_server(users=100)
    ws = server.workspace
    query = query.format(tag=ws.largest_tag_id, segment=ws.segments[0]["id"])
    for kind in ("users", "contacts", "companies"):
        answer = await get(session, server, f"/{kind}/scroll?{query}")
        assert_error(answer, 400, "parameter_invalid")
        assert "scroll has no filters" in answer.body["errors"][0]["message"]
    # Refused requests open no scroll.
    assert (await get(session, server, "/users/scroll")).status == 200


async def test_paging_params_are_ignored(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=150)
    answer = await get(session, server, "/users/scroll?per_page=10&page=3")
    assert answer.items == server.workspace.items(ListKey("users"))[:100]


async def test_one_open_scroll_per_collection(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=300, scroll_per_workspace=False)
    first = await get(session, server, "/users/scroll")
    second = await get(session, server, "/users/scroll")
    assert_error(second, 400, "scroll_exists", SCROLL_EXISTS_MESSAGE)
    # Other collections have their own slot.
    assert (await get(session, server, "/contacts/scroll")).status == 200
    assert (await get(session, server, "/companies/scroll")).status == 200
    assert_error(await get(session, server, "/contacts/scroll"), 400, "scroll_exists")
    # The refused start did not disturb the open scroll.
    nxt = await get(session, server, f"/users/scroll?scroll_param={first.param}")
    assert nxt.items == server.workspace.items(ListKey("users"))[100:200]
    assert server.stats.pages[:2] == [("/users/scroll", 1), ("/users/scroll", 1)]
    assert server.stats.pages[-1] == ("/users/scroll", 2)


async def test_a_finished_scroll_frees_the_slot_at_once(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=120)
    first = await scroll_all(session, server)
    second = await scroll_all(session, server)
    assert [a.items for a in second] == [a.items for a in first]
    assert {a.param for a in second}.isdisjoint(a.param for a in first)


async def test_scroll_expires_after_its_expiry_unused(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(1_700_000_000.0)
    server = await make_server(users=500, clock=clock)  # default expiry: 60 s
    first = await get(session, server, "/users/scroll")
    clock.now += 59.9
    second = await get(session, server, f"/users/scroll?scroll_param={first.param}")
    assert second.status == 200  # in time; the use restarts the minute
    clock.now += 59.9
    third = await get(session, server, f"/users/scroll?scroll_param={second.param}")
    assert third.status == 200
    clock.now += 60.0
    late = await get(session, server, f"/users/scroll?scroll_param={third.param}")
    assert_error(late, 404, "not_found", EXPIRED_MESSAGE)
    assert server.stats.pages[-1] == ("/users/scroll", 0)
    # An expired scroll no longer holds the slot.
    assert (await get(session, server, "/users/scroll")).status == 200


async def test_an_expired_scroll_never_used_again_does_not_block_a_start(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(1_700_000_000.0)
    server = await make_server(users=500, clock=clock, scroll_expiry_seconds=5)
    first = await get(session, server, "/users/scroll")
    clock.now += 4.9
    assert_error(await get(session, server, "/users/scroll"), 400, "scroll_exists")
    clock.now += 0.1
    restart = await get(session, server, "/users/scroll")
    assert restart.status == 200
    assert restart.items == first.items
    stale = await get(session, server, f"/users/scroll?scroll_param={first.param}")
    assert_error(stale, 404, "not_found")


@pytest.mark.parametrize("param", ["nope", "", "00000000-0000-0000-0000-000000000000"])
async def test_unknown_scroll_param_is_404(
    make_server: MakeServer, session: aiohttp.ClientSession, param: str
) -> None:
    server = await make_server(users=100)
    answer = await get(session, server, f"/users/scroll?scroll_param={param}")
    assert_error(answer, 404, "not_found", EXPIRED_MESSAGE)
    assert server.stats.pages == [("/users/scroll", 0)]
    # Also while a scroll is open, which it leaves alone.
    first = await get(session, server, "/users/scroll")
    assert_error(
        await get(session, server, f"/users/scroll?scroll_param={param}"), 404, "not_found"
    )
    assert (await get(session, server, f"/users/scroll?scroll_param={first.param}")).status == 200


async def test_a_spent_scroll_param_is_404_and_ends_the_scroll(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=300, scroll_cursor="single_use")
    first = await get(session, server, "/users/scroll")
    second = await get(session, server, f"/users/scroll?scroll_param={first.param}")
    assert second.status == 200
    # A retry of an answered request (say its answer was lost) cannot be told
    # from a mistake: 404, and the scroll is over so a new start is allowed.
    retry = await get(session, server, f"/users/scroll?scroll_param={first.param}")
    assert_error(retry, 404, "not_found")
    assert_error(
        await get(session, server, f"/users/scroll?scroll_param={second.param}"), 404, "not_found"
    )
    assert (await get(session, server, "/users/scroll")).status == 200


async def test_concurrent_uses_of_one_param_serve_one_batch(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=300, latency_ms=50, scroll_cursor="single_use")
    first = await get(session, server, "/users/scroll")
    path = f"/users/scroll?scroll_param={first.param}"
    answers = await asyncio.gather(*(get(session, server, path) for _ in range(3)))
    assert sorted(a.status for a in answers) == [200, 404, 404]


async def test_the_cursor_lives_on_the_server_by_default(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    # Like the SDK fixtures: one scroll_param for the whole scroll, and each
    # request with it moves on, so re-sending one whose answer was lost skips
    # that batch instead of repeating it.
    server = await make_server(users=250)
    answers = await scroll_all(session, server)
    assert [len(a.items) for a in answers] == [100, 100, 50, 0]
    assert len({a.param for a in answers}) == 1
    got = [u for a in answers for u in a.items]
    assert got == server.workspace.items(ListKey("users"))
    again = await get(session, server, "/users/scroll")
    lost = await get(session, server, f"/users/scroll?scroll_param={again.param}")
    resent = await get(session, server, f"/users/scroll?scroll_param={again.param}")
    assert lost.items == got[100:200]
    assert resent.items == got[200:]  # not the lost batch again
    assert server.stats.pages[-3:] == [("/users/scroll", n) for n in (1, 2, 3)]


async def test_one_open_scroll_per_workspace_by_default(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=300)
    users = await get(session, server, "/users/scroll")
    for kind in ("users", "contacts", "companies"):
        assert_error(await get(session, server, f"/{kind}/scroll"), 400, "scroll_exists")
    # Walked to its end, the users scroll frees the workspace's one slot.
    while (await get(session, server, f"/users/scroll?scroll_param={users.param}")).items:
        pass
    assert (await get(session, server, "/contacts/scroll")).status == 200
    assert_error(await get(session, server, "/companies/scroll"), 400, "scroll_exists")


# -- faults, auth and rate limits -----------------------------------------------


@pytest.mark.parametrize("kind", ["error", "html_error"])
async def test_a_5xx_during_a_scroll_ends_it(
    make_server: MakeServer, session: aiohttp.ClientSession, kind: str
) -> None:
    # Every request faults, but no URL twice in a row: each URL's first
    # request gets a 5xx and its second an answer.
    faults = FaultConfig(
        error_rate=float(kind == "error"),
        html_error_rate=float(kind == "html_error"),
        max_consecutive_faults=1,
    )
    server = await make_server(users=300, faults=faults)
    assert (await get(session, server, "/users/scroll")).status >= 500  # opens nothing
    first = await get(session, server, "/users/scroll")
    assert first.status == 200
    path = f"/users/scroll?scroll_param={first.param}"
    failed = await get(session, server, path)
    assert failed.status in (500, 502, 503, 504)
    if kind == "html_error":
        assert failed.body is None  # a proxy's page
    # The same request again is not faulted, and finds the scroll gone.
    assert_error(await get(session, server, path), 404, "not_found", EXPIRED_MESSAGE)
    # Starting again is allowed (after the start URL's own 5xx).
    assert (await get(session, server, "/users/scroll")).status >= 500
    restart = await get(session, server, "/users/scroll")
    assert restart.status == 200
    assert restart.items == first.items
    assert server.stats.faults == {kind: 3}


async def test_faults_that_are_not_5xx_leave_the_scroll_usable(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    faults = FaultConfig(throttle_rate=1.0, throttle_burst=0, max_consecutive_faults=1)
    server = await make_server(users=300, faults=faults)
    assert (await get(session, server, "/users/scroll")).status == 429
    first = await get(session, server, "/users/scroll")
    path = f"/users/scroll?scroll_param={first.param}"
    assert_error(await get(session, server, path), 429, "rate_limit_exceeded")
    second = await get(session, server, path)  # the retry continues the scroll
    assert second.items == server.workspace.items(ListKey("users"))[100:200]
    assert server.stats.pages == [("/users/scroll", n) for n in (1, 1, 2, 2)]


async def test_scroll_faults_are_reproducible(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    faults = FaultConfig(seed=5, error_rate=0.3, throttle_rate=0.2, throttle_burst=0)

    async def walk(server: IntercomServer) -> list[tuple[int, str | None]]:
        seen: list[tuple[int, str | None]] = []
        path = "/users/scroll"
        while len(seen) < 40:
            answer = await get(session, server, path)
            param = answer.body.get("scroll_param") if answer.status == 200 else None
            seen.append((answer.status, param))
            if answer.status == 200 and not answer.items:
                break
            if answer.status == 200:
                path = f"/users/scroll?scroll_param={param}"
            elif answer.status >= 500 or answer.status == 404:
                path = "/users/scroll"
        return seen

    one = await walk(await make_server(users=500, scroll_page_size=50, faults=faults))
    two = await walk(await make_server(users=500, scroll_page_size=50, faults=faults))
    assert one == two
    # Every restart after a 5xx was allowed at once: the 5xx freed the slot.
    assert 400 not in {status for status, _ in one}
    assert {status for status, _ in one} >= {200, 429}
    assert any(status >= 500 for status, _ in one)


async def test_scroll_needs_authentication(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    server = await make_server(users=100, token="s3cret")
    answer = await get(session, server, "/users/scroll")
    assert_error(answer, 401, "unauthorized")
    # Rate headers as on every answer of the API, 401 included (intercom-node test/errors.js).
    assert "X-RateLimit-Limit" in answer.headers
    good = {"Authorization": "Bearer s3cret"}
    # The refused request opened no scroll.
    assert (await get(session, server, "/users/scroll", headers=good)).status == 200


async def test_scroll_answers_carry_rate_limit_headers_and_count_against_the_limit(
    make_server: MakeServer, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock(1_700_000_003.0)
    server = await make_server(users=300, rate_limit=3, clock=clock)
    first = await get(session, server, "/users/scroll")
    refused = await get(session, server, "/users/scroll")  # scroll_exists
    unknown = await get(session, server, "/users/scroll?scroll_param=nope")
    for answer, remaining in ((first, "2"), (refused, "1"), (unknown, "0")):
        assert answer.headers["X-RateLimit-Limit"] == "3"
        assert answer.headers["X-RateLimit-Remaining"] == remaining
        assert answer.headers["X-RateLimit-Reset"] == "1700000010"
    path = f"/users/scroll?scroll_param={first.param}"
    assert_error(await get(session, server, path), 429, "rate_limit_exceeded")
    clock.now = 1_700_000_010.0  # next window; 7 s is well inside the expiry
    second = await get(session, server, path)  # the 429 did not spend the param
    assert second.status == 200
    assert all(name in second.headers for name in RATE_HEADERS)
    assert second.headers["X-RateLimit-Remaining"] == "2"
    assert server.stats.statuses == {200: 2, 400: 1, 404: 1, 429: 1}


# -- configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scroll_page_size": 0}, "scroll_page_size must be an int >= 1"),
        ({"scroll_page_size": True}, "scroll_page_size must be an int >= 1"),
        ({"scroll_page_size": 1.5}, "scroll_page_size must be an int >= 1"),
        ({"scroll_expiry_seconds": 0}, "scroll_expiry_seconds must be a finite number > 0"),
        ({"scroll_expiry_seconds": -1.0}, "scroll_expiry_seconds must be a finite number > 0"),
        ({"scroll_expiry_seconds": float("inf")}, "scroll_expiry_seconds must be a finite"),
        ({"scroll_expiry_seconds": float("nan")}, "scroll_expiry_seconds must be a finite"),
        ({"scroll_expiry_seconds": "60"}, "scroll_expiry_seconds must be a finite"),
    ],
)
def test_server_config_rejects_bad_scroll_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**fields)


def test_scroll_defaults() -> None:
    config = ServerConfig()
    assert (config.scroll_page_size, config.scroll_expiry_seconds) == (100, 60.0)
