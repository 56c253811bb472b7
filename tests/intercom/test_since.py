"""``users(sort=, order=, updated_since=)``: sorted lists and the incremental listing,
against the bundled server over loopback. Expected records come from the
workspace's own data, never from the client."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from asyncfetch import IntercomClient, Listing, PageLimitError
from asyncfetch.testing import IntercomServer

from ..helpers import MakeServer, RawServer, TaskWatch, ids

pytestmark = pytest.mark.anyio

TOKEN = "test-token"


def client_for(base_url: str, **options: Any) -> IntercomClient:
    return IntercomClient(token=TOKEN, base_url=base_url, **options)


async def fetch_ids(listing: Listing[dict[str, Any]]) -> list[str]:
    async with listing:
        return [str(item["id"]) async for item in listing]


def newest_first(users: Any) -> list[dict[str, Any]]:
    """The workspace's users sorted as ``sort=updated_at&order=desc`` documents."""
    indexed = sorted(enumerate(users), key=lambda p: (p[1]["updated_at"], p[0]), reverse=True)
    return [user for _, user in indexed]


def users_requests(server: IntercomServer) -> int:
    return sum(1 for path, _ in server.stats.pages if path == "/users")


async def _until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - the server's counters have no event
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("field", ["created_at", "last_request_at", "signed_up_at", "updated_at"])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_sort_and_order_are_passed_through(
    server: IntercomServer, field: str, order: str
) -> None:
    users = server.workspace.users
    indexed = sorted(enumerate(users), key=lambda p: (p[1][field], p[0]), reverse=order == "desc")
    async with client_for(server.base_url, per_page=40, concurrency=4) as client:
        got = await fetch_ids(client.users(sort=field, order=order))
    assert got == [str(u["id"]) for _, u in indexed]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sort": "name"}, "sort must be one of"),
        ({"order": "newest"}, "order must be 'asc' or 'desc'"),
        ({"sort": "updated_at", "tag_id": "1"}, "list of all users only"),
        ({"updated_since": 0, "segment_id": "1"}, "list of all users only"),
        ({"order": "asc", "scroll": True}, "Scroll API has no order"),
        ({"updated_since": 0, "sort": "created_at"}, "updated_since lists by updated_at"),
        ({"updated_since": 0, "order": "asc"}, "updated_since lists by updated_at"),
        ({"updated_since": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"updated_since": True}, "updated_since must be epoch seconds"),
        ({"updated_since": math.nan}, "updated_since must be epoch seconds"),
        ({"updated_since": "2024-01-01"}, "updated_since must be epoch seconds"),
    ],
)
async def test_bad_options_are_refused_before_any_request(
    server: IntercomServer, options: dict[str, Any], message: str
) -> None:
    async with client_for(server.base_url) as client:
        with pytest.raises(ValueError, match=message):
            client.users(**options)
    assert server.stats.requests == 0


async def test_an_updated_since_listing_is_not_resumed_from_a_page(server: IntercomServer) -> None:
    async with client_for(server.base_url) as client:
        with pytest.raises(ValueError, match="cannot be resumed"):
            client.users(updated_since=0).pages(start=3)
    assert server.stats.requests == 0


