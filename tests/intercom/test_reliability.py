"""Faults, rate limits and lists that move, through the bundled server over loopback.

Every test here asserts what a user would check first: every record, once, in
API order.
"""

from __future__ import annotations

from collections import Counter

import pytest

from asyncfetch import IntercomClient, PageLimitError, Retries
from asyncfetch.testing import FaultConfig, IntercomServer

from ..helpers import MakeServer, ids, scroll_order, users_with_tag

pytestmark = pytest.mark.anyio

TOKEN = "reliability-token"


def client_for(server: IntercomServer, **options: object) -> IntercomClient:
    return IntercomClient(token=TOKEN, base_url=server.base_url, **options)  # type: ignore[arg-type]


async def test_an_enforced_rate_limit_is_never_tripped(make_server: MakeServer) -> None:
    # 10 requests per 1-second window, 40 pages: four windows' worth.
    server = await make_server(users=400, rate_limit=10, rate_window_seconds=1)
    expected = ids(server.workspace.users)
    async with client_for(server, per_page=10, concurrency=8) as client:
        got = [str(u["id"]) async for u in client.users()]
    assert got == expected
    assert server.stats.statuses[429] == 0
    assert server.stats.requests == 40
    assert client.stats.rate_limit_pauses >= 3


async def test_chaos_500_pages_every_record_once_in_order(make_server: MakeServer) -> None:
    faults = FaultConfig(
        seed=7,
        error_rate=0.03,
        html_error_rate=0.02,
        bad_body_rate=0.02,
        throttle_rate=0.003,
        throttle_burst=2,
        reset_rate=0.02,
        hang_rate=0.01,
        jitter_ms=5,
        slow_rate=0.02,
        slow_ms=100,
        max_consecutive_faults=3,
    )
    server = await make_server(
        users=5000,
        faults=faults,
        rate_limit=400,
        rate_window_seconds=1,
        insert_users_every=150,
    )
    expected = ids(server.workspace.users)  # the list as it stood when the fetch began
    client = client_for(
        server, per_page=10, concurrency=16, timeout=0.5, retries=Retries(attempts=5)
    )
    async with client, client.users() as users:
        got = [str(u["id"]) async for u in users]
    assert got == expected
    faults_seen = server.stats.faults
    for kind in ("error", "html_error", "bad_body", "throttle", "reset", "hang", "slow"):
        assert faults_seen[kind] > 0, kind
    assert client.stats.retries > 30
    assert users.changes.changed  # users were added meanwhile
    # 429s come only from the injected bursts, never from the enforced limit.
    assert server.stats.statuses[429] <= faults_seen["throttle"]


async def test_chaos_past_the_cap_with_leads_and_the_server_side_cursor(
    make_server: MakeServer,
) -> None:
    # The chaos above, on a tag's users and leads that reach the cap mid-fetch
    # (a cap of 1,000 records here): the fetch switches to /users/scroll then
    # /contacts/scroll, whose cursor lives on the server, through every fault.
    faults = FaultConfig(
        seed=5,
        error_rate=0.03,
        html_error_rate=0.02,
        bad_body_rate=0.03,
        throttle_rate=0.003,
        throttle_burst=2,
        reset_rate=0.02,
        hang_rate=0.01,
        jitter_ms=5,
        max_consecutive_faults=3,
    )
    server = await make_server(
        users=5000,
        faults=faults,
        rate_limit=400,
        rate_window_seconds=1,
        insert_users_every=150,
        page_cap_records=1000,
        scroll_page_size=500,
        scroll_expiry_seconds=0.5,
    )
    ws = server.workspace
    assert server.config.scroll_cursor == "server"
    listed = users_with_tag(ws, ws.largest_tag_id)  # as it stood when the fetch began
    assert {p["type"] for p in listed} == {"user", "contact"}
    client = client_for(
        server, per_page=10, concurrency=16, timeout=0.5, retries=Retries(attempts=5)
    )
    async with client, client.users(tag_id=ws.largest_tag_id) as people:
        got = [str(p["id"]) async for p in people]
    assert len(got) == len(set(got))
    # The first 1,000 by page, in list order; the rest by the scrolls: the users,
    # then the leads. Users signed up meanwhile carry the tag and may be among them.
    expected = ids(listed[:1000]) + ids(scroll_order(listed[1000:]))
    assert [i for i in got if i in set(expected)] == expected
    newcomers = set(got) - set(expected)
    assert newcomers <= set(ids(ws.users[5000:]))
    faults_seen = server.stats.faults
    for kind in ("error", "html_error", "bad_body", "reset", "hang"):
        assert faults_seen[kind] > 0, kind
    assert people.changes.method == "pages, then scroll"
    starts = [n for path, n in server.stats.pages if path.endswith("/scroll") and n == 1]
    assert len(starts) > 2  # both scrolls, and restarts after faults


