"""``asyncfetch demo``: the main job on its embedded default, no token and no network.

Starts the bundled server on a free loopback port with realistic latency,
exports its largest tag's list (users and leads) to JSON Lines concurrently, then fetches the
same list one page after another (as every other Intercom client does) and
compares the two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import click

from .. import IntercomClient
from ..testing import IntercomServer, ServerConfig
from ._export import ExportSummary, export_jsonl
from ._progress import progress_board
from ._wording import count, times_faster

__all__ = ["run_demo"]

_DEMO_TOKEN = "demo-token"


async def run_demo(*, out_path: str, users: int, latency_ms: float, concurrency: int) -> None:
    config = ServerConfig(users=users, latency_ms=latency_ms)
    click.echo(
        f"Starting the bundled Intercom server: {count(users, 'user')}, {latency_ms:g} ms latency…"
    )
    async with IntercomServer(config) as server:
        tag_id = server.workspace.largest_tag_id
        path = Path(out_path)
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        click.echo(
            f"Fetching the users of tag {tag_id} from {server.base_url}, concurrency {concurrency}"
        )
        concurrent = await _export(server.base_url, tag_id, path, concurrency, progress=True)
        served_concurrently = server.stats.max_in_flight
        click.echo("Fetching the same list sequentially, one page after another…")
        sequential = await _export(server.base_url, tag_id, None, 1, progress=True)

    rows = [("concurrent", concurrency, concurrent), ("sequential", 1, sequential)]
    click.echo("")
    click.echo(
        f"{'fetch':<12}{'in flight':>10}{'pages':>8}{'items':>8}{'seconds':>10}{'pages/s':>10}"
    )
    for name, limit, s in rows:
        click.echo(
            f"{name:<12}{limit:>10}{s.pages:>8}{s.items:>8}{s.seconds:>10.2f}{s.pages_per_second:>10.0f}"
        )
    click.echo("")
    click.echo(
        f"Wrote {count(concurrent.items, 'record')} to {path} in {concurrent.seconds:.2f} s; "
        f"{times_faster(concurrent.seconds, sequential.seconds)} than sequential "
        f"(the server saw at most {count(served_concurrently, 'request')} in flight)."
    )


async def _export(
    base_url: str, tag_id: str, path: Path | None, concurrency: int, *, progress: bool
) -> ExportSummary:
    async with IntercomClient(
        token=_DEMO_TOKEN, base_url=base_url, concurrency=concurrency
    ) as client:
        with (
            open(path or os.devnull, "wb") as out,  # noqa: ASYNC230 - see export_jsonl
            progress_board(
                enabled=progress and sys.stderr.isatty(), stats=lambda: client.stats
            ) as board,
        ):
            on_page = board.track("concurrent" if concurrency > 1 else "sequential")
            return await export_jsonl(client.users(tag_id=tag_id), out, on_page=on_page)
