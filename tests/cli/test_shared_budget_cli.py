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


def test_a_state_folder_that_cannot_hold_the_budget_file_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    environment["ASYNCFETCH_STATE_DIR"] = str(not_a_folder / "state")
    with ServerThread(users=50, token=TOKEN) as server:
        out = tmp_path / "users.jsonl"
        run = subprocess.run(
            [sys.executable, "-m", "asyncfetch", "users", "--base-url", server.base_url,
             "--token", TOKEN, "--shared-budget", "--out", str(out)],
            env=environment, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert run.stderr.splitlines() == [
            f"asyncfetch: error: shared_budget: cannot open the budget file in "
            f"{not_a_folder / 'state'}: Not a directory"
        ]
        assert server.server.stats.requests == 0
        assert not out.exists()
