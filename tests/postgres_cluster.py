"""A throwaway PostgreSQL server for the test run and the benchmarks (issue 11).

The sink's tests run the same suite on SQLite and on a real PostgreSQL, and
a PostgreSQL that cannot start must FAIL those tests, never skip them: a
skipped backend is a backend nobody tested. So the server is started here,
by the test run itself, from the binaries of Debian's ``postgresql`` package
(``initdb``, ``pg_ctl``, ``postgres`` under ``/usr/lib/postgresql/<version>/bin/``;
``make test`` installs the package when they are missing):

* ``initdb --no-sync`` makes a cluster in a temporary directory (one to three
  seconds; ``fsync=off`` and friends after it: a test cluster needs no
  durability, and the tests that kill a run kill the client, not the server);
* ``pg_ctl start`` runs it listening on a Unix socket in that same directory
  and on no TCP port at all (``listen_addresses=''``): nothing else on the
  machine can reach it, and no port can be taken by another test run;
* a role ``asyncfetch`` with a random password (password authentication
  everywhere, ``scram-sha-256``: the tests of wrong credentials need a server
  that checks them) that may create databases, and a database of its own;
* its URL, ``postgresql://asyncfetch:PASSWORD@/asyncfetch?host=DIR``, is
  exported as ``ASYNCFETCH_TEST_POSTGRES_URL``; ``pg_ctl stop`` at the end.

PostgreSQL refuses to run as root. Run as root (CI containers), the cluster
belongs to the ``postgres`` user the package creates (``nobody`` without it)
and every binary runs through ``runuser -u USER --``; the tests, root, reach
its socket anyway.

``ASYNCFETCH_TEST_POSTGRES_URL`` already set means "use my server": nothing is
started and the URL is used as given (its role needs ``CREATEDB``: each test
gets a database of its own, dropped after it).

This module needs no pytest (the benchmarks start their server with
:func:`throwaway_cluster` too); the fixtures are in tests/postgres_server.py.

The password never reaches the test output: it goes to ``initdb`` in a file,
not on a command line; the URL handed out is a :class:`PostgresUrl`, a ``str``
whose ``repr`` (what pytest prints for a failed assertion or ``--showlocals``)
masks it, and so does a failed comparison with one
(``pytest_assertrepr_compare`` in tests/postgres_server.py); a failed start
names the step and the server's own log, which holds no password.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ENV = "ASYNCFETCH_TEST_POSTGRES_URL"
ROLE = "asyncfetch"
# The bootstrap superuser: only the fixture logs in as it, to create ROLE.
ADMIN = "asyncfetch_admin"
BINARIES = ("initdb", "pg_ctl", "postgres")
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
# Durability off: a test cluster lives for one run (``durable=True`` keeps the defaults).
FAST_SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=50",
    # An autovacuum worker (the superuser's) in a test's database would keep the role
    # from dropping it (DROP DATABASE ... WITH (FORCE) may end only its own sessions).
    "autovacuum=off",
    "shared_buffers=16MB",
)


class PostgresUrl(str):
    """A database URL whose ``repr`` hides its password (pytest prints reprs)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_password(str(self)))


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def with_database(url: str, database: str) -> PostgresUrl:
    """``url`` naming another database on the same server, as the same role."""
    return PostgresUrl(urlunsplit(urlsplit(url)._replace(path="/" + quote(database))))


class PostgresStartError(Exception):
    """The throwaway server could not be made or started; the message says which step."""


def find_bindir(candidates: Sequence[Path] | None = None) -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: the newest
    Debian ``/usr/lib/postgresql/<version>/bin``, else the ``PATH``'s ``pg_ctl``'s."""
    if candidates is None:
        debian = sorted(
            Path("/").glob(DEBIAN_BINDIRS.lstrip("/")),
            key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
            reverse=True,
        )
        on_path = shutil.which("pg_ctl")
        candidates = [*debian, *([Path(on_path).parent] if on_path else [])]
    for folder in candidates:
        if all((folder / name).is_file() for name in BINARIES):
            return folder
    raise PostgresStartError(
        "PostgreSQL's initdb, pg_ctl and postgres were not found (looked in "
        f"{DEBIAN_BINDIRS} and on PATH): install Debian's postgresql package "
        f"(`make test` does), or set {ENV} to a server of your own"
    )


def run_as_user() -> str | None:
    """The user to run PostgreSQL as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresStartError(
        "running as root and no 'postgres' or 'nobody' user to run PostgreSQL as "
        "(PostgreSQL refuses to run as root)"
    )


