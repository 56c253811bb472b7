"""``GET /users?sort=&order=`` on the bundled server, as Intercom's 1.x List Users
documents them, and users touched (updated) during a fetch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from asyncfetch.testing import IntercomServer, ServerConfig, ServerThread

from ..helpers import MakeServer, ids

pytestmark = pytest.mark.anyio

FIELDS = ("created_at", "last_request_at", "signed_up_at", "updated_at")


async def listed(server: IntercomServer, query: str, *, per_page: int = 60) -> list[dict[str, Any]]:
    """Every page of ``/users?{query}``, followed by ``pages.next``."""
    found: list[dict[str, Any]] = []
    url: str | None = f"{server.base_url}/users?{query}&per_page={per_page}"
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session:
        while url is not None:
            async with session.get(url) as response:
                assert response.status == 200
                body = await response.json()
            found += body["users"]
            url = body["pages"]["next"]
    return found


def by(users: Any, field: str, *, desc: bool) -> list[Mapping[str, Any]]:
    """The workspace's users in the order the docs describe; equal values by creation."""
    indexed = sorted(enumerate(users), key=lambda p: (p[1][field], p[0]), reverse=desc)
    return [user for _, user in indexed]


async def test_users_updated_at_all_differ(server: IntercomServer) -> None:
    stamps = [u["updated_at"] for u in server.workspace.users]
    assert len(set(stamps)) == len(stamps) == 1000
    assert all(isinstance(s, int) for s in stamps)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_each_documented_field_sorts_both_ways(
    server: IntercomServer, field: str, order: str
) -> None:
    got = await listed(server, f"sort={field}&order={order}")
    assert ids(got) == ids(by(server.workspace.users, field, desc=order == "desc"))


async def test_order_defaults_to_desc_and_sort_to_created_at(server: IntercomServer) -> None:
    users = server.workspace.users
    assert ids(await listed(server, "sort=updated_at")) == ids(by(users, "updated_at", desc=True))
    assert ids(await listed(server, "order=asc")) == ids(by(users, "created_at", desc=False))
    assert ids(await listed(server, "order=desc")) == ids(by(users, "created_at", desc=True))


async def test_unknown_values_read_as_the_defaults(server: IntercomServer) -> None:
    users = server.workspace.users
    newest_created = ids(by(users, "created_at", desc=True))
    assert ids(await listed(server, "sort=name")) == newest_created
    assert ids(await listed(server, "sort=updated_at&order=up")) == ids(
        by(users, "updated_at", desc=True)
    )


async def test_lists_by_tag_ignore_sort(server: IntercomServer) -> None:
    tag = server.workspace.largest_tag_id
    plain = await listed(server, f"tag_id={tag}")
    assert ids(await listed(server, f"tag_id={tag}&sort=updated_at&order=desc")) == ids(plain)


async def test_next_links_keep_sort_and_order(server: IntercomServer) -> None:
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session,
        session.get(f"{server.base_url}/users?sort=updated_at&order=asc&per_page=10") as response,
    ):
        body = await response.json()
    assert "sort=updated_at" in body["pages"]["next"]
    assert "order=asc" in body["pages"]["next"]


async def test_a_touched_user_moves_to_the_front_and_later_pages_shift(
    make_server: MakeServer,
) -> None:
    clock = [1_800_000_000.5]
    server = await make_server(users=200, clock=lambda: clock[0])
    before = ids(await listed(server, "sort=updated_at&order=desc", per_page=10))
    moved = before[57]  # on page 6
    touched = server.touch([moved])
    assert touched[0]["updated_at"] == 1_800_000_000  # the server's now, whole seconds
    after = ids(await listed(server, "sort=updated_at&order=desc", per_page=10))
    assert after == [moved, *before[:57], *before[58:]]
    # Page 2 now starts with what was page 1's last user: the list moved on.
    assert after[10:20] == before[9:19]
    assert server.touched == [moved]
    # The record itself changed everywhere it is listed, not only in the sorted list.
    plain = await listed(server, "")
    assert next(u for u in plain if u["id"] == moved)["updated_at"] == 1_800_000_000


async def test_touch_users_every_touches_as_pages_are_served(make_server: MakeServer) -> None:
    server = await make_server(users=300, touch_users_every=2, touch_users_count=3)
    await listed(server, "sort=updated_at&order=desc", per_page=30)  # 10 pages
    assert len(server.touched) == 3 * 5
    newest = max(u["updated_at"] for u in server.workspace.users)
    assert newest > 1_704_067_200 + 86_400  # now, not the workspace's history
    touched_now = {str(u["id"]) for u in server.workspace.users if u["updated_at"] > 1_710_000_000}
    assert touched_now == set(server.touched)


@pytest.mark.parametrize(
    ("field", "value"),
    [("touch_users_every", 0), ("touch_users_every", True), ("touch_users_count", 0)],
)
def test_touch_options_are_checked(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(**{field: value})  # type: ignore[arg-type]


def test_a_server_thread_touches_on_its_own_loop() -> None:
    with ServerThread(ServerConfig(users=50)) as thread:
        user = thread.workspace.users[7]
        touched = thread.touch([str(user["id"])])
        assert touched[0]["id"] == user["id"]
        assert touched[0]["updated_at"] > user["updated_at"]
        assert thread.server.touched == [str(user["id"])]
    with pytest.raises(RuntimeError, match="not started"):
        thread.touch([str(user["id"])])
