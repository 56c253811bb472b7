"""The PostgreSQL backend: asyncpg, on the event loop, one connection per run.

asyncpg is an optional extra (``pip install 'asyncfetch[postgres]'``): without
it ``open_sink`` says so in one line instead of failing at import.

The sink's logic (``_base.py``) hands this backend statements already written
with PostgreSQL's own ``$1..$n`` parameters, so they go to the server as they
are, prepared once per connection (asyncpg's statement cache) and reused for
every page. A page is ONE statement (``_page_steps``): each column of its rows
an array parameter, ``unnest`` on the server, data-modifying CTEs for the
upserts and the staging; one round trip per page, nothing per record. Other
multi-row steps go as one ``executemany`` (every row's Bind/Execute and a
single Sync: one round trip). ``data`` is ``jsonb`` (asyncpg's codec takes the JSON text
orjson already made; no re-parsing on the client); timestamps are
``timestamptz``.

A workspace of the fleet (``SinkURL.schema``) lives in a schema of its own,
created on first use and put first on the connection's ``search_path``; its
writer lock is then one per schema. Otherwise:
one run per database: ``_connect`` takes a session-level advisory lock
(``pg_try_advisory_lock``) and holds it for as long as the sink is open; a
second asyncfetch run writing the same database gets ``SinkLockedError``
instead of interleaving its pages with the first's. The lock belongs to the
connection, so a run killed with ``kill -9`` releases it as the server sees
its connection close; readers are never locked out.

Each page is one transaction, and one statement (``_page_steps``): the
records, the run's staging and its progress commit together or not at all.
Pages waiting together for the writer (``write_batch``) go as their
statements in one transaction: one commit for the batch.
A connection lost mid-page rolls that page back on the server; the rerun
fetches it again.

A page's commit does not wait for its WAL to be flushed to disk
(``synchronous_commit = off`` for the session, a batch of pages alike; the run's start, its end with
the membership swap and the deletions keep PostgreSQL's default and wait).
The same trade as the SQLite backend's ``synchronous=NORMAL``: a client
killed with ``kill -9`` loses nothing committed (the server has it); a crash
of the server's machine may lose the last few pages' commits (at most about
three ``wal_writer_delay``, 0.6 s by default), whole, with the progress that
came with them, so the rerun fetches those pages again and the tables end the
same. Waiting for the flush costs one disk sync per page, a third or more of
a page's write time measured on this project's benchmark machine.

A password in the URL never reaches a message: every error is reworded here
as one line naming the database by its ``***``-masked URL, and any text taken
from the driver or the server is scrubbed of the password too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import asyncpg
from yarl import URL

from .._exceptions import SinkLockedError, SinkOpenError, SinkURLError, SinkWriteError
from ._base import Sink, SinkRun, SinkURL, Step
from ._schema import POSTGRESQL, Row

__all__ = ["LOCK_KEY", "PostgresSink"]

# The advisory lock's key: one per database, the same for every asyncfetch run
# (the bytes of "asyncftc" as a signed 64-bit integer).
LOCK_KEY = int.from_bytes(b"asyncftc", "big", signed=True)
CONNECT_TIMEOUT = 10.0  # seconds to connect and log in
CLOSE_TIMEOUT = 5.0  # seconds a polite close may take before the socket is cut


# write_page's one statement (PostgresSink._page_steps): $1 the run, $2 the page,
# $3 the position of its first record, $4 now; then seven arrays (the columns of
# schema.Row) per record table; then the page's ids, the run's items, pages, requests.
_ARRAY_TYPES = ("text", "jsonb", "text", "text", "text", "timestamptz", "timestamptz")
_UPSERT_CTE = """\
upsert_{n} AS (
    INSERT INTO {table} AS t (id, data, email, user_id, name, created_at, updated_at,
                              first_seen_at, last_seen_at)
    SELECT DISTINCT ON (id) id, data, email, user_id, name, created_at, updated_at, $4, $4
    FROM unnest({params}) WITH ORDINALITY
        AS r(id, data, email, user_id, name, created_at, updated_at, ord)
    ORDER BY id, ord DESC
    ON CONFLICT (id) DO UPDATE SET
        data = CASE WHEN t.updated_at IS NULL OR excluded.updated_at >= t.updated_at
                    THEN excluded.data ELSE t.data END,
        email = CASE WHEN t.updated_at IS NULL OR excluded.updated_at >= t.updated_at
                     THEN excluded.email ELSE t.email END,
        user_id = CASE WHEN t.updated_at IS NULL OR excluded.updated_at >= t.updated_at
                       THEN excluded.user_id ELSE t.user_id END,
        name = CASE WHEN t.updated_at IS NULL OR excluded.updated_at >= t.updated_at
                    THEN excluded.name ELSE t.name END,
        created_at = CASE WHEN t.updated_at IS NULL OR excluded.updated_at >= t.updated_at
                          THEN excluded.created_at ELSE t.created_at END,
        updated_at = CASE WHEN t.updated_at IS NULL OR excluded.updated_at >= t.updated_at
                          THEN excluded.updated_at ELSE t.updated_at END,
        last_seen_at = excluded.last_seen_at,
        deleted_at = NULL
)"""
_STAGE_CTE = """\
staged AS (
    INSERT INTO sync_staging (run, position, page, id)
    SELECT $1::bigint, ($3::integer + ord - 1)::integer, $2::integer, id
    FROM unnest(${ids}::text[]) WITH ORDINALITY AS s(id, ord)
    ON CONFLICT (run, position) DO UPDATE SET page = excluded.page, id = excluded.id
)
"""
_PROGRESS = (
    "UPDATE sync_runs SET next_page = $2::integer + 1, items = ${items}, pages = ${pages}, "
    "requests = ${requests} WHERE id = $1::bigint"
)


class PostgresSink(Sink):
    """A PostgreSQL database (``postgresql://user:password@host:port/database``;
    a Unix socket as ``postgresql://user@/database?host=/run/postgresql``)."""

    dialect = POSTGRESQL

    def __init__(self, url: SinkURL) -> None:
        super().__init__(url)
        self._connection: Any = None  # asyncpg.Connection (asyncpg is untyped)
        self._calls = anyio.Lock()  # one statement at a time on the connection
        try:
            parsed = URL(url.url)
            # In the URL's user part, or libpq's ?password=.
            self._password = parsed.password or parsed.query.get("password") or ""
        except (ValueError, TypeError):
            self._password = ""

    @property
    def _settings(self) -> dict[str, str] | None:
        """A workspace's schema first on the search path: the sink's unqualified
        tables are created and written there."""
        if self.url.schema is None:
            return None
        return {"search_path": _identifier(self.url.schema)}

    def _clean(self, text: object) -> str:
        """``text`` on one line, without the password."""
        line = " ".join(str(text).split())
        if self._password:
            line = line.replace(self._password, "***")
        return line

    async def _connect(self) -> None:
        where = self.display
        try:
            connection = await asyncpg.connect(
                self.url.url, timeout=CONNECT_TIMEOUT, server_settings=self._settings
            )
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            # Wrong password, unknown role, no pg_hba.conf entry for it.
            raise SinkOpenError(f"{where}: login refused: {self._clean(exc)}") from None
        except asyncpg.InvalidCatalogNameError as exc:
            raise SinkOpenError(f"{where}: {self._clean(exc)}") from None
        except asyncpg.PostgresError as exc:
            raise SinkOpenError(f"{where}: the server refused: {self._clean(exc)}") from None
        except TimeoutError:
            raise SinkOpenError(
                f"{where}: cannot connect: no answer within {CONNECT_TIMEOUT:g} s"
            ) from None
        except OSError as exc:
            raise SinkOpenError(f"{where}: cannot connect: {self._clean(_reason(exc))}") from None
        except (asyncpg.InterfaceError, ValueError) as exc:
            # A URL asyncpg cannot use (a bad port, an unknown sslmode...).
            raise SinkURLError(f"{where}: not a usable URL: {self._clean(exc)}") from None
        try:
            if self.url.schema is None:
                locked = await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
            else:
                # A workspace's schema (the fleet): one writer per schema, not per
                # database, so that workspaces sharing a database run side by side.
                locked = await connection.fetchval(
                    "SELECT pg_try_advisory_lock(hashtextextended($2, $1))",
                    LOCK_KEY,
                    self.url.schema,
                )
                # Concurrent first uses race to create it: the loser is told so.
                with contextlib.suppress(
                    asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError
                ):
                    await connection.execute(
                        f"CREATE SCHEMA IF NOT EXISTS {_identifier(self.url.schema)}"
                    )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            await _close(connection)
            raise SinkOpenError(
                f"{where}: cannot take the writer lock: {self._clean(exc)}"
            ) from None
        if not locked:
            await _close(connection)
            raise SinkLockedError(f"{where}: another asyncfetch run is writing this database")
        try:
            # A page's commit does not wait for the WAL to reach the disk (see the module
            # docstring); a run's start and end (multi-statement transactions) do.
            await connection.execute("SET synchronous_commit = off")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            await _close(connection)
            raise SinkOpenError(f"{where}: {self._clean(exc)}") from None
        self._connection = connection

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await _close(connection)  # the session's end releases the advisory lock

    def _open_connection(self) -> Any:
        if self._connection is None or self._connection.is_closed():
            raise SinkWriteError(f"{self.display}: the connection to the database is closed")
        return self._connection

    def _write_error(self, exc: BaseException) -> SinkWriteError:
        if isinstance(exc, asyncpg.PostgresError):
            return SinkWriteError(f"{self.display}: {self._clean(exc)}")
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return SinkWriteError(f"{self.display}: the connection was lost: {self._clean(reason)}")

    def _page_steps(
        self,
        run: SinkRun,
        page: int,
        rows: Sequence[Row],
        tables: Mapping[str, Sequence[tuple[Any, ...]]],
        *,
        now: dt.datetime,
        first: int,
        items: int,
        requests: int,
    ) -> list[Step]:
        """The page in ONE statement, so one round trip: each column of the page's
        rows is an array parameter, ``unnest`` makes them rows again on the server,
        and data-modifying CTEs upsert each table, stage the ids and (the statement
        itself) write the progress. A single statement is its own transaction.

        The same as the generic steps (``Sink._page_steps``), in one: the guarded
        upsert (a stored record is replaced only by one whose ``updated_at`` is not
        older) with the "seen" marks folded in (``last_seen_at`` and ``deleted_at``
        are set whether or not the record's columns were replaced)."""
        # $1..$4; an empty page has no upsert to use $4 (now), and a parameter
        # no statement uses has no type: PostgreSQL refuses the statement.
        args: list[Any] = [run.id, page, first, *([now] if tables else [])]
        ctes = []
        for n, (table, upserts) in enumerate(tables.items()):
            base = len(args)
            columns = list(zip(*upserts, strict=True))[:7] if upserts else [()] * 7
            args += [list(column) for column in columns]
            params = ", ".join(f"${base + i + 1}::{kind}[]" for i, kind in enumerate(_ARRAY_TYPES))
            ctes.append(_UPSERT_CTE.format(n=n, table=table, params=params))
        args.append([row[0] for row in rows])
        ids = len(args)
        args += [items, run.pages + 1, requests]
        sql = (
            "WITH "
            + ", ".join(ctes)
            + (", " if ctes else "")
            + _STAGE_CTE.format(ids=ids)
            + _PROGRESS.format(items=ids + 1, pages=ids + 2, requests=ids + 3)
        )
        return [Step(sql, args)]

    async def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._calls:
            connection = self._open_connection()
            try:
                rows = await connection.fetch(sql, *args)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise self._write_error(exc) from None
        return [tuple(row) for row in rows]

    async def _transaction(
        self, steps: Sequence[Step], *, pages: bool = False
    ) -> list[list[tuple[Any, ...]]]:
        async with self._calls:
            connection = self._open_connection()
            results: list[list[tuple[Any, ...]]] = []
            try:
                if len(steps) == 1 and not steps[0].many:
                    # One statement is its own transaction: no BEGIN and COMMIT round trips.
                    rows = await connection.fetch(steps[0].sql, *steps[0].args)
                    return [[tuple(row) for row in rows]]
                async with connection.transaction():
                    if not pages:  # a batch of pages commits as a single page does
                        await connection.execute("SET LOCAL synchronous_commit = on")
                    for step in steps:
                        if step.many:
                            if step.args:
                                await connection.executemany(step.sql, step.args)
                            results.append([])
                        else:
                            rows = await connection.fetch(step.sql, *step.args)
                            results.append([tuple(row) for row in rows])
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise self._write_error(exc) from None
        return results


def _identifier(name: str) -> str:
    """``name`` as a quoted identifier (its case and any ``-`` kept)."""
    return '"' + name.replace('"', '""') + '"'


def _reason(exc: OSError) -> str:
    """Why a connection could not be made, in words (asyncio's own text for a
    refused connection is "Connect call failed ('127.0.0.1', 5432)")."""
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, on that host and port?)"
    if isinstance(exc, FileNotFoundError):
        return "no server socket there (is the server running, with that socket folder?)"
    return exc.strerror or str(exc) or type(exc).__name__


async def _close(connection: Any) -> None:
    """Close politely (shielded: this runs on cancellation too), or cut the socket."""
    with anyio.CancelScope(shield=True):
        try:
            with anyio.fail_after(CLOSE_TIMEOUT):
                await connection.close()
        except Exception:  # closed already, broken mid-statement, or too slow
            connection.terminate()
