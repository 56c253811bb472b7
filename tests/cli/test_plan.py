"""A fetching command in three steps (issue 10): a plan from the options alone,
the run, the report; and the command's defaults taken from the library's."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import click
import pytest

from asyncfetch import IntercomClient, Retries
from asyncfetch._cli import cli
from asyncfetch._cli._run import LineUsageError, plan_fetch, users_by

OPTIONS: dict[str, Any] = {
    "base_url": "http://127.0.0.1:9",  # nothing listens: a plan sends nothing
    "token": "tok",
    "out_path": "-",
    "out_dir": None,
    "format_name": "jsonl",
    "fields": None,
    "resume": False,
    "restart": False,
    "restart_on_change": False,
    "stats_path": None,
    "per_page": 50,
    "concurrency": 4,
    "rate": None,
    "timeout": 30.0,
    "retries": 5,
    "max_retry_wait": 120.0,
    "keep_duplicates": False,
    "allow_insecure_http": False,
    "verbose": 0,
    "quiet": True,
}


def defaults(command: str) -> dict[str, Any]:
    group = cli
    assert isinstance(group, click.Group)
    return {param.name: param.default for param in group.commands[command].params}


@pytest.mark.parametrize("command", ["users", "company-users", "companies", "contacts", "tags"])
def test_the_commands_defaults_are_the_librarys(command: str) -> None:
    library = {
        name: parameter.default
        for name, parameter in inspect.signature(IntercomClient).parameters.items()
    }
    retries = Retries()
    options = defaults(command)
    for name in ("base_url", "per_page", "concurrency", "timeout"):
        if name in options:
            assert options[name] == library[name], name
    assert options["retries"] == retries.attempts
    if "max_retry_wait" in options:
        assert options["max_retry_wait"] == retries.max_wait


def test_a_plan_decides_the_files_and_touches_none(tmp_path: Path) -> None:
    out_dir = tmp_path / "not-made-yet"
    specs = [users_by("tag_id", "1", scroll=False), users_by("tag_id", "2", scroll=False)]
    plan = plan_fetch(specs, **{**OPTIONS, "out_dir": str(out_dir)})
    assert not out_dir.exists()
    assert plan.paths == [str(out_dir / "users-tag-1.jsonl"), str(out_dir / "users-tag-2.jsonl")]
    assert plan.outputs == plan.paths
    assert (plan.merged, plan.resumable) == (False, True)
    assert plan.client.stats.requests == 0


def test_several_lists_to_one_file_are_merged_and_cannot_be_resumed() -> None:
    specs = [users_by("tag_id", "1", scroll=False), users_by("tag_id", "2", scroll=False)]
    plan = plan_fetch(specs, **{**OPTIONS, "out_path": "all.jsonl"})
    assert plan.paths == ["all.jsonl", "all.jsonl"]
    assert plan.outputs == ["all.jsonl"]
    assert (plan.merged, plan.resumable) == (True, False)
    with pytest.raises(LineUsageError, match="--resume needs a regular file per list"):
        plan_fetch(specs, **{**OPTIONS, "out_path": "all.jsonl", "resume": True})