class Cluster:
    """One throwaway cluster in ``directory``; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self, directory: Path, *, bindir: Path, user: str | None, durable: bool = False
    ) -> None:
        self.directory = directory
        self.durable = durable
        self.bindir = bindir
        self.user = user
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.port = 5432  # names the socket file only: no TCP
        self._admin_password = secrets.token_urlsafe(24)
        self._password = secrets.token_urlsafe(24)
        self._started = False

    @property
    def url(self) -> PostgresUrl:
        return PostgresUrl(
            f"postgresql://{ROLE}:{self._password}@/{ROLE}?host={self.directory}&port={self.port}"
        )

    def _admin_url(self) -> str:
        return (
            f"postgresql://{ADMIN}:{self._admin_password}@/postgres"
            f"?host={self.directory}&port={self.port}"
        )

    def _run(self, step: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        try:
            done = subprocess.run(
                command,
                cwd=self.directory,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresStartError(f"{step} failed: {exc}") from None
        if done.returncode != 0:
            raise PostgresStartError(
                f"{step} failed (exit {done.returncode}): "
                + (done.stderr.strip() or done.stdout.strip())
                + self._log_tail()
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return ""
        return "\nserver log (" + str(self.log) + "):\n" + "\n".join(lines) if lines else ""

    def start(self) -> None:
        if self.user is not None:
            shutil.chown(self.directory, self.user)
        self.directory.chmod(0o700)
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self._admin_password + "\n")
        if self.user is not None:
            shutil.chown(pwfile, self.user)
        try:
            self._run(
                "initdb",
                "initdb",
                "--pgdata",
                str(self.data),
                "--username",
                ADMIN,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
                "--no-instructions",
            )
        finally:
            pwfile.unlink()
        settings = ("listen_addresses=", *(() if self.durable else FAST_SETTINGS))
        options = " ".join(f"-c {setting}" for setting in settings)
        options += f" -c unix_socket_directories={self.directory} -p {self.port}"
        self._started = True  # from here on, stop() tries pg_ctl stop
        self._run(
            "pg_ctl start",
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--wait",
            "--timeout",
            str(START_TIMEOUT),
            "-o",
            options,
            timeout=START_TIMEOUT + 10,
        )
        asyncio.run(self._create_role())

    async def _create_role(self) -> None:
        try:
            import asyncpg  # in the dev extras (postgres); fail clearly without
        except ImportError:
            raise PostgresStartError(
                "asyncpg is not installed: `pip install -e '.[dev]'` (the postgres extra)"
            ) from None
        try:
            connection = await asyncpg.connect(self._admin_url(), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise PostgresStartError(
                f"could not connect to the new server: {type(exc).__name__}" + self._log_tail()
            ) from None
        try:
            # A role's password cannot be a bind parameter; token_urlsafe has no quote.
            await connection.execute(
                f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self._password}'"
            )
            await connection.execute(f"CREATE DATABASE {ROLE} OWNER {ROLE}")
        finally:
            await connection.close()

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(PostgresStartError):
                self._run("pg_ctl stop", "pg_ctl", "stop", "--pgdata", str(self.data), "-m", "fast")


@contextlib.contextmanager
def throwaway_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """A started cluster in a new temporary directory, stopped and removed after;
    ``durable``: PostgreSQL's own defaults (fsync on: what a benchmark measures)."""
    bindir = find_bindir()
    user = run_as_user()
    # Short: a Unix socket's path is limited to about 100 bytes.
    base = "/tmp" if Path("/tmp").is_dir() else None
    directory = Path(tempfile.mkdtemp(prefix="asyncfetch-pg-", dir=base))
    cluster = Cluster(directory, bindir=bindir, user=user, durable=durable)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def on_server(url: str, *statements: str) -> None:
    """Run ``statements`` over one connection to ``url`` (outside any event loop)."""

    async def run() -> None:
        import asyncpg

        connection = await asyncpg.connect(url, timeout=10)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())