@pytest.mark.parametrize(
    "newer",
    [
        0,  # nothing changed: page 1 alone says so
        1,
        49,
        50,  # exactly one page: the next page holds only older records
        121,
        1000,  # the whole list: it ends without meeting an older record
    ],
)
async def test_early_stop_delivers_exactly_the_newer_records(
    server: IntercomServer, newer: int
) -> None:
    ordered = newest_first(server.workspace.users)
    # A bound that holds exactly `newer` records: the next one is a second older.
    since = ordered[newer - 1]["updated_at"] if newer else ordered[0]["updated_at"] + 1
    expected = [str(u["id"]) for u in ordered if u["updated_at"] >= since]
    assert len(expected) == newer
    concurrency = 4
    async with client_for(server.base_url, per_page=50, concurrency=concurrency) as client:
        listing = client.users(updated_since=since)
        got = await fetch_ids(listing)
    assert got == expected
    changes = listing.changes
    assert changes.stopped_early is (newer < 1000)
    if newer == 1000:
        assert changes.count_check == "passed"
    else:  # total_count (1,000) is not what was asked for: no IncompleteListError
        assert changes.count_check.startswith("not made: stopped early on purpose")
    assert changes.pages_rechecked == 0
    # Pages needed: up to the first holding an older record (or the last page).
    needed = min(newer // 50 + 1, 20)
    window = 2 * concurrency
    recheck = 0 if needed == 1 else 1
    assert users_requests(server) <= needed + window + recheck
    assert server.stats.statuses[400] == 0
    await _until(lambda: server.stats.in_flight == 0)


async def test_a_datetime_bound_is_the_same_bound(server: IntercomServer) -> None:
    ordered = newest_first(server.workspace.users)
    since = ordered[75]["updated_at"]
    async with client_for(server.base_url, per_page=30) as client:
        by_seconds = await fetch_ids(client.users(updated_since=since + 0.9))
        by_datetime = await fetch_ids(
            client.users(updated_since=datetime.fromtimestamp(since, tz=UTC))
        )
    # Rounded down: a record stamped at `since` was updated within that second.
    assert by_seconds == by_datetime == ids(ordered[:76])


async def test_stopping_cancels_the_window_and_leaves_nothing_running(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=1000, latency_ms=100)
    ordered = newest_first(server.workspace.users)
    since = ordered[45]["updated_at"]  # pages 1 to 3 of 20
    tasks = TaskWatch()
    async with client_for(server.base_url, per_page=20, concurrency=8) as client:
        listing = client.users(updated_since=since)
        got = await fetch_ids(listing)
        # The window was on the wire when page 3 said stop.
        assert server.stats.max_in_flight > 1
        assert not tasks.started()
        await _until(lambda: server.stats.in_flight == 0, limit=2.0)
        sent = server.stats.requests
        await asyncio.sleep(0.2)
        assert server.stats.requests == sent  # nothing sent after the stop
    assert got == ids(ordered[:46])
    assert users_requests(server) <= 3 + 2 * 8 + 1  # needed, the window, the recheck


async def test_more_than_the_cap_of_newer_records_fails_clearly(make_server: MakeServer) -> None:
    server = await make_server(users=300, page_cap_records=100)
    async with client_for(server.base_url, per_page=20) as client:
        with pytest.raises(PageLimitError):
            await fetch_ids(client.users(updated_since=0))
        # A bound within the cap works on a list longer than the cap.
        ordered = newest_first(server.workspace.users)
        got = await fetch_ids(client.users(updated_since=ordered[30]["updated_at"]))
    assert got == ids(ordered[:31])


async def test_an_unsorted_answer_fails_rather_than_stopping_wrongly(
    raw_server: RawServer,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        users = [{"type": "user", "id": str(i), "updated_at": 100 + i} for i in range(3)]
        pages = {"type": "pages", "page": 1, "per_page": 3, "total_pages": 2, "next": "x"}
        return web.json_response(
            {"type": "user.list", "total_count": 6, "users": users, "pages": pages}
        )

    base_url = await raw_server(handler)
    async with client_for(base_url) as client:
        with pytest.raises(Exception, match="not sorted by updated_at"):
            await fetch_ids(client.users(updated_since=50))


def _proxy(
    server: IntercomServer,
    before: Callable[[int], Any],
    after: Callable[[int], None],
) -> Callable[..., Any]:
    """A handler that forwards to ``server``: ``await before(page)``, then the
    request, then ``after(page)`` once the server has answered."""

    async def handler(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        await before(page)
        headers = {"Authorization": request.headers["Authorization"], "Host": request.host}
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.base_url + request.path_qs, headers=headers) as response,
        ):
            body = await response.read()
        after(page)
        return web.Response(body=body, status=response.status, content_type="application/json")

    return handler


async def test_a_touch_between_pages_served_out_of_order_misses_no_untouched_record(
    server: IntercomServer, raw_server: RawServer
) -> None:
    """Page 3 is served, then a user on page 5 is updated, then page 2 is served:
    page 2 now starts one place earlier, and the user that was last on page 2
    (untouched) is on neither page. The recheck finds that the list moved and
    walks it again one page at a time."""
    n = 20
    listed = newest_first(server.workspace.users)
    since = listed[5 * n - 3]["updated_at"]  # the listing needs pages 1 to 5
    moved, slipped = listed[4 * n + 5], listed[2 * n - 1]
    page3_served = asyncio.Event()
    held = [True]

    async def hold(page: int) -> None:
        if page == 2 and held[0]:
            held[0] = False
            await page3_served.wait()
            server.touch([str(moved["id"])])

    def release(page: int) -> None:
        if page == 3:
            page3_served.set()

    base_url = await raw_server(_proxy(server, hold, release))
    async with client_for(base_url, per_page=n, concurrency=4) as client:
        listing = client.users(updated_since=since)
        got = await fetch_ids(listing)
    assert str(slipped["id"]) in got  # the first pass alone misses it
    assert listing.changes.pages_rechecked > 0
    untouched = {str(u["id"]) for u in listed if u["updated_at"] >= since} - {str(moved["id"])}
    assert untouched <= set(got)
    assert len(got) == len(set(got))  # every record once
    # The touched user is now the newest: the next run catches it.
    assert newest_first(server.workspace.users)[0]["id"] == moved["id"]


async def test_touched_mid_run_then_a_second_run_from_the_first_runs_start_misses_nothing(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=1000, latency_ms=5)
    ordered = newest_first(server.workspace.users)
    bookmark = ordered[199]["updated_at"]  # about 10 pages of 20
    # Users to touch while the first run goes: some it has passed, some ahead
    # of it, some older than the bookmark (newly changed).
    to_touch = [str(ordered[i]["id"]) for i in (3, 45, 120, 150, 190, 199, 250, 600, 999)]
    margin = 300
    started = time.time()  # the run's start, as a sync would record it
    first: list[str] = []
    async with client_for(server.base_url, per_page=20, concurrency=4) as client:
        listing = client.users(updated_since=bookmark)
        async with listing:
            async for user in listing:
                first.append(str(user["id"]))
                if len(first) % 20 == 0 and to_touch:
                    server.touch(
                        [to_touch.pop(), to_touch.pop()] if len(to_touch) > 1 else [to_touch.pop()]
                    )
        assert not to_touch
        untouched_newer = {str(u["id"]) for u in ordered if u["updated_at"] >= bookmark} - set(
            server.touched
        )
        assert untouched_newer <= set(first)  # the first run alone has every untouched one
        second = await fetch_ids(client.users(updated_since=started - margin))
    assert len(first) == len(set(first))
    assert set(server.touched) <= set(second)
    wanted = {str(u["id"]) for u in server.workspace.users if u["updated_at"] >= bookmark}
    assert wanted <= set(first) | set(second)
    assert len(wanted) == 200 + 3  # 200 at or after the bookmark, 3 older ones touched
