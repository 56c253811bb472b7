"""The PostgreSQL backend: asyncpg, on the event loop, one connection per run.

asyncpg is an optional extra (``pip install 'asyncfetch[postgres]'``): without
it ``open_sink`` says so in one line instead of failing at import.

The sink's logic (``_base.py``) hands this backend statements already written
with PostgreSQL's own ``$1..$n`` parameters, so they go to the server as they
are, prepared once per connection (asyncpg's statement cache) and reused for
every page. A page's rows are one ``executemany`` per statement: asyncpg sends
every row's Bind/Execute and a single Sync, one round trip for the page, not
one per record. ``data`` is ``jsonb`` (asyncpg's codec takes the JSON text
orjson already made; no re-parsing on the client); timestamps are
``timestamptz``.

One run per database: ``_connect`` takes a session-level advisory lock
(``pg_try_advisory_lock``) and holds it for as long as the sink is open; a
second asyncfetch run writing the same database gets ``SinkLockedError``
instead of interleaving its pages with the first's. The lock belongs to the
connection, so a run killed with ``kill -9`` releases it as the server sees
its connection close; readers are never locked out.

Each page is one transaction (``_transaction``): the records, the run's
staging and its progress commit together or not at all. A connection lost
mid-page rolls that page back on the server; the rerun fetches it again.

A password in the URL never reaches a message: every error is reworded here
as one line naming the database by its ``***``-masked URL, and any text taken
from the driver or the server is scrubbed of the password too.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import anyio
import asyncpg
from yarl import URL

from .._exceptions import SinkLockedError, SinkOpenError, SinkURLError, SinkWriteError
from ._base import Sink, SinkURL, Step
from ._schema import POSTGRESQL

__all__ = ["LOCK_KEY", "PostgresSink"]

# The advisory lock's key: one per database, the same for every asyncfetch run
# (the bytes of "asyncftc" as a signed 64-bit integer).
LOCK_KEY = int.from_bytes(b"asyncftc", "big", signed=True)
CONNECT_TIMEOUT = 10.0  # seconds to connect and log in
CLOSE_TIMEOUT = 5.0  # seconds a polite close may take before the socket is cut


class PostgresSink(Sink):
    """A PostgreSQL database (``postgresql://user:password@host:port/database``;
    a Unix socket as ``postgresql://user@/database?host=/run/postgresql``)."""

    dialect = POSTGRESQL

    def __init__(self, url: SinkURL) -> None:
        super().__init__(url)
        self._connection: Any = None  # asyncpg.Connection (asyncpg is untyped)
        self._calls = anyio.Lock()  # one statement at a time on the connection
        try:
            self._password = URL(url.url).password or ""
        except (ValueError, TypeError):
            self._password = ""

    def _clean(self, text: object) -> str:
        """``text`` on one line, without the password."""
        line = " ".join(str(text).split())
        if self._password:
            line = line.replace(self._password, "***")
        return line

    async def _connect(self) -> None:
        where = self.display
        try:
            connection = await asyncpg.connect(self.url.url, timeout=CONNECT_TIMEOUT)
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
            locked = await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            await _close(connection)
            raise SinkOpenError(
                f"{where}: cannot take the writer lock: {self._clean(exc)}"
            ) from None
        if not locked:
            await _close(connection)
            raise SinkLockedError(f"{where}: another asyncfetch run is writing this database")
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

    async def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._calls:
            connection = self._open_connection()
            try:
                rows = await connection.fetch(sql, *args)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise self._write_error(exc) from None
        return [tuple(row) for row in rows]

    async def _transaction(self, steps: Sequence[Step]) -> list[list[tuple[Any, ...]]]:
        async with self._calls:
            connection = self._open_connection()
            results: list[list[tuple[Any, ...]]] = []
            try:
                async with connection.transaction():
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
