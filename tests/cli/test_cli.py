"""The ``asyncfetch`` command, run as a real process against the bundled server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web

from asyncfetch.testing import ServerConfig, ServerThread

from ..helpers import RawServer, error_body, ids, page_body, users_with_tag

TOKEN = "cli-secret-token-987"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=1000, latency_ms=20, token=TOKEN)) as running:
        yield running


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "asyncfetch", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_users_of_a_tag_to_a_file(server: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "users.jsonl"
    tag_id = server.workspace.largest_tag_id
    server.stats.reset()
    result = run_cli(
        "users", "--tag-id", tag_id, "--base-url", server.base_url, "--token", TOKEN,
        "--concurrency", "8", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ids(read_jsonl(out)) == ids(users_with_tag(server.workspace, tag_id))
    assert server.stats.max_in_flight == 8
    assert result.stdout == ""
    assert TOKEN not in result.stderr


def test_stdout_and_environment_variables(server: ServerThread) -> None:
    company = server.workspace.companies[1]
    result = run_cli(
        "company-users", "--company-id", str(company["company_id"]), "--per-page", "3", "--quiet",
        env={"INTERCOM_BASE_URL": server.base_url, "INTERCOM_ACCESS_TOKEN": TOKEN},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    users = [orjson.loads(line) for line in result.stdout.splitlines()]
    expected = [
        u for u in server.workspace.users
        if any(c["id"] == company["id"] for c in u["companies"]["companies"])
    ]  # fmt: skip
    assert ids(users) == ids(expected)
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["users", "--tag-id", "1", "--segment-id", "2"],
            "--tag-id and --segment-id cannot be combined",
        ),
        (["company-users"], "give --id or --company-id (each may be repeated)"),
        (["users", "--per-page", "61"], "61 is not in the range 1<=x<=60"),
        (["users", "--concurrency", "0"], "0 is not in the range x>=1"),
        (["users", "--rate", "0"], "0.0 is not in the range x>0"),
        (["users", "--tag-id", " "], "--tag-id must be a non-empty string or integer"),
        (
            ["users", "--base-url", "localhost:8000"],
            "--base-url must be an http:// or https:// URL",
        ),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    server: ServerThread, args: list[str], message: str
) -> None:
    server.stats.reset()
    base = [] if "--base-url" in args else ["--base-url", server.base_url]
    result = run_cli(*args, *base, "--token", TOKEN)
    assert result.returncode == 2
    assert message in result.stderr
    assert server.stats.requests == 0


def test_missing_token_is_a_usage_error(server: ServerThread) -> None:
    result = run_cli("users", "--base-url", server.base_url)
    assert result.returncode == 2
    assert "no token: pass --token or set INTERCOM_ACCESS_TOKEN" in result.stderr


def test_api_failure_exits_1_with_one_line_and_no_token(server: ServerThread) -> None:
    result = run_cli(
        "users", "--tag-id", "no-such-tag", "--base-url", server.base_url, "--token", TOKEN
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("asyncfetch: error: HTTP 404 not_found")
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_wrong_token_exits_1_and_does_not_echo_it(server: ServerThread) -> None:
    wrong = "wrong-token-5555"
    result = run_cli("contacts", "--base-url", server.base_url, "--token", wrong)
    assert result.returncode == 1
    assert "HTTP 401 unauthorized" in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_network_failure_exits_1(tmp_path: Path) -> None:
    result = run_cli(
        "users", "--base-url", "http://127.0.0.1:9", "--token", TOKEN, "--retries", "2"
    )
    assert result.returncode == 1
    assert result.stderr.startswith("asyncfetch: error: connection failed")
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.startswith("asyncfetch, version ")
    helped = run_cli("users", "--help")
    assert helped.returncode == 0
    for option in ("--tag-id", "--segment-id", "--base-url", "--token", "--out", "--per-page",
                   "--concurrency", "--rate", "--timeout"):  # fmt: skip
        assert option in helped.stdout


def test_failure_on_page_one_leaves_an_earlier_export_untouched(
    server: ServerThread, tmp_path: Path
) -> None:
    out = tmp_path / "users.jsonl"
    out.write_bytes(b'{"id": "from an earlier run"}\n')
    result = run_cli(
        "users", "--tag-id", "no-such-tag", "--base-url", server.base_url, "--token", TOKEN,
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1
    assert out.read_bytes() == b'{"id": "from an earlier run"}\n'


def test_unwritable_out_is_a_usage_error_before_any_request(
    server: ServerThread, tmp_path: Path
) -> None:
    server.stats.reset()
    result = run_cli(
        "users", "--base-url", server.base_url, "--token", TOKEN,
        "--out", str(tmp_path / "no-such-folder" / "users.jsonl"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a writable folder" in result.stderr
    assert server.stats.requests == 0


def test_ctrl_c_stops_cleanly_with_exit_130_and_whole_pages(tmp_path: Path) -> None:
    out = tmp_path / "users.jsonl"
    with ServerThread(ServerConfig(users=2000, latency_ms=100)) as slow:
        process = subprocess.Popen(
            [sys.executable, "-m", "asyncfetch", "users", "--base-url", slow.base_url,
             "--token", TOKEN, "--per-page", "10", "--concurrency", "2", "--out", str(out)],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        partial = tmp_path / "users.jsonl.partial"  # the file until it is complete
        deadline = time.monotonic() + 30
        while (not partial.exists() or partial.stat().st_size == 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        expected = ids(slow.workspace.users)
    assert process.returncode == 130, stderr
    assert "asyncfetch: interrupted" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # an interrupted run puts nothing in place
    lines = read_jsonl(partial)  # every line whole JSON
    assert 0 < len(lines) < 2000
    assert len(lines) % 10 == 0  # whole pages only
    assert ids(lines) == expected[: len(lines)]


@pytest.mark.anyio
async def test_persistent_failure_exits_1_and_keeps_the_pages_before_it(
    raw_server: RawServer, tmp_path: Path
) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.query["page"] == "4":
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return web.Response(body=page_body(request, total=9))

    base = await raw_server(handler)
    out = tmp_path / "users.jsonl"
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncfetch", "users", "--base-url", base, "--token", TOKEN,
         "--retries", "2", "--out", str(out)],
        check=False,
    )  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert stderr.strip().splitlines() == [
        f"asyncfetch: error: HTTP 503 service_unavailable: down "
        f"(page 4, {base}/users?per_page=50&page=4, after 2 attempts); to resume: "
        f"asyncfetch users --base-url {base} --token '***' --retries 2 --out {out} --resume"
    ]
    assert not out.exists()
    partial = tmp_path / "users.jsonl.partial"
    assert ids(read_jsonl(partial)) == [f"u{i}" for i in range(6)]  # pages 1-3, whole


@pytest.mark.anyio
async def test_the_resume_command_is_not_garbled_by_a_short_token(
    raw_server: RawServer, tmp_path: Path
) -> None:
    # A short token ("e", as people type against the bundled server) was
    # replaced inside every other argument: the command printed to resume
    # named another file ("us***rs.jsonl") and options that do not exist.
    async def handler(request: web.Request) -> web.Response:
        if request.query["page"] == "2":
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return web.Response(body=page_body(request, total=3))

    base = await raw_server(handler)
    out = tmp_path / "users.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncfetch", "users", "--base-url", base, "--retries", "1",
         "--out", str(out)],
        check=False,
        env={**env, "INTERCOM_ACCESS_TOKEN": "e"},
    )  # fmt: skip
    assert result.returncode == 1
    stderr = result.stderr.decode().strip()
    assert stderr.endswith(
        f"; to resume: asyncfetch users --base-url {base} --retries 1 --out {out} --resume"
    ), stderr


@pytest.mark.anyio
async def test_verbose_lines_are_not_garbled_by_a_short_token(raw_server: RawServer) -> None:
    # The log filter replaced the token everywhere: with token "e" every "e"
    # of every -v line became "***" ("s***rvic***_unavailabl***").
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.query["page"])
        if request.query["page"] == "2" and hits.count("2") == 1:
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return web.Response(body=page_body(request, total=3))

    base = await raw_server(handler)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncfetch", "users", "--base-url", base, "-v", "--quiet"],
        check=False,
        env={**env, "INTERCOM_ACCESS_TOKEN": "e"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "retrying after: HTTP 503 service_unavailable: down" in stderr, stderr
    assert "***" not in stderr
