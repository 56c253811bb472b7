"""Bulk sync from the command line: resume after kill -9 and Ctrl-C, progress, several
lists, formats. Real CLI processes against the bundled server."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from asyncfetch.testing import ServerConfig, ServerThread

from ..helpers import ids, scroll_order, users_with_tag

TOKEN = "sync-token-31337"
PAGES = 200  # users=2000 at --per-page 10


@pytest.fixture(scope="module")
def slow() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=2000, latency_ms=30)) as running:
        yield running


def command(server: ServerThread, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "asyncfetch", *args, "--base-url", server.base_url,
        "--token", TOKEN,
    ]  # fmt: skip


def run(server: ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(server, *args), capture_output=True, text=True, timeout=120, check=False
    )


def start(server: ServerThread, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(server, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )


def partial_of(out: Path) -> Path:
    """Where a run writes ``out`` until it is complete."""
    return Path(str(out) + ".partial")


def wait_for_lines(path: Path, lines: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {lines} lines")


@pytest.fixture(scope="module")
def reference(slow: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An uninterrupted run's file."""
    out = tmp_path_factory.mktemp("reference") / "users.jsonl"
    result = run(slow, "users", "--per-page", "10", "--concurrency", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert not Path(str(out) + ".partial").exists()  # renamed into place once complete
    assert not Path(str(out) + ".partial.checkpoint").exists()  # removed once complete
    return out.read_bytes()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_an_interrupted_run_resumes_to_a_byte_identical_file(
    slow: ServerThread, reference: bytes, tmp_path: Path, stop: signal.Signals
) -> None:
    out = tmp_path / "users.jsonl"
    args = ("users", "--per-page", "10", "--concurrency", "4", "--out", str(out))
    partial = partial_of(out)  # where the file is written until complete
    process = start(slow, *args)
    wait_for_lines(partial, 600)  # 60 pages or more in
    process.send_signal(stop)
    process.wait(timeout=30)
    assert process.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130)
    assert not out.exists()

    checkpoint = orjson.loads(Path(str(partial) + ".checkpoint").read_bytes())
    done = checkpoint["pages"]
    assert 50 <= done < PAGES  # 60 pages were in the file; the checkpoint may trail by a page
    assert checkpoint["offset"] <= partial.stat().st_size
    slow.stats.reset()

    result = run(slow, *args, "--resume", "--stats", str(tmp_path / "stats.json"))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == reference
    # Only the pages missing from the file were asked for (no retries happen here).
    assert slow.stats.requests == PAGES - done
    assert sorted(n for _, n in slow.stats.pages) == list(range(done + 1, PAGES + 1))
    stats = orjson.loads((tmp_path / "stats.json").read_bytes())
    assert stats["lists"][0]["resumed_after_page"] == done
    assert stats["pages"] == PAGES - done


def test_a_torn_last_line_is_cut_off_on_resume(
    slow: ServerThread, reference: bytes, tmp_path: Path
) -> None:
    out = tmp_path / "users.jsonl"
    args = ("users", "--per-page", "10", "--concurrency", "4", "--out", str(out))
    process = start(slow, *args)
    wait_for_lines(partial_of(out), 300)
    process.kill()
    process.wait(timeout=30)
    with partial_of(out).open("ab") as file:
        file.write(b'{"type": "user", "id": "half a li')  # what a kill mid-write leaves
    result = run(slow, *args, "--resume")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == reference


def test_a_checkpoint_for_another_request_is_refused(slow: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "users.jsonl"
    process = start(slow, "users", "--per-page", "10", "--concurrency", "2", "--out", str(out))
    wait_for_lines(partial_of(out), 50)
    process.kill()
    process.wait(timeout=30)
    before = partial_of(out).read_bytes()
    slow.stats.reset()
    result = run(slow, "users", "--per-page", "20", "--out", str(out), "--resume")
    assert result.returncode == 2
    assert "is for a different request (differs in: per_page)" in result.stderr
    assert slow.stats.requests == 0
    assert partial_of(out).read_bytes() == before


def test_resume_needs_a_file(slow: ServerThread) -> None:
    result = run(slow, "users", "--resume")
    assert result.returncode == 2
    assert "--resume needs a regular file per list" in result.stderr


def test_progress_shows_on_a_terminal_only(slow: ServerThread, tmp_path: Path) -> None:
    args = ("users", "--per-page", "20", "--concurrency", "8", "--out", str(tmp_path / "u.jsonl"))
    # On a pseudo-terminal: the live bar.
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    terminal = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "40"}
    process = subprocess.Popen(
        command(slow, *args), stdout=subprocess.DEVNULL, stderr=secondary, env=terminal
    )
    os.close(secondary)
    shown = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    process.wait(timeout=30)
    os.close(primary)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    assert process.returncode == 0
    assert "100/100" in text
    assert "items" in text
    assert "req/s" in text
    # Not a terminal: only the one-line summary.
    result = run(slow, *args)
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("2000 items, 100 pages in ")
    assert "req/s" not in result.stderr
    # --quiet: nothing at all.
    assert run(slow, *args, "--quiet").stderr == ""


