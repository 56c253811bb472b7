"""The sink through the library: a list's pages from the bundled server into a
real database (every backend of ``sink_url``), and the sink's rules on pages
built by hand where a server cannot show them (a record moving backwards,
records disappearing)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
import pytest

import asyncfetch
from asyncfetch import (
    IntercomClient,
    Page,
    SchemaVersionError,
    Sink,
    SinkLockedError,
    SinkRun,
    SinkURLError,
    SinkWriteError,
    open_sink,
    write_pages,
)
from asyncfetch._sink import Step, parse_sink_url
from asyncfetch.testing import FaultConfig, IntercomServer

from ..helpers import ids, users_with_tag
from .db import dump, query

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., Awaitable[IntercomServer]]


async def sync(
    url: str,
    server: IntercomServer,
    *,
    tag_id: str | None = None,
    per_page: int = 20,
    retries: int = 3,
) -> SinkRun:
    """One list from ``server`` into ``url`` as the CLI does it; the run as it ended."""
    name = f"users?tag_id={tag_id}" if tag_id else "users"
    async with (
        open_sink(url) as sink,
        IntercomClient(
            token="t",
            base_url=server.base_url,
            per_page=per_page,
            retries=asyncfetch.Retries(attempts=retries),
        ) as client,
    ):
        run = await sink.begin_run(
            list_name=name,
            kind="users",
            per_page=per_page,
            base_url=server.base_url,
            whole=tag_id is None,
        )
        try:
            async with client.users(tag_id=tag_id) as listing:
                await write_pages(
                    sink,
                    run,
                    listing.pages(start=run.next_page),
                    requests=lambda: client.stats.requests,
                )
        except asyncfetch.AsyncFetchError:
            await sink.finish_run(run, complete=False, requests=client.stats.requests)
            raise
        await sink.finish_run(run, complete=True, requests=client.stats.requests)
    return run


def members(url: str, name: str) -> list[str]:
    rows = query(
        url, "SELECT position, id FROM list_members WHERE list = ? ORDER BY position", name
    )
    assert [position for position, _ in rows] == list(range(1, len(rows) + 1))
    return [key for _, key in rows]


async def test_a_full_sync_lands_every_record_once_and_the_list_in_order(
    sink_url: str, make_server: MakeServer
) -> None:
    server = await make_server(users=230)
    tag = server.workspace.largest_tag_id
    run = await sync(sink_url, server)
    assert server.stats.requests == 12  # 230 users at 20 a page, each page once
    await sync(sink_url, server, tag_id=tag)

    expected = server.workspace.users
    rows = query(sink_url, "SELECT id, data, email, user_id, name, deleted_at FROM users")
    assert sorted(row[0] for row in rows) == sorted(ids(expected))  # every record once
    stored = {row[0]: row for row in rows}
    for user in expected:
        _, data, email, user_id, name, deleted_at = stored[user["id"]]
        assert orjson.loads(data) == user
        assert (email, user_id, name, deleted_at) == (
            user["email"], user["user_id"], user["name"], None,
        )  # fmt: skip
    assert members(sink_url, "users") == ids(expected)
    assert members(sink_url, f"users?tag_id={tag}") == ids(users_with_tag(server.workspace, tag))
    # Leads carrying the tag are in the tag's list and in the contacts table.
    leads = [p for p in users_with_tag(server.workspace, tag) if p["type"] == "contact"]
    assert leads
    contacts = query(sink_url, "SELECT id, data FROM contacts ORDER BY id")
    # Parsed: PostgreSQL's jsonb keeps the values, not the keys' order or spacing.
    assert [(key, orjson.loads(data)) for key, data in contacts] == sorted(
        ((lead["id"], lead) for lead in leads), key=lambda pair: pair[0]
    )
    runs = query(sink_url, "SELECT list, status, items, pages, requests, started, bookmark "
                 "FROM sync_runs ORDER BY id")  # fmt: skip
    assert runs[0][:5] == ("users", "complete", 230, 12, 12)
    assert runs[0][5] == runs[0][6]  # the bookmark is the run's start
    assert (run.items, run.pages, run.next_page) == (230, 12, 13)


async def test_a_rerun_changes_nothing(sink_url: str, make_server: MakeServer) -> None:
    server = await make_server(users=120)
    await sync(sink_url, server)
    first = dump(sink_url)
    await sync(sink_url, server)
    second = dump(sink_url)
    assert second == first
    assert [row[0] for row in query(sink_url, "SELECT status FROM sync_runs")] == [
        "complete",
        "complete",
    ]


async def test_a_failed_run_keeps_the_previous_membership_and_its_progress(
    sink_url: str, make_server: MakeServer
) -> None:
    good = await make_server(users=230)
    tag = good.workspace.largest_tag_id
    await sync(sink_url, good, tag_id=tag)
    before = dump(sink_url)
    # The same workspace, a third of the list requests failing (no retries).
    faults = FaultConfig(error_rate=0.3, seed=4, max_consecutive_faults=1000)
    faulty = await make_server(users=230, faults=faults)
    with pytest.raises(asyncfetch.ServerError):
        await sync(sink_url, faulty, tag_id=tag, retries=1, per_page=5)
    after = dump(sink_url)
    assert after["list_members"] == before["list_members"]
    assert after["users"] == before["users"]
    assert query(sink_url, "SELECT status FROM sync_runs ORDER BY id") == [
        ("complete",),
        ("failed",),
    ]
    # What the failed run wrote is kept, for the rerun to continue from.
    [(pages, next_page, staged)] = query(
        sink_url,
        "SELECT pages, next_page, (SELECT count(*) FROM sync_staging WHERE run = r.id) "
        "FROM sync_runs AS r WHERE status = 'failed'",
    )
    assert next_page == pages + 1
    assert staged == min(pages * 5, len(users_with_tag(good.workspace, tag)))


def record(key: str, updated_at: int, **fields: Any) -> dict[str, Any]:
    return {"type": "user", "id": key, "updated_at": updated_at, **fields}


async def write(
    sink: Sink, name: str, pages: Sequence[Sequence[Mapping[str, Any]]], *, whole: bool
) -> SinkRun:
    """A complete run of hand-made ``pages`` (from its next page on)."""
    run = await sink.begin_run(list_name=name, kind="users", per_page=2, base_url="b", whole=whole)
    for number, items in enumerate(pages, start=run.next_page):
        await sink.write_page(run, number, items, requests=number)
    await sink.finish_run(run, complete=True, requests=len(pages))
    return run


async def test_a_guarded_upsert_never_moves_a_record_backwards(sink_url: str) -> None:
    async with open_sink(sink_url) as sink:
        await write(sink, "users", [[record("a", 200, name="new")]], whole=False)
        await write(sink, "users", [[record("a", 100, name="old")]], whole=False)
        assert query(sink_url, "SELECT name FROM users") == [("new",)]  # older: not applied
        await write(sink, "users", [[record("a", 200, name="same time")]], whole=False)
        assert query(sink_url, "SELECT name FROM users") == [("same time",)]  # not older
        await write(sink, "users", [[record("a", 300, name="newer")]], whole=False)
    [(name, data)] = query(sink_url, "SELECT name, data FROM users")
    assert name == "newer"
    assert orjson.loads(data) == record("a", 300, name="newer")


async def test_deletions_only_after_a_complete_pass_of_a_whole_collection(sink_url: str) -> None:
    def deleted() -> list[str]:
        rows = query(sink_url, "SELECT id FROM users WHERE deleted_at IS NOT NULL ORDER BY id")
        return [key for (key,) in rows]

    async with open_sink(sink_url) as sink:
        await write(sink, "users", [[record("a", 1), record("b", 1)], [record("c", 1)]], whole=True)
        # A pass of a tag's list (not the whole collection) deletes nothing.
        await write(sink, "users?tag_id=7", [[record("a", 1)]], whole=False)
        assert deleted() == []
        # A full pass that fails after its first page deletes nothing either.
        run = await sink.begin_run(
            list_name="users", kind="users", per_page=2, base_url="b", whole=True
        )
        await sink.write_page(run, 1, [record("a", 1)], requests=1)
        await sink.finish_run(run, complete=False, requests=2)
        assert deleted() == []
        # Its rerun continues at page 2 and completes: c was not seen.
        rerun = await write(sink, "users", [[record("b", 1)]], whole=True)
        assert (rerun.id, rerun.resumed, rerun.items) == (run.id, True, 2)
        assert deleted() == ["c"]
        assert members(sink_url, "users") == ["a", "b"]
        # Seen again, in any list: no longer deleted.
        await write(sink, "users?tag_id=7", [[record("c", 1)]], whole=False)
        assert deleted() == []


async def test_a_page_that_cannot_be_written_leaves_the_database_as_it_was(
    sink_url: str,
) -> None:
    async with open_sink(sink_url) as sink:
        run = await sink.begin_run(
            list_name="users", kind="users", per_page=2, base_url="b", whole=True
        )
        await sink.write_page(run, 1, [record("a", 1), record("b", 1)], requests=1)
        before = dump(sink_url)
        progress = query(sink_url, "SELECT next_page, items, pages FROM sync_runs")
        with pytest.raises(SinkWriteError, match="page 2 of users holds a record without an id"):
            await sink.write_page(run, 2, [record("c", 1), {"name": "no id"}], requests=2)

        async def pages() -> Any:
            yield Page(2, [record("c", 1)])
            yield Page(3, [record("d", "not a time"), {"id": None}])  # type: ignore[arg-type]

        with pytest.raises(SinkWriteError):
            await write_pages(sink, run, pages(), requests=lambda: 3)
        # Page 2 was written by write_pages; page 3 is not there at all.
        assert query(sink_url, "SELECT id FROM users ORDER BY id") == [("a",), ("b",), ("c",)]
        assert query(sink_url, "SELECT next_page, items, pages FROM sync_runs") == [(3, 3, 2)]
    assert before["users"] == dump(sink_url)["users"][:2]
    assert progress == [(2, 2, 1)]


async def refuse_id(sink: Sink, key: str) -> None:
    """Make the database itself refuse to insert the user ``key`` (a trigger):
    a failure inside the transaction, after the pages before it were sent."""
    if sink.url.scheme == "sqlite":
        steps = [
            Step(
                f"CREATE TRIGGER refuse BEFORE INSERT ON users WHEN NEW.id = '{key}' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        ]
    else:
        steps = [
            Step(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN "
                f"IF NEW.id = '{key}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; "
                "END $f$"
            ),
            Step(
                "CREATE TRIGGER refuse BEFORE INSERT ON users "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            ),
        ]
    await sink._transaction(steps)


async def test_a_batch_of_pages_commits_together_with_its_progress(sink_url: str) -> None:
    async with open_sink(sink_url) as sink:
        run = await sink.begin_run(
            list_name="users", kind="users", per_page=2, base_url="b", whole=True
        )
        await sink.write_batch(run, [(1, [record("a", 1), record("b", 1)])], requests=1)
        await refuse_id(sink, "d")
        # The database refuses the batch's second page: its first is not committed either.
        with pytest.raises(SinkWriteError, match="refused"):
            await sink.write_batch(run, [(2, [record("c", 1)]), (3, [record("d", 1)])], requests=3)
        assert query(sink_url, "SELECT id FROM users ORDER BY id") == [("a",), ("b",)]
        assert query(sink_url, "SELECT next_page, items, pages FROM sync_runs") == [(2, 2, 1)]
        assert (run.next_page, run.items, run.pages) == (2, 2, 1)
        # A batch the database takes: every page, staged in order, the progress at its last.
        await sink.write_batch(
            run,
            [(2, [record("c", 1)]), (3, [record("e", 1), record("a", 2)]), (4, [record("f", 1)])],
            requests=4,
        )
        assert query(sink_url, "SELECT next_page, items, pages, requests FROM sync_runs") == [
            (5, 6, 4, 4)
        ]

        # The writer: a refused batch is written again page by page, so the pages
        # before the refused one land and its error is raised.
        async def pages() -> Any:
            yield Page(5, [record("g", 1)])
            yield Page(6, [record("d", 1)])

        with pytest.raises(SinkWriteError, match="refused"):
            await write_pages(sink, run, pages(), requests=lambda: 6)
        assert query(sink_url, "SELECT next_page, items, pages FROM sync_runs") == [(6, 7, 5)]
        await sink.finish_run(run, complete=True, requests=6)
    assert members(sink_url, "users") == ["a", "b", "c", "e", "a", "f", "g"]
    [(data,)] = query(sink_url, "SELECT data FROM users WHERE id = 'a'")
    assert orjson.loads(data) == record("a", 2)  # page 3's, written after page 1's


async def test_a_second_writer_is_refused(sink_url: str) -> None:
    async with open_sink(sink_url):
        with pytest.raises(SinkLockedError, match="another asyncfetch run is writing"):
            await open_sink(sink_url).open()
    async with open_sink(sink_url):  # released at the end of the first
        pass


async def test_a_newer_schema_is_refused_and_left_alone(sink_url: str) -> None:
    async with open_sink(sink_url) as sink:
        await write(sink, "users", [[record("a", 1)]], whole=True)
        await sink._transaction([Step("UPDATE schema_version SET version = 99")])
    before = dump(sink_url)
    with pytest.raises(SchemaVersionError, match="schema is version 99, newer than"):
        await open_sink(sink_url).open()
    assert dump(sink_url) == before
    with pytest.raises(SchemaVersionError):  # refused again, not locked: the lock was released
        await open_sink(sink_url).open()


@pytest.mark.parametrize(
    ("url", "scheme", "path"),
    [
        ("sqlite:///abs/x.db", "sqlite", "/abs/x.db"),
        ("sqlite:rel/x.db", "sqlite", "rel/x.db"),
        ("x.db", "sqlite", "x.db"),
        ("./data/x.sqlite", "sqlite", "data/x.sqlite"),
        ("/abs/x.sqlite3", "sqlite", "/abs/x.sqlite3"),
        ("postgresql://u:pw@host/db", "postgresql", None),
        ("postgres://host/db", "postgresql", None),
        ("postgresql://u@host/db?password=pw&sslmode=require", "postgresql", None),
    ],
)
async def test_the_url_picks_the_backend(url: str, scheme: str, path: str | None) -> None:
    parsed = parse_sink_url(url)
    assert parsed.scheme == scheme
    assert (str(parsed.path) if parsed.path else None) == path
    assert "pw" not in repr(parsed)
    assert "pw" not in parsed.display


@pytest.mark.parametrize(
    "url",
    [
        "x.json",
        "mysql://u:pw@h/db",
        "sqlite://host/x.db",
        "sqlite:",
        "http://h/x.db",
        # No file named: these made a lock file at /.lock or beside the folder.
        "sqlite:///",
        "sqlite:///abs/folder/",
        # A query would have become part of the file's name (x.db?mode=ro).
        "sqlite:///abs/x.db?mode=ro",
    ],
)
async def test_a_url_no_backend_takes_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(SinkURLError) as caught:
        open_sink(url)
    assert "pw" not in str(caught.value)
