"""IntercomClient against the bundled server over loopback: what a library user sees."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import pytest

from asyncfetch import IntercomClient, Listing
from asyncfetch.testing import IntercomServer

from ..helpers import MakeServer, TaskWatch, ids, users_with_tag

pytestmark = pytest.mark.anyio

TOKEN = "test-token"


def client_for(server: IntercomServer, **options: object) -> IntercomClient:
    return IntercomClient(token=TOKEN, base_url=server.base_url, **options)  # type: ignore[arg-type]


async def fetch_ids(listing: Listing[dict[str, object]]) -> list[str]:
    return [str(item["id"]) async for item in listing]


@pytest.mark.parametrize(
    ("users", "per_page", "pages"),
    [
        (10, 50, 1),  # one page, partly filled
        (50, 50, 1),  # exactly per_page items: one full page, no empty second page
        (1000, 7, 143),  # many pages, a short last one
    ],
)
async def test_all_users_every_item_once_in_order(
    make_server: MakeServer, users: int, per_page: int, pages: int
) -> None:
    server = await make_server(users=users)
    async with client_for(server, per_page=per_page, concurrency=8) as client:
        got = await fetch_ids(client.users())
    assert got == ids(server.workspace.users)
    assert server.stats.requests == pages


async def test_users_of_a_tag_and_of_a_segment(server: IntercomServer) -> None:
    ws = server.workspace
    tag_id = ws.largest_tag_id
    segment_id = str(ws.segments[0]["id"])
    async with client_for(server, per_page=20) as client:
        by_tag = await fetch_ids(client.users(tag_id=tag_id))
        by_segment = await fetch_ids(client.users(segment_id=segment_id))
    assert by_tag == ids(users_with_tag(ws, tag_id))
    assert len(by_tag) > 200  # spans many pages
    # Users and leads, in the list's (creation) order.
    expected_segment = sorted(
        (
            p
            for p in (*ws.users, *ws.contacts)
            if any(s["id"] == segment_id for s in p["segments"]["segments"])
        ),
        key=lambda p: int(p["created_at"]),
    )
    assert by_segment == ids(expected_segment)
    assert {p["type"] for p in expected_segment} == {"user", "contact"}


async def test_company_users_by_id_and_by_company_id(server: IntercomServer) -> None:
    ws = server.workspace
    company = ws.companies[0]
    expected = [
        u for u in ws.users if any(c["id"] == company["id"] for c in u["companies"]["companies"])
    ]
    assert expected
    async with client_for(server, per_page=5) as client:
        by_id = await fetch_ids(client.company_users(id=company["id"]))
        by_own_id = await fetch_ids(client.company_users(company_id=company["company_id"]))
    assert by_id == ids(expected)
    assert by_own_id == ids(expected)


async def test_companies_contacts_and_small_lists(server: IntercomServer) -> None:
    ws = server.workspace
    async with client_for(server, per_page=13) as client:
        assert await fetch_ids(client.companies()) == ids(ws.companies)
        assert await fetch_ids(client.contacts()) == ids(ws.contacts)
        assert await fetch_ids(client.tags()) == ids(ws.tags)
        assert await fetch_ids(client.segments()) == ids(ws.segments)
        assert await fetch_ids(client.admins()) == ids(ws.admins)


async def test_pages_iterator_gives_whole_pages_with_totals(server: IntercomServer) -> None:
    async with client_for(server, per_page=60) as client:
        pages = [page async for page in client.users().pages()]
    assert [p.number for p in pages] == list(range(1, 18))
    assert all(p.total_pages == 17 and p.total_count == 1000 for p in pages)
    assert [len(p.items) for p in pages] == [60] * 16 + [40]


@pytest.mark.parametrize("concurrency", [1, 4, 10])
async def test_in_flight_reaches_concurrency_and_never_exceeds_it(
    make_server: MakeServer, concurrency: int
) -> None:
    server = await make_server(users=1000, latency_ms=20)
    async with client_for(server, per_page=10, concurrency=concurrency) as client:
        got = await fetch_ids(client.users())
    assert len(got) == 1000
    assert server.stats.max_in_flight == concurrency


async def test_lists_of_one_client_share_its_concurrency(make_server: MakeServer) -> None:
    server = await make_server(users=600, latency_ms=20)
    ws = server.workspace
    async with (
        client_for(server, per_page=10, concurrency=6) as client,
        anyio.create_task_group() as tg,
    ):
        for listing in (client.users(), client.users(tag_id=ws.largest_tag_id), client.contacts()):
            tg.start_soon(fetch_ids, listing)
    assert server.stats.max_in_flight == 6


async def test_slow_consumer_bounds_requests_ahead_of_it(make_server: MakeServer) -> None:
    server = await make_server(users=1000)
    window = 4
    async with client_for(server, per_page=10, concurrency=2, window=window) as client:
        consumed = 0
        async for _page in client.users().pages():
            consumed += 1
            await asyncio.sleep(0.005)
            # Requests sent never run more than the window ahead of the consumer.
            assert server.stats.requests <= consumed + window
    assert consumed == 100


# The stop tests: the server takes LATENCY per page, so when the consumer stops in
# the middle of page 1 a full window of requests is on the wire. Cleanup must
# cancel them (the server sees them go in far less than LATENCY) and start none.
LATENCY_MS = 600
QUICKLY = 0.3  # seconds: well under LATENCY, so nothing was waited out


async def stopped_mid_list(server: IntercomServer, tasks: TaskWatch) -> None:
    """Check what a stop left behind, right after it."""
    sent = server.stats.requests
    assert not tasks.started()
    await _until(lambda: server.stats.in_flight == 0, limit=QUICKLY)
    await asyncio.sleep(0.05)
    assert server.stats.requests == sent  # nothing new started


async def test_break_inside_async_with_cancels_the_window(make_server: MakeServer) -> None:
    server = await make_server(users=1000, latency_ms=LATENCY_MS)
    tasks = TaskWatch()
    async with client_for(server, per_page=10, concurrency=8) as client:
        async with client.users() as users:
            async for user in users:
                if user["id"] == server.workspace.users[4]["id"]:
                    await _until(lambda: server.stats.in_flight == 8)
                    break
        await stopped_mid_list(server, tasks)


async def test_plain_break_cleans_up_when_the_listing_is_dropped(make_server: MakeServer) -> None:
    server = await make_server(users=1000, latency_ms=LATENCY_MS)
    tasks = TaskWatch()
    async with client_for(server, per_page=10, concurrency=8) as client:
        async for _ in client.users():
            await _until(lambda: server.stats.in_flight == 8)
            break
        # Dropped listings are closed on the event loop's next turns.
        await _until(lambda: not tasks.started(), limit=QUICKLY)
        await stopped_mid_list(server, tasks)


async def test_exception_in_the_consumer_cancels_the_window(make_server: MakeServer) -> None:
    server = await make_server(users=1000, latency_ms=LATENCY_MS)
    tasks = TaskWatch()
    async with client_for(server, per_page=10, concurrency=8) as client:
        with pytest.raises(KeyError):
            async with client.users() as users:
                async for user in users:
                    await _until(lambda: server.stats.in_flight == 8)
                    _ = user["no such key"]
        await stopped_mid_list(server, tasks)


async def test_cancelling_the_consumer_cancels_the_window(make_server: MakeServer) -> None:
    server = await make_server(users=1000, latency_ms=LATENCY_MS)
    tasks = TaskWatch()
    seen = 0
    async with client_for(server, per_page=10, concurrency=8) as client:
        with anyio.CancelScope() as scope:
            async with client.users() as users:
                async for _ in users:
                    seen += 1
                    if seen == 5:
                        await _until(lambda: server.stats.in_flight == 8)
                        scope.cancel()
                        await anyio.sleep_forever()
        assert seen == 5
        await stopped_mid_list(server, tasks)


async def test_closing_the_client_cancels_open_listings_and_they_say_so(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=1000, latency_ms=LATENCY_MS)
    tasks = TaskWatch()
    async with client_for(server, per_page=10, concurrency=8) as client:
        users = client.users()
        pages = client.contacts().pages()
        await anext(aiter(users))
        await anext(pages)
        # The two lists share the client's concurrency.
        await _until(lambda: server.stats.in_flight == 8)
    await stopped_mid_list(server, tasks)
    # Coming back to a listing of a closed client is an error, not a silent end
    # (after the rest of the page already received).
    rest = 0
    with pytest.raises(RuntimeError, match="the client was closed while this listing"):
        async for _ in users:
            rest += 1
    assert rest == 9
    with pytest.raises(RuntimeError, match="the client was closed while this listing"):
        await anext(pages)


async def test_closing_the_client_while_another_task_iterates(make_server: MakeServer) -> None:
    server = await make_server(users=1000, latency_ms=100)
    tasks = TaskWatch()
    got: list[str] = []
    errors: list[BaseException] = []

    async def consume(client: IntercomClient) -> None:
        try:
            async for user in client.users():
                got.append(str(user["id"]))
        except RuntimeError as exc:
            errors.append(exc)

    async with (
        anyio.create_task_group() as tg,
        client_for(server, per_page=10, concurrency=4) as client,
    ):
        tg.start_soon(consume, client)
        await _until(lambda: len(got) >= 15)
    assert 15 <= len(got) < 1000
    assert len(errors) == 1
    assert not tasks.started()


async def test_a_client_can_be_used_again_in_another_event_loop_run(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=30)
    client = client_for(server, per_page=10, rate=1000)
    for _ in range(2):
        async with client:
            assert len(await fetch_ids(client.users())) == 30
    with pytest.raises(RuntimeError, match="already open"):
        async with client, client:
            pass


async def _until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait for something the server observes asynchronously (a disconnect cancelling a handler)."""
    with anyio.fail_after(limit):
        # Polling: the server's counters have no event to wait on.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
