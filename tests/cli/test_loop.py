"""``--loop``: the CLI runs on uvloop where it is installed (the default, ``auto``),
on asyncio's own loop when asked, and refuses ``--loop uvloop`` in one line (exit 2,
nothing sent) where uvloop cannot be imported. Real CLI processes against the
bundled server; the loop a run used is the one its ``-vv`` log names, read from
the running loop itself."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from asyncfetch.testing import ServerConfig, ServerThread

from ..helpers import ids, users_with_tag

TOKEN = "loop-token-4242"
UVLOOP = "event loop: uvloop.Loop"
ASYNCIO = "event loop: asyncio.unix_events._UnixSelectorEventLoop"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=300)) as running:
        yield running


def run(
    server: ServerThread, out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    tag = server.workspace.largest_tag_id
    command = [
        sys.executable, "-m", "asyncfetch", "users", "--tag-id", tag, "--per-page", "7",
        "--out", str(out), "--base-url", server.base_url, "--token", TOKEN, "-vv", *args,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )


def expected(server: ServerThread) -> list[str]:
    return ids(users_with_tag(server.workspace, server.workspace.largest_tag_id))


# uvloop is a dependency wherever it runs (pyproject.toml's marker): no skip there.
@pytest.mark.skipif(
    sys.platform == "win32" or sys.implementation.name != "cpython",
    reason="uvloop runs on CPython on Linux and macOS only",
)
@pytest.mark.parametrize(
    ("args", "shown"),
    [((), UVLOOP), (("--loop", "auto"), UVLOOP), (("--loop", "uvloop"), UVLOOP),
     (("--loop", "asyncio"), ASYNCIO)],
    ids=["default", "auto", "uvloop", "asyncio"],
)  # fmt: skip
def test_every_record_once_in_order_on_the_loop_asked_for(
    server: ServerThread, tmp_path: Path, args: tuple[str, ...], shown: str
) -> None:
    out = tmp_path / "users.jsonl"
    result = run(server, out, *args)
    assert result.returncode == 0, result.stderr
    assert shown in result.stderr
    assert TOKEN not in result.stderr
    got = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    assert got == expected(server)
    assert len(got) > 7 * 3  # several pages


@pytest.fixture
def without_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import uvloop`` fails, as on a platform it does not support."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "uvloop.py").write_text("raise ImportError('no uvloop on this platform')\n")
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def test_uvloop_asked_for_but_missing_is_one_line_and_exit_2(
    server: ServerThread, tmp_path: Path, without_uvloop: dict[str, str]
) -> None:
    server.stats.reset()
    out = tmp_path / "users.jsonl"
    result = run(server, out, "--loop", "uvloop", env=without_uvloop)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "asyncfetch: error: --loop uvloop: uvloop is not installed (pip install uvloop; it "
        "runs on CPython on Linux and macOS), or use --loop asyncio"
    ]
    assert server.stats.requests == 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "blocker"]


def test_auto_without_uvloop_runs_on_asyncio(
    server: ServerThread, tmp_path: Path, without_uvloop: dict[str, str]
) -> None:
    out = tmp_path / "users.jsonl"
    result = run(server, out, env=without_uvloop)
    assert result.returncode == 0, result.stderr
    assert ASYNCIO in result.stderr
    assert [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()] == expected(server)


def test_a_run_collects_garbage_less_often_and_puts_the_settings_back() -> None:
    """The CLI's runs raise the youngest generation's threshold and freeze what the
    imports made (``_cli/_loop.py``); a process running the CLI in process gets its
    own settings back, however the run ends."""
    from asyncfetch._cli._loop import GC_THRESHOLD, run

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert frozen == 0  # pytest freezes nothing

    async def during() -> tuple[tuple[int, int, int], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    threshold, frozen_during = run(during())
    assert threshold == (max(GC_THRESHOLD, before[0]), *before[1:])
    assert frozen_during > frozen
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)

    async def failing() -> None:
        raise RuntimeError("the fetch failed")

    with pytest.raises(RuntimeError, match="the fetch failed"):
        run(failing())
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, frozen)