async def test_a_list_growing_during_the_fetch_loses_and_repeats_nothing(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=300, insert_users_every=3, latency_ms=5)
    expected = ids(server.workspace.users)
    async with client_for(server, per_page=10, concurrency=8) as client:
        listing = client.users()
        got = [str(u["id"]) async for u in listing]
    assert got == expected
    changes = listing.changes
    assert changes.changed
    assert changes.first_total_count == 300
    assert changes.last_total_count is not None
    assert changes.last_total_count > 300
    assert changes.duplicates_dropped > 0
    assert changes.pages_added > 0
    assert "the list changed during the fetch (total_count 300 -> " in changes.describe()


async def test_keep_duplicates_keeps_the_repeats(make_server: MakeServer) -> None:
    server = await make_server(users=300, insert_users_every=3, latency_ms=5)
    expected = ids(server.workspace.users)
    async with client_for(server, per_page=10, concurrency=8, keep_duplicates=True) as client:
        got = [str(u["id"]) async for u in client.users()]
    assert len(got) > len(set(got))
    assert list(dict.fromkeys(got)) == expected


async def test_past_the_record_cap_without_scroll_says_so_after_page_one(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=10_050)
    async with client_for(server) as client:
        with pytest.raises(PageLimitError) as info:
            async for _ in client.users(scroll=False):
                pass
    assert server.stats.requests == 1
    assert info.value.total_count == 10_050
    assert "holds 10,050 records; Intercom's page-numbered listing stops at 10,000" in str(
        info.value
    )
    assert "Scroll API" in str(info.value)


async def test_the_servers_page_limit_answer_is_a_page_limit_error(
    make_server: MakeServer,
) -> None:
    # A server whose cap is lower than the client's: the 400 itself is recognised.
    server = await make_server(users=200, page_cap_records=50)
    async with client_for(server, per_page=10, concurrency=2) as client:
        got: list[str] = []
        with pytest.raises(PageLimitError, match="page limit reached"):
            async for user in client.users(scroll=False):
                got.append(str(user["id"]))
    assert got == ids(server.workspace.users)[:50]


async def test_a_tag_past_the_cap_is_scrolled_and_filtered_locally(
    make_server: MakeServer,
) -> None:
    server = await make_server(users=24_000)
    ws = server.workspace
    # Its users, then its leads: /users/scroll, then /contacts/scroll.
    expected = ids(scroll_order(users_with_tag(ws, ws.largest_tag_id)))
    assert len(expected) == 12_000 + 3_000
    async with client_for(server) as client:
        got = [str(u["id"]) async for u in client.users(tag_id=ws.largest_tag_id)]
    assert got == expected
    paths = Counter(path for path, _ in server.stats.pages)
    assert paths == {"/users": 1, "/users/scroll": 24_000 // 100 + 1, "/contacts/scroll": 61}


async def test_scroll_on_request_and_for_company_users(make_server: MakeServer) -> None:
    server = await make_server(users=450)
    ws = server.workspace
    company = ws.companies[0]
    async with client_for(server) as client:
        everyone = [str(u["id"]) async for u in client.users(scroll=True)]
        of_company = [str(u["id"]) async for u in client.company_users(id=company["id"])]
    assert everyone == ids(ws.users)
    members = [
        u for u in ws.users if any(c["id"] == company["id"] for c in u["companies"]["companies"])
    ]
    assert of_company == ids(members)
    assert ("/users/scroll", 1) in server.stats.pages


async def test_a_scroll_broken_by_faults_starts_again_and_loses_nothing(
    make_server: MakeServer,
) -> None:
    faults = FaultConfig(seed=3, error_rate=0.04, reset_rate=0.02, max_consecutive_faults=2)
    # A reset leaves the scroll open on the server: a fresh start waits for it to
    # expire (a minute at Intercom; half a second here).
    server = await make_server(users=2000, faults=faults, scroll_expiry_seconds=0.5)
    async with client_for(server, retries=Retries(attempts=4)) as client:
        got = [str(u["id"]) async for u in client.users(scroll=True)]
    assert got == ids(server.workspace.users)
    starts = [n for path, n in server.stats.pages if path == "/users/scroll" and n == 1]
    assert len(starts) > 1  # the scroll broke off and started again
