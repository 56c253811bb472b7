"""``--db`` from the command line: real CLI processes against the bundled server,
killed with SIGKILL mid-run, refused a second writer, given a broken file or a
full disk; every backend of ``sink_url``."""

from __future__ import annotations

import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asyncfetch.testing import ServerConfig, ServerThread

from ..helpers import ids
from .db import dump, query

TOKEN = "db-token-4242"
PAGES = 200  # users=2000 at --per-page 10


@pytest.fixture(scope="module")
def slow() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=2000, latency_ms=30)) as running:
        yield running


def command(server: ServerThread, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "asyncfetch", *args, "--base-url", server.base_url,
        "--token", TOKEN, "--per-page", "10", "--concurrency", "4",
    ]  # fmt: skip


def run(server: ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(server, *args), capture_output=True, text=True, timeout=120, check=False
    )


def pages_written(url: str) -> int:
    try:
        rows = query(url, "SELECT pages FROM sync_runs ORDER BY id DESC LIMIT 1")
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):  # not made yet
        return 0
    return int(rows[0][0]) if rows else 0


def wait_for_pages(url: str, pages: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while pages_written(url) < pages:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, f"never reached {pages} pages"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def reference(slow: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run's tables (SQLite: what every backend must agree on)."""
    url = f"sqlite://{tmp_path_factory.mktemp('reference') / 'ref.db'}"
    result = run(slow, "users", "--db", url)
    assert result.returncode == 0, result.stderr
    tables = dump(url)
    assert [row[2] for row in tables["list_members"]] == ids(slow.workspace.users)
    return tables


def same_tables(got: dict[str, Any], reference: dict[str, Any]) -> None:
    """Equal to the reference run's, but for what differs between any two runs:
    nothing, once first_seen_at and last_seen_at (wall-clock times of the
    writes, left out of ``dump``) are set aside. Timestamps of the records
    themselves (created_at, updated_at) are compared: they come from the API."""
    assert got == reference


@pytest.mark.parametrize("kill_after", [1, 60, 150])
def test_kill_9_then_rerun_gives_the_tables_of_an_uninterrupted_run(
    slow: ServerThread, reference: dict[str, Any], sink_url: str, kill_after: int
) -> None:
    process = subprocess.Popen(
        command(slow, "users", "--db", sink_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_pages(sink_url, kill_after, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    written = pages_written(sink_url)
    assert kill_after <= written < PAGES
    [(status,)] = query(sink_url, "SELECT status FROM sync_runs")
    assert status == "running"  # killed: it could not even say so
    requests_before = slow.stats.requests
    result = run(slow, "users", "--db", sink_url)
    assert result.returncode == 0, result.stderr
    # The rerun continued from the database's record: only the pages not written.
    assert slow.stats.requests - requests_before == PAGES - written
    same_tables(dump(sink_url), reference)
    assert query(sink_url, "SELECT status, pages, items FROM sync_runs") == [
        ("complete", PAGES, 2000)
    ]


def test_restart_starts_a_stopped_run_afresh(
    slow: ServerThread, reference: dict[str, Any], sink_url: str
) -> None:
    process = subprocess.Popen(
        command(slow, "users", "--db", sink_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_pages(sink_url, 30, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    written = pages_written(sink_url)
    requests_before = slow.stats.requests
    result = run(slow, "users", "--db", sink_url, "--restart")
    assert result.returncode == 0, result.stderr
    assert slow.stats.requests - requests_before == PAGES  # every page again
    same_tables(dump(sink_url), reference)
    assert written >= 30
    assert query(sink_url, "SELECT status, pages FROM sync_runs ORDER BY id") == [
        ("abandoned", written),
        ("complete", PAGES),
    ]


def test_a_second_run_writing_the_same_database_is_refused(
    slow: ServerThread, sink_url: str
) -> None:
    first = subprocess.Popen(
        command(slow, "users", "--db", sink_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_pages(sink_url, 1, first)
        second = run(slow, "users", "--db", sink_url)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert "another asyncfetch run is writing this database" in second.stderr


# SQLite only: the full disk is made for the run's own file (RLIMIT_FSIZE); a
# PostgreSQL server's disk is the server's, its failed write is tested in
# tests/sink/test_postgres.py (a page the server rejects rolls back whole).
@pytest.mark.parametrize("sink_url", ["sqlite"], indirect=True)
def test_a_full_disk_is_one_line_and_the_rerun_completes(
    slow: ServerThread, reference: dict[str, Any], sink_url: str
) -> None:
    # Files of the run may not grow past 200 KiB (of 2 MB of records): the
    # write that would is refused as on a full disk; SIGXFSZ ignored.
    sync = shlex.join(command(slow, "users", "--db", sink_url))
    limited = f"trap '' XFSZ; ulimit -f 200; exec {sync}"
    result = subprocess.run(["bash", "-c", limited], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"asyncfetch: error: {sink_url}: ")
    # The database holds whole pages, each with its progress.
    [(status, pages, items)] = query(sink_url, "SELECT status, pages, items FROM sync_runs")
    assert status == "failed"
    assert 0 < pages < PAGES
    assert query(sink_url, "SELECT count(*) FROM users") == [(items,)] == [(pages * 10,)]
    result = run(slow, "users", "--db", sink_url)
    assert result.returncode == 0, result.stderr
    same_tables(dump(sink_url), reference)


def test_a_password_in_the_url_is_never_printed(slow: ServerThread) -> None:
    result = run(slow, "users", "--db", "postgresql://me:s3cr3t@127.0.0.1:1/nowhere")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "s3cr3t" not in result.stderr
    assert "postgresql://me:***@127.0.0.1:1/nowhere" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "mysql://h/db"], "database URL 'mysql://h/db': unknown kind"),
        (["--db", "x.db", "--out", "x.jsonl"], "give --out (or --out-dir) or --db, not both"),
        (["--db", "x.db", "--resume"], "--resume is for files; with --db, rerunning"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    slow: ServerThread, args: list[str], message: str, tmp_path: Path
) -> None:
    before = slow.stats.requests
    result = subprocess.run(
        command(slow, "users", *args), capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"asyncfetch: error: {message}")
    assert result.stderr.count("\n") == 1
    assert slow.stats.requests == before
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("what", ["not a database", "a folder"])
def test_a_file_that_is_no_database_is_refused(
    slow: ServerThread, tmp_path: Path, what: str
) -> None:
    path = tmp_path / "x.db"
    if what == "a folder":
        path.mkdir()
    else:
        path.write_bytes(b"these are not the pages you are looking for\n" * 100)
    before = slow.stats.requests
    result = run(slow, "users", "--db", str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"asyncfetch: error: {path}: cannot open: ")
    assert slow.stats.requests == before
    if what == "not a database":
        assert path.read_bytes() == b"these are not the pages you are looking for\n" * 100
    else:  # nothing made beside the folder
        assert sorted(tmp_path.iterdir()) == [path]


def test_a_read_only_file_is_refused_and_left_as_it_was(slow: ServerThread, tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    assert run(slow, "contacts", "--db", str(path)).returncode == 0
    path.chmod(0o444)
    before = path.read_bytes()
    requests_before = slow.stats.requests
    result = run(slow, "users", "--db", str(path))
    assert result.returncode == 2
    assert result.stderr == f"asyncfetch: error: {path}: cannot write: the file is read-only\n"
    assert slow.stats.requests == requests_before
    assert path.read_bytes() == before


def test_a_rerun_after_kill_9_keeps_each_member_once_when_the_list_shifted(
    sink_url: str,
) -> None:
    """Users signed up while the list is fetched (one after every page served)
    push the last record of the last page written onto the next page: the
    rerun must not stage it a second time (the killed process's memory of the
    ids handed over is gone; the database's staging is what remembers them)."""
    with ServerThread(ServerConfig(users=300, latency_ms=100, insert_users_every=1)) as server:
        listed = ids(server.workspace.users)
        process = subprocess.Popen(
            command(server, "users", "--db", sink_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_pages(sink_url, 2, process)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert pages_written(sink_url) < 30
        result = run(server, "users", "--db", sink_url)
    assert result.returncode == 0, result.stderr
    members = [row[0] for row in query(sink_url, "SELECT id FROM list_members ORDER BY position")]
    assert len(members) == len(set(members)), "a member listed twice"
    # Every user there at the start, once, in the list's order (newcomers may be among them).
    assert [key for key in members if key in set(listed)] == listed
    [(items,)] = query(sink_url, "SELECT items FROM sync_runs")
    assert items == len(members)


@pytest.mark.parametrize("command_name", ["users", "contacts"])
def test_an_empty_list_is_a_complete_run(sink_url: str, command_name: str) -> None:
    """A workspace with nobody in it: page 1 holds no record. PostgreSQL's page
    statement then left its timestamp parameter unused and failed ("could not
    determine data type of parameter $4"), exit 1 on an empty page."""
    with ServerThread(ServerConfig(users=0)) as server:
        result = run(server, command_name, "--db", sink_url)
    assert result.returncode == 0, result.stderr
    assert query(sink_url, "SELECT status, items, pages FROM sync_runs") == [("complete", 0, 1)]
    assert query(sink_url, "SELECT count(*) FROM list_members") == [(0,)]
