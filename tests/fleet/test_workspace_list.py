"""One list of a workspace, as a fleet worker syncs it: a stopped run continued."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncfetch import open_sink
from asyncfetch._fleet._config import WorkspaceSpec, parse_list
from asyncfetch._fleet._workspace import sync_workspace_list, workspace_client
from asyncfetch.testing import ServerConfig, ServerThread

from .helpers import assert_tables_exact

pytestmark = pytest.mark.anyio

TOKEN = "delta-secret-token-000444"


class Stop(Exception):
    """The worker dies here (a test's stand-in for SIGKILL between two pages)."""


async def test_a_run_stopped_in_the_scroll_past_the_page_cap_is_started_afresh(
    tmp_path: Path,
) -> None:
    # 300 users, page-numbered listing capped at 100 records (5 pages of 20): the
    # list goes on by the scroll after page 5. The CLI would refuse to continue
    # such a run ("--restart starts it afresh"); a fleet worker has nobody to
    # tell, so it starts the list afresh, and the tables come out exact.
    config = ServerConfig(users=300, seed=4, token=TOKEN, page_cap_records=100)
    with ServerThread(config) as server:
        workspace = WorkspaceSpec(
            name="delta",
            base_url=server.base_url,
            token_env="DELTA_TOKEN",
            lists=(parse_list("users"),),
            per_page=20,
        )
        db = str(tmp_path / "fleet.db")

        def stop_in_the_scroll(done: int) -> None:
            if done == 7:  # 5 numbered pages, then 2 scroll batches
                raise Stop

        client = workspace_client(workspace, environ={"DELTA_TOKEN": TOKEN})
        async with open_sink(db, workspace="delta") as sink, client:
            with pytest.raises(Stop):
                await sync_workspace_list(
                    client, sink, workspace, workspace.lists[0], on_page=stop_in_the_scroll
                )
        scrolled = server.stats.requests

        client = workspace_client(workspace, environ={"DELTA_TOKEN": TOKEN})
        async with open_sink(db, workspace="delta") as sink, client:
            synced = await sync_workspace_list(client, sink, workspace, workspace.lists[0])

        assert synced.items == 300
        assert not synced.resumed  # started afresh, not continued
        assert server.stats.requests > scrolled
        assert_tables_exact(f"sqlite://{tmp_path / 'fleet-delta.db'}", server, ["users"])
