"""``--shared-budget``: two ``asyncfetch`` runs on one token share its rate budget (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from asyncfetch.testing import ServerThread

from ..helpers import ids

TOKEN = "cli-shared-budget-token-5512"


def test_two_runs_with_shared_budget_share_the_window(tmp_path: Path) -> None:
    state = tmp_path / "state"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    environment["ASYNCFETCH_STATE_DIR"] = str(state)
    with ServerThread(users=500, rate_limit=20, rate_window_seconds=1, token=TOKEN) as server:
        outs = [tmp_path / f"users-{n}.jsonl" for n in range(2)]
        command = [
            sys.executable, "-m", "asyncfetch", "users", "--base-url", server.base_url,
            "--token", TOKEN, "--per-page", "20", "--concurrency", "8", "--shared-budget",
            "--quiet", "--out",
        ]  # fmt: skip
        runs = [
            subprocess.Popen(
                [*command, str(out)], env=environment, stderr=subprocess.PIPE, text=True
            )
            for out in outs
        ]
        for run in runs:
            _, stderr = run.communicate(timeout=60)
            assert run.returncode == 0, stderr
            assert stderr == ""
        stats = server.server.stats
        assert stats.statuses[429] == 0, stats.statuses
        assert max(stats.windows.values()) <= 20, stats.windows
        for out in outs:
            got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
            assert ids(got) == ids(server.server.workspace.users)
    (budget,) = state.iterdir()
    assert TOKEN.encode() not in budget.read_bytes()
    assert TOKEN not in budget.name
