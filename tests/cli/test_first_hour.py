"""The first hour of a new user: finding ids, reading the progress bar, the words, the help.

Every CLI test runs the installed console script (``.venv/bin/asyncfetch``)
against the bundled server over loopback; the progress tests give it a
pseudo-terminal of 80 columns, the narrowest a user is likely to have.
"""

from __future__ import annotations

import dataclasses
import fcntl
import inspect
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import click
import orjson
import pytest
from rich.console import Console

from asyncfetch import IntercomClient, PagesClient, Retries
from asyncfetch._cli._commands import cli
from asyncfetch._cli._progress import progress_board
from asyncfetch._cli._wording import times_faster
from asyncfetch.testing import FaultConfig, IntercomServer, ServerConfig, ServerThread

from ..helpers import ids, read_lines_until, users_with_tag

TOKEN = "first-hour-token-4242"
ASYNCFETCH = str(Path(sys.executable).with_name("asyncfetch"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-B]")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=1000, token=TOKEN)) as running:
        yield running


def environment(server: ServerThread | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    if server is not None:
        env.update(INTERCOM_BASE_URL=server.base_url, INTERCOM_ACCESS_TOKEN=TOKEN)
    return {**env, **extra}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert Path(ASYNCFETCH).exists(), "run the tests from the project's .venv"
    return subprocess.run(
        [ASYNCFETCH, *args],
        capture_output=True,
        text=True,
        env=env or environment(),
        timeout=60,
        check=False,
    )


def on_terminal(args: list[str], *, env: dict[str, str], stream: str = "stderr") -> tuple[int, str]:
    """Run the console script with ``stream`` on an 80x40 pseudo-terminal; return
    the exit code and what the terminal was sent, escape sequences removed."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    terminal = {**env, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "40"}
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: secondary}
    process = subprocess.Popen([ASYNCFETCH, *args], env=terminal, **streams)  # type: ignore[call-overload]
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
    return process.returncode, ANSI.sub("", shown.decode(errors="replace"))


def screen_lines(text: str) -> list[str]:
    """The lines as drawn: every carriage return or newline starts one."""
    return [line for line in re.split(r"[\r\n]", text) if line.strip()]


# --- tags, segments, admins ---------------------------------------------------------


@pytest.mark.parametrize("name", ["tags", "segments", "admins"])
def test_small_lists_print_json_lines_when_piped(server: ServerThread, name: str) -> None:
    result = run(name, env=environment(server))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    got = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert got == list(getattr(server.workspace, name))
    assert TOKEN not in result.stdout


def test_small_lists_print_a_table_on_a_terminal(server: ServerThread) -> None:
    code, shown = on_terminal(["tags"], env=environment(server), stream="stdout")
    assert code == 0
    lines = screen_lines(shown)
    assert re.match(r"id\s+name\s*$", lines[0])
    tags = server.workspace.tags
    for tag, line in zip(tags, lines[1:], strict=False):
        assert re.match(rf"{tag['id']}\s+{re.escape(tag['name'])}\s*$", line), line
    assert lines[len(tags) + 1].strip() == f"{len(tags)} tags"
    assert "{" not in shown  # a table, not JSON

    code, shown = on_terminal(["admins"], env=environment(server), stream="stdout")
    assert code == 0
    admin = server.workspace.admins[0]
    assert re.search(rf"{admin['id']}\s+{admin['name']}\s+{admin['email']}", shown)


def test_small_lists_take_the_options_and_exit_codes_of_the_fetches(
    server: ServerThread,
) -> None:
    served_before = server.stats.requests
    result = run("segments", "--base-url", server.base_url)
    assert result.returncode == 2
    assert "no token: pass --token or set INTERCOM_ACCESS_TOKEN" in result.stderr
    result = run("tags", "--base-url", "localhost:8000", "--token", TOKEN)
    assert result.returncode == 2
    assert "--base-url must be an http:// or https:// URL" in result.stderr
    assert server.stats.requests == served_before  # usage errors send nothing
    result = run("admins", "--base-url", server.base_url, "--token", "wrong-token-77")
    assert result.returncode == 1
    assert result.stderr.startswith("asyncfetch: error: HTTP 401 unauthorized")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "wrong-token-77" not in result.stderr


def test_small_lists_end_quietly_when_the_reader_stops_early(server: ServerThread) -> None:
    # `true` exits at once: the write meets a closed pipe, as `| head -1` would.
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {ASYNCFETCH} tags | true"],
        capture_output=True,
        text=True,
        env=environment(server),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("name", ["tags", "users"])
def test_a_full_disk_under_stdout_is_one_line_and_exit_1(server: ServerThread, name: str) -> None:
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [ASYNCFETCH, name, "--quiet"] if name == "users" else [ASYNCFETCH, name],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(server),
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("asyncfetch: error: cannot write")
    assert "No space left on device" in lines[0]


def test_serve_prints_ids_that_exist_and_how_to_use_them() -> None:
    process = subprocess.Popen(
        [ASYNCFETCH, "serve", "--port", "0", "--users", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        assert process.stdout is not None
        banner = read_lines_until(process.stdout, "export INTERCOM_BASE_URL").splitlines()
        assert len(banner) >= 3, banner
    finally:
        process.terminate()
        process.communicate(timeout=30)
    url = re.search(r"http://127\.0\.0\.1:\d+", banner[0])
    assert url is not None
    shown_tags = re.findall(r"(\d+) ([\w-]+) \((\d+) users?\)", banner[1])
    assert len(shown_tags) >= 2
    with ServerThread(ServerConfig(users=1000)) as same:  # the same seed: the same ids
        ws = same.workspace
        for tag_id, name, members in shown_tags:
            (tag,) = [t for t in ws.tags if t["id"] == tag_id]
            assert tag["name"] == name
            assert len(users_with_tag(ws, tag_id)) == int(members)
        shown_segments = re.findall(r"([0-9a-f]{24}) ", banner[2])
        assert shown_segments
        assert set(shown_segments) <= {s["id"] for s in ws.segments}
    assert f"export INTERCOM_BASE_URL={url.group()} INTERCOM_ACCESS_TOKEN=" in "".join(banner)


# --- the progress bar -------------------------------------------------------------


def test_progress_fits_80_columns_shows_waits_and_keeps_log_lines_whole() -> None:
    # 125 pages (1,000 users and 250 leads) against 40 requests per 2-second
    # window: the client pauses for the window's reset at least twice, and the
    # second pause is most of a window long.
    config = ServerConfig(users=2000, latency_ms=10, rate_limit=40, rate_window_seconds=2)
    with ServerThread(config) as limited:
        tag = limited.workspace.largest_tag_id
        code, shown = on_terminal(
            ["users", "--tag-id", tag, "--per-page", "10", "--out", os.devnull, "-v"],
            env=environment(limited),
        )
    assert code == 0, shown
    *lines, summary = screen_lines(shown)
    assert summary.startswith("1250 items, 125 pages in ")  # after the bars: the terminal wraps it
    assert max(len(line) for line in lines) <= 80
    # One row holds the list's pages, items and ETA.
    rows = [line for line in lines if re.search(r"\d+/125 pages\s+\d+ items\s+ETA \d", line)]
    assert rows, shown
    assert any("125/125 pages" in line and "1250 items" in line for line in lines)
    waits = [line for line in lines if "waiting for the rate-limit window to reset" in line]
    assert waits, shown
    assert all(re.search(r"reset: \d+ s left of \d+ s$", line) for line in waits)
    # -v lines come whole, each on a line of its own, never through a bar.
    logged = [line for line in lines if "INFO asyncfetch" in line]
    assert logged
    assert all(
        re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO asyncfetch: ", x) for x in logged
    )
    assert not any("pages" in line for line in logged)


@pytest.mark.anyio
async def test_the_board_says_it_waits_for_an_open_scroll_to_expire() -> None:
    async with IntercomServer(ServerConfig(users=100)) as server:
        async with aiohttp.ClientSession() as session:
            # Another run's scroll, left open: the client's own gets scroll_exists.
            url = f"{server.base_url}/users/scroll"
            async with session.get(url, headers={"Authorization": "Bearer x"}) as response:
                assert response.status == 200
        async with IntercomClient(token="x", base_url=server.base_url) as client:
            with progress_board(enabled=True, stats=lambda: client.stats) as board:

                async def walk() -> None:
                    async with client.users(scroll=True) as users:
                        async for _ in users:
                            pass

                shown = ""
                async with anyio.create_task_group() as group:
                    group.start_soon(walk)
                    with anyio.fail_after(5):
                        while "waiting for" not in shown:
                            await anyio.sleep(0.01)
                            console = Console(width=80, record=True, file=io.StringIO())
                            console.print(board.status())
                            shown = console.export_text()
                    group.cancel_scope.cancel()
    assert re.search(r"waiting for an open scroll to expire: \d s left of \d s", shown), shown


def test_the_demo_shows_progress_for_both_halves(tmp_path: Path) -> None:
    code, shown = on_terminal(
        ["demo", "--users", "1000", "--latency-ms", "2", "--out", str(tmp_path / "u.jsonl")],
        env=environment(),
    )
    assert code == 0, shown
    # The largest tag of 1,000 users: 500 users and 125 leads, 13 pages of 50.
    assert re.search(r"concurrent\s.*13/13 pages\s+625 items", shown)
    assert re.search(r"sequential\s.*13/13 pages\s+625 items", shown)


# --- words ------------------------------------------------------------------------


def test_one_is_singular_in_the_summary(tmp_path: Path) -> None:
    with ServerThread(ServerConfig(users=1)) as tiny:
        result = run("users", "--out", str(tmp_path / "u.jsonl"), env=environment(tiny))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("1 item, 1 page in ")
    assert "; 1 request, 0 retries, 0 answered 429, 0 rate-limit pauses)" in result.stderr


def test_the_demo_compares_the_right_way_round_in_pages(tmp_path: Path) -> None:
    result = run("demo", "--users", "1", "--latency-ms", "0", "--out", str(tmp_path / "u.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "server: 1 user, 0 ms latency" in result.stdout
    assert "Wrote 1 record to " in result.stdout
    assert "at most 1 request in flight" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("fetch"))
    assert header.split()[-1] == "pages/s"  # it counts pages, not requests
    rows = {
        line.split()[0]: float(line.split()[4])
        for line in result.stdout.splitlines()
        if line.startswith(("concurrent", "sequential"))
    }
    compared = re.search(r"; ([\d.]+)x (faster|slower) than sequential", result.stdout)
    assert compared is not None, result.stdout
    if rows["concurrent"] < rows["sequential"]:
        assert compared[2] == "faster"
    elif rows["concurrent"] > rows["sequential"]:
        assert compared[2] == "slower"


def test_faster_and_slower_are_never_below_one() -> None:
    assert times_faster(1.0, 3.0) == "3.0x faster"
    assert times_faster(2.0, 1.0) == "2.0x slower"  # not "0.5x faster"


@pytest.mark.parametrize(
    ("args", "message", "library_word"),
    [
        (["users", "--tag-id", " "], "--tag-id must be a non-empty string or integer", "tag_id"),
        (["users", "--segment-id", ""], "--segment-id must be a non-empty string", "segment_id"),
        (["company-users", "--company-id", " "], "--company-id must be a non-empty", "company_id"),
        (
            ["users", "--max-retry-wait", "nan"],
            "--max-retry-wait must be a positive number of seconds, got nan",
            "max_wait",
        ),
        (["users", "--rate", "inf"], "--rate must be a positive number of requests", "None"),
        (["users", "--timeout", "nan"], "--timeout must be a positive number of seconds", "None"),
        (
            ["users", "--base-url", "http://example.com"],
            "or allow it explicitly with --allow-insecure-http",
            "allow_insecure_http=True",
        ),
    ],
)
def test_usage_errors_name_the_cli_options(
    server: ServerThread, args: list[str], message: str, library_word: str
) -> None:
    served_before = server.stats.requests
    result = run(*args, env=environment(server))
    assert result.returncode == 2
    assert message in result.stderr
    assert library_word not in result.stderr
    assert server.stats.requests == served_before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "--per-page", "61"], "Invalid value for '--per-page': 61 is not in the range"),
        (["users", "--format", "xml"], "Invalid value for '--format': 'xml' is not one of"),
        (["users", "--nope"], "No such option '--nope'"),
        (["users", "--per-page"], "Option '--per-page' requires an argument"),
        (["nope"], "No such command 'nope'"),
        (["serve", "--port", "x"], "Invalid value for '--port': 'x' is not a valid integer"),
    ],
)
def test_options_click_refuses_are_one_line_too(
    server: ServerThread, args: list[str], message: str
) -> None:
    # Click's own refusals printed four lines (Usage, Try, a blank, Error).
    served_before = server.stats.requests
    result = run(*args, env=environment(server))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("asyncfetch: error: ")
    assert message in lines[0]
    assert server.stats.requests == served_before


def test_a_bare_asyncfetch_still_shows_the_help() -> None:
    result = run()
    assert result.returncode == 2
    assert "Commands:" in result.stdout + result.stderr
    assert "asyncfetch: error" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--latency-ms", "nan"], "--latency-ms must be a finite number >= 0, got nan"),
        (["--token", "two words"], "--token must be a non-empty string without spaces"),
        (["--faults", "error_rate=2"], "'--faults': error_rate must be a probability from 0 to 1"),
    ],
)
def test_serve_usage_errors_name_its_options(args: list[str], message: str) -> None:
    result = run("serve", "--port", "0", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "latency_ms" not in result.stderr
    assert "None" not in result.stderr
    assert "two words" not in result.stderr  # a token is never echoed


# --- help ---------------------------------------------------------------------------


def test_every_command_and_option_has_help() -> None:
    assert sorted(cli.commands) == sorted(
        ["users", "company-users", "companies", "contacts", "tags", "segments", "admins",
         "serve", "demo", "pages", "fleet"]
    )  # fmt: skip
    commands: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in cli.commands.items():
        commands.append(((name,), command))
        if isinstance(command, click.Group):  # fleet: run, worker
            assert sorted(command.commands) == ["run", "worker"]
            commands.extend(((name, sub), each) for sub, each in command.commands.items())
    for names, command in commands:
        assert command.help, names
        result = run(*names, "--help")
        assert result.returncode == 0, result.stderr
        for param in command.params:
            if param.param_type_name == "argument":  # click has no help for these:
                shown = param.metavar or str(param.name).upper()
                assert shown in command.help, (names, param.name)
                continue
            assert getattr(param, "help", None), f"{names} {param.opts[0]} has no help"
            assert param.opts[0] in result.stdout


SHARED_FETCH_OPTIONS = (
    "--out", "--format", "--fields", "--concurrency", "--rate", "--timeout", "--retries",
    "--max-retry-wait", "--allow-insecure-http", "--resume", "--restart",
    "--restart-on-change", "--stats", "--verbose", "--quiet",
)  # fmt: skip


def _options_of(command_name: str) -> dict[str, click.Parameter]:
    command = cli.commands[command_name]
    return {opt: param for param in command.params for opt in param.opts if opt.startswith("--")}


@pytest.mark.parametrize("intercom_command", ["users", "companies", "company-users", "contacts"])
def test_fetching_commands_share_their_common_options(intercom_command: str) -> None:
    # One definition for what every fetching command takes: same type, range,
    # default and destination in `pages` as in the Intercom commands ...
    pages, intercom = _options_of("pages"), _options_of(intercom_command)
    for opt in SHARED_FETCH_OPTIONS:
        ours, theirs = pages[opt], intercom[opt]
        assert ours.name == theirs.name, opt
        assert ours.type.to_info_dict() == theirs.type.to_info_dict(), opt
        assert ours.default == theirs.default, opt
    # ... the library's defaults, which the two clients share.
    retries = Retries()
    for client in (IntercomClient, PagesClient):
        defaults = inspect.signature(client).parameters
        assert pages["--concurrency"].default == defaults["concurrency"].default == 16
        assert pages["--timeout"].default == defaults["timeout"].default == 30.0
    assert pages["--retries"].default == retries.attempts == 5
    assert pages["--max-retry-wait"].default == retries.max_wait == 120.0
    # Each command keeps its own: Intercom's token, base URL and 1-60 page size.
    for own in ("--token", "--base-url", "--keep-duplicates", "--out-dir"):
        assert own in intercom, own
        assert own not in pages, own
    for own in ("--items", "--header", "--page-param", "--link-last"):
        assert own in pages, own
        assert own not in intercom, own
    assert intercom["--per-page"].type.to_info_dict() == click.IntRange(1, 60).to_info_dict()
    assert pages["--per-page"].type.to_info_dict() == click.IntRange(min=1).to_info_dict()


def test_serve_help_describes_every_fault_key() -> None:
    result = run("serve", "--help")
    assert result.returncode == 0
    _, heading, keys = result.stdout.partition("Keys of --faults")
    assert heading, result.stdout
    # Each key: "  key=default   what it does", the text running on below it.
    described = dict(re.findall(r"^ {2,6}(\w+)=\S+\s+(.*?)(?=^ {2,6}\w+=|\Z)", keys, re.M | re.S))
    for field in dataclasses.fields(FaultConfig):
        assert field.name in described, f"--faults key {field.name} is not in serve --help"
        assert len(described[field.name].split()) >= 3, (field.name, described[field.name])


def test_fetch_ids_are_what_the_server_has(server: ServerThread, tmp_path: Path) -> None:
    # The ids `asyncfetch tags` prints are the ones --tag-id takes.
    tags = run("tags", env=environment(server))
    first = orjson.loads(tags.stdout.splitlines()[1])
    out = tmp_path / "tag.jsonl"
    result = run("users", "--tag-id", first["id"], "--out", str(out), env=environment(server))
    assert result.returncode == 0, result.stderr
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert ids(got) == ids(users_with_tag(server.workspace, first["id"]))
