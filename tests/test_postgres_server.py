"""The test run's PostgreSQL server (tests/postgres_server.py): it runs, it is
reachable only where it should be, a failure to start fails (never skips), and
its password shows nowhere in pytest's output."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from .postgres_cluster import (
    ENV,
    Cluster,
    PostgresStartError,
    PostgresUrl,
    find_bindir,
    mask_password,
    with_database,
)

pytestmark = pytest.mark.anyio


async def test_the_server_accepts_the_url_and_checks_the_password(
    postgres_url: PostgresUrl,
) -> None:
    connection = await asyncpg.connect(postgres_url, timeout=10)
    try:
        assert await connection.fetchval("SELECT 1 + 1") == 2
        # A role of its own, no superuser: the sink must work without one.
        assert (
            await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
    finally:
        await connection.close()
    password = urlsplit(postgres_url).password
    assert password
    wrong = postgres_url.replace(f":{password}@", ":wrong@")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong, timeout=10)


def test_the_throwaway_server_listens_on_its_socket_only(postgres_url: PostgresUrl) -> None:
    assert os.environ.get(ENV) == postgres_url  # exported, for the CLI's subprocesses
    host = parse_qs(urlsplit(postgres_url).query).get("host", [""])[0]
    if not host.startswith("/tmp/asyncfetch-pg-"):
        return  # a developer's own server (ENV set before the run): theirs to configure

    async def listen_addresses() -> str:
        connection = await asyncpg.connect(postgres_url, timeout=10)
        try:
            return str(await connection.fetchval("SHOW listen_addresses"))
        finally:
            await connection.close()

    assert asyncio.run(listen_addresses()) == ""  # no TCP at all
    assert Path(host, ".s.PGSQL.5432").is_socket()
    assert Path(host).stat().st_mode & 0o777 == 0o700


def test_each_test_gets_an_empty_database(postgres_database_url: PostgresUrl) -> None:
    async def tables() -> list[str]:
        connection = await asyncpg.connect(postgres_database_url, timeout=10)
        try:
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            await connection.execute("CREATE TABLE leftover (id int)")
        finally:
            await connection.close()
        return [row[0] for row in rows]

    assert asyncio.run(tables()) == []
    assert urlsplit(postgres_database_url).path.startswith("/asyncfetch_test_")


def test_the_url_repr_hides_the_password() -> None:
    url = PostgresUrl("postgresql://me:s3cret@/db?host=/tmp/x")
    assert "s3cret" not in repr(url)
    assert repr(url) == "'postgresql://me:***@/db?host=/tmp/x'"
    assert str(url) == "postgresql://me:s3cret@/db?host=/tmp/x"  # what connect() receives
    assert mask_password("postgresql://me@h/db") == "postgresql://me@h/db"
    assert with_database(url, "other") == "postgresql://me:s3cret@/other?host=/tmp/x"


def test_missing_binaries_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PostgresStartError, match="initdb, pg_ctl and postgres were not found"):
        find_bindir([tmp_path])


def test_a_server_that_cannot_start_says_why_and_leaks_no_password(tmp_path: Path) -> None:
    # A data directory already there: initdb refuses; the message names the step.
    cluster = Cluster(tmp_path, bindir=find_bindir(), user=None if os.geteuid() else "postgres")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text("15\n")
    with pytest.raises(PostgresStartError, match=r"^initdb failed") as raised:
        cluster.start()
    assert cluster._admin_password not in str(raised.value)
    assert not (tmp_path / "pwfile").exists()  # the password file is gone either way


FAILING_TESTS = """
import asyncpg, pytest

pytestmark = pytest.mark.anyio

@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"

def test_url_compared(postgres_url):
    local_copy = postgres_url
    assert local_copy == "postgresql://someone-else@/db"

async def test_connection_used(postgres_url):
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetchval("SELECT current_user") == "someone-else"
    finally:
        await connection.close()
"""


def test_failing_tests_print_no_password(postgres_url: PostgresUrl, tmp_path: Path) -> None:
    """A test using the server fails: pytest's report (assertion values and
    locals included) shows the URL with its password masked."""
    password = urlsplit(postgres_url).password
    assert password
    (tmp_path / "conftest.py").write_text(
        "from tests.postgres_server import postgres_url, pytest_assertrepr_compare  # noqa: F401\n"
    )
    (tmp_path / "test_failing.py").write_text(textwrap.dedent(FAILING_TESTS))
    done = run_pytest(tmp_path, dict(os.environ))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "2 failed" in output, output
    assert ":***@" in output  # the URL was shown, masked
    leaked = password in output
    assert not leaked, output.replace(password, "<THE PASSWORD>")


def test_a_server_that_cannot_start_fails_the_tests_never_skips(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import tests.postgres_cluster as cluster\n"
        "from tests.postgres_server import postgres_url  # noqa: F401\n"
        "cluster.DEBIAN_BINDIRS = '/nonexistent/*/bin'\n"
    )
    (tmp_path / "test_needs_postgres.py").write_text(
        "def test_one(postgres_url):\n    pass\n\ndef test_two(postgres_url):\n    pass\n"
    )
    env = {key: value for key, value in os.environ.items() if key != ENV}
    env["PATH"] = str(Path(sys.executable).parent)  # no pg_ctl on it
    done = run_pytest(tmp_path, env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "2 errors" in output, output
    assert "skipped" not in output
    assert "the test PostgreSQL server could not start: PostgreSQL's initdb, pg_ctl" in output


def run_pytest(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--showlocals",
            "-vv",
            "--rootdir",
            str(folder),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env={**env, "PYTHONPATH": str(root)},
        cwd=folder,
        check=False,
    )
