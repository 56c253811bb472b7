"""``asyncfetch fleet``: many workspaces, in this process or on Temporal workers.

A thin shell over ``asyncfetch._fleet`` (its public names only): FLEET.toml
and the options are checked before any request (one line, exit 2); each
workspace then ends in one line, completed or failed with its reason, and
the command exits 0 only when every workspace completed (1 otherwise).
Progress goes to stdout, failures to stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import click
import stamina.instrumentation

from .. import FleetError, SinkError, open_sink
from .._fleet import (
    DEFAULT_TASK_QUEUE,
    FleetSpec,
    WorkspaceResult,
    load_fleet,
    run_local,
    run_worker,
    start_and_wait,
)
from ._loop import run as run_on_loop
from ._run import LineUsageError, cli_errors

__all__ = ["fleet"]


@click.group()
def fleet() -> None:
    """Sync many workspaces (FLEET.toml): in this process (--local), or on
    Temporal workers (fleet worker) started by `fleet run --temporal`."""


_TEMPORAL = click.option(
    "--temporal",
    "target",
    metavar="HOST:PORT",
    help="The Temporal server's frontend (such as 127.0.0.1:7233).",
)
_TASK_QUEUE = click.option(
    "--task-queue",
    default=DEFAULT_TASK_QUEUE,
    show_default=True,
    help="The Temporal task queue the workers poll.",
)


@fleet.command()
@click.argument("fleet_file", metavar="FLEET.toml")
@click.option("--local", is_flag=True, help="Every workspace in this process; no Temporal.")
@_TEMPORAL
@_TASK_QUEUE
@click.option("--db", "db_url", metavar="URL", help="With --local: the database (as for --db).")
@click.option("--wait", is_flag=True, help="With --temporal: wait for every workspace to end.")
def run(
    fleet_file: str,
    local: bool,
    target: str | None,
    task_queue: str,
    db_url: str | None,
    wait: bool,
) -> None:
    """Sync every workspace of FLEET.toml: exit 0 when all completed."""
    if local == (target is not None):
        raise LineUsageError("give --local (this process) or --temporal HOST:PORT (the workers)")
    if local:
        if db_url is None:
            raise LineUsageError("--local needs --db URL (the workers' --db, with --temporal)")
        if wait:
            raise LineUsageError("--wait is for --temporal: --local always waits")
        spec = _load(fleet_file)
        _check_db(db_url)
        missing = [w.token_env for w in spec.workspaces if not os.environ.get(w.token_env)]
        if missing:
            raise LineUsageError(
                f"{missing[0]} is not set: it holds a workspace's token ({fleet_file})"
            )
        # Each workspace's failure is its line; stamina's own log line per retry is noise.
        stamina.instrumentation.set_on_retry_hooks([])
        with cli_errors():
            results = run_on_loop(run_local(spec, db_url, on_done=_show_local))
        sys.exit(0 if all(result.error is None for result in results) else 1)
    assert target is not None
    if db_url is not None:
        raise LineUsageError(
            "--db is the workers' (fleet worker --db): fleet run --temporal takes none"
        )
    spec = _load(fleet_file)
    with _exit_at_once():
        _run_temporal(spec, target, task_queue, wait)


def _run_temporal(spec: FleetSpec, target: str, task_queue: str, wait: bool) -> None:
    with cli_errors(), _fleet_errors():
        outcomes = asyncio.run(
            start_and_wait(
                target,
                spec,
                task_queue=task_queue,
                wait=wait,
                on_started=_show_started,
                on_progress=_show_progress,
            )
        )
    if not wait:
        return
    for outcome in outcomes:
        if outcome.error is None:
            progress = outcome.progress
            pages = sum(report.pages for report in progress.done) if progress else 0
            items = sum(report.items for report in progress.done) if progress else 0
            click.echo(f"{outcome.name}: completed: {pages:,} pages, {items:,} records")
        else:
            click.echo(f"asyncfetch: error: {outcome.name}: {outcome.error}", err=True)
    sys.exit(0 if all(outcome.error is None for outcome in outcomes) else 1)


@fleet.command()
@_TEMPORAL
@_TASK_QUEUE
@click.option("--db", "db_url", metavar="URL", required=True, help="The database (as for --db).")
def worker(target: str | None, task_queue: str, db_url: str) -> None:
    """Run a fleet worker: the workflows and activities `fleet run --temporal` starts.

    Each workspace's token is read here, from the variable FLEET.toml names.
    """
    if target is None:
        raise LineUsageError("fleet worker needs --temporal HOST:PORT")
    _check_db(db_url)
    stamina.instrumentation.set_on_retry_hooks([])
    with _exit_at_once(), cli_errors(), _fleet_errors():
        asyncio.run(run_worker(target, task_queue=task_queue, db_url=db_url))


@contextmanager
def _exit_at_once() -> Iterator[None]:
    """End the process as soon as the Temporal work is done, without the
    interpreter's teardown: the SDK's Rust threads can outlive it and abort the
    process (SIGABRT, "PyGILState_Release ... finalizing") after a successful
    run, temporalio/sdk-python#300."""
    code = 0
    try:
        yield
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a bug: its traceback, then out the same way
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _load(path: str) -> FleetSpec:
    try:
        return load_fleet(path)
    except FleetError as exc:
        raise LineUsageError(exc.message) from None


def _check_db(url: str) -> None:
    try:
        open_sink(url)
    except SinkError as exc:
        raise LineUsageError(exc.message) from None


@contextmanager
def _fleet_errors() -> Iterator[None]:
    """A ``FleetError`` (no SDK, Temporal unreachable) is one line, exit 2."""
    try:
        yield
    except FleetError as exc:
        click.echo(f"asyncfetch: error: {exc.message}", err=True)
        sys.exit(2)


def _show_local(result: WorkspaceResult) -> None:
    if result.error is None:
        click.echo(f"{result.name}: completed: {result.pages:,} pages, {result.items:,} records")
    else:
        click.echo(f"asyncfetch: error: {result.name}: {result.error}", err=True)


def _show_started(name: str, workflow_id: str, started: bool) -> None:
    state = "started" if started else "already running, followed"
    click.echo(f"{name}: {state} (workflow {workflow_id})")


def _show_progress(name: str, line: str) -> None:
    click.echo(f"{name}: {line}")