def test_several_lists_share_one_pool_and_one_rate_budget(tmp_path: Path) -> None:
    config = ServerConfig(users=600, latency_ms=20, rate_limit=20, rate_window_seconds=1)
    with ServerThread(config) as server:
        ws = server.workspace
        tags = [str(ws.tags[0]["id"]), str(ws.tags[1]["id"])]
        result = run(
            server, "users", "--tag-id", tags[0], "--tag-id", tags[1], "--per-page", "10",
            "--concurrency", "6", "--out-dir", str(tmp_path / "out"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        for tag in tags:
            written = (tmp_path / "out" / f"users-tag-{tag}.jsonl").read_bytes().splitlines()
            assert ids(map(orjson.loads, written)) == ids(users_with_tag(ws, tag))
        stats = server.stats
        assert stats.statuses[429] == 0
        assert stats.max_in_flight <= 6
        # The two lists were fetched side by side, not one after the other.
        firsts = [i for i, page in enumerate(stats.pages) if page == ("/users", 1)]
        assert len(firsts) == 2
        assert firsts[1] < len(stats.pages) // 4


def test_merged_output_drops_records_already_written(slow: ServerThread, tmp_path: Path) -> None:
    ws = slow.workspace
    tags = [str(ws.tags[0]["id"]), str(ws.tags[1]["id"])]
    out = tmp_path / "merged.jsonl"
    result = run(slow, "users", "--tag-id", tags[0], "--tag-id", tags[1], "--out", str(out))
    assert result.returncode == 0, result.stderr
    got = ids(orjson.loads(line) for line in out.read_bytes().splitlines())
    first = ids(users_with_tag(ws, tags[0]))
    second = [i for i in ids(users_with_tag(ws, tags[1])) if i not in set(first)]
    assert got == first + second
    assert len(got) == len(set(got))


def test_csv_and_json_formats_parse_back(slow: ServerThread, tmp_path: Path) -> None:
    ws = slow.workspace
    tag = ws.largest_tag_id
    expected = users_with_tag(ws, tag)

    as_json = tmp_path / "users.json"
    result = run(slow, "users", "--tag-id", tag, "--format", "json", "--out", str(as_json))
    assert result.returncode == 0, result.stderr
    assert orjson.loads(as_json.read_bytes()) == expected

    as_csv = tmp_path / "users.csv"
    result = run(
        slow, "users", "--tag-id", tag, "--format", "csv",
        "--fields", "id,email,custom_attributes.plan,tags", "--out", str(as_csv),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.read_text())))
    assert [r["id"] for r in rows] == ids(expected)
    assert [r["email"] for r in rows] == [u["email"] or "" for u in expected]  # leads: null
    assert [r["custom_attributes.plan"] for r in rows] == [
        u["custom_attributes"].get("plan") or "" for u in expected
    ]
    assert orjson.loads(rows[0]["tags"]) == expected[0]["tags"]


def test_empty_list_gives_a_valid_json_array(slow: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "none.json"
    tag = slow.workspace.empty_tag_id
    result = run(slow, "users", "--tag-id", tag, "--format", "json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert orjson.loads(out.read_bytes()) == []


def test_csv_needs_fields_and_fields_need_csv(slow: ServerThread) -> None:
    result = run(slow, "users", "--format", "csv")
    assert result.returncode == 2
    assert "CSV needs a list of fields" in result.stderr
    result = run(slow, "users", "--fields", "id")
    assert result.returncode == 2
    assert "--fields goes with --format csv" in result.stderr


def test_verbose_logging_never_shows_the_token(slow: ServerThread, tmp_path: Path) -> None:
    result = run(slow, "contacts", "-vv", "--out", str(tmp_path / "c.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "GET " in result.stderr
    assert TOKEN not in result.stderr


def test_a_12000_user_tag_comes_whole_through_the_scroll_fallback(tmp_path: Path) -> None:
    with ServerThread(ServerConfig(users=24_000)) as big:
        ws = big.workspace
        tag = ws.largest_tag_id
        out = tmp_path / "tag.jsonl"
        result = run(big, "users", "--tag-id", tag, "--out", str(out), "-v")
        expected = ids(scroll_order(users_with_tag(ws, tag)))  # users, then leads
        scrolls = sum(1 for path, _ in big.stats.pages if path.endswith("/scroll"))
    assert result.returncode == 0, result.stderr
    assert "scrolling instead" in result.stderr
    got = ids(orjson.loads(line) for line in out.read_bytes().splitlines())
    assert len(got) == 15_000
    assert got == expected
    assert scrolls == 241 + 61
