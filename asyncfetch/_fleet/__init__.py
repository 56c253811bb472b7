"""The fleet: many Intercom workspaces synced into one database (``asyncfetch fleet``).

``_config.py`` reads FLEET.toml (the workspaces, their lists, the NAME of each
token's variable, never a token); ``_workspace.py`` syncs a workspace's lists
on one client into its own schema or file, by the sink's ``sync_list``, and
``run_local`` a whole fleet in one process; ``_temporal_workflow.py`` and
``_temporal.py`` run the same work on Temporal (a workflow per workspace, an
activity per list, retried on another worker when one dies).

This room imports the public names of ``asyncfetch``, the top-level modules
and the sink; ``temporalio`` only in ``_temporal*.py``, loaded by the
functions below when first called, so that everything else works without the
``temporal`` extra. The CLI (``_cli/_fleet.py``) imports this package's
``__all__`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._exceptions import FleetError
from ._config import FleetSpec, ListSpec, WorkspaceSpec, load_fleet, parse_fleet, parse_list
from ._workspace import WorkspaceResult, run_local, workspace_client

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "FleetSpec",
    "ListSpec",
    "WorkspaceResult",
    "WorkspaceSpec",
    "load_fleet",
    "parse_fleet",
    "parse_list",
    "run_local",
    "run_worker",
    "start_and_wait",
    "workflow_id",
    "workspace_client",
]

DEFAULT_TASK_QUEUE = "asyncfetch"


def _sdk() -> ModuleType:
    """``_temporal.py``, or ``FleetError`` (one line) without the extra."""
    try:
        from . import _temporal
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "temporalio":
            raise FleetError(
                "--temporal needs the Temporal SDK: pip install 'asyncfetch[temporal]' "
                "(or run the fleet in this process: fleet run --local)"
            ) from None
        raise
    return _temporal


def workflow_id(name: str) -> str:
    """The workflow id of workspace ``name``'s sync: the same for every ``fleet run``."""
    return f"asyncfetch-sync-{name}"


async def run_worker(target: str, *, task_queue: str, db_url: str) -> None:
    """A fleet worker on the Temporal server at ``target`` until cancelled."""
    await _sdk().run_worker(target, task_queue=task_queue, db_url=db_url)


async def start_and_wait(
    target: str,
    fleet: FleetSpec,
    *,
    task_queue: str,
    wait: bool,
    on_started: Callable[[str, str, bool], None],
    on_progress: Callable[[str, str], None],
) -> list[Any]:
    """Start (or find running) each workspace's workflow; with ``wait``, wait for
    all and return their outcomes (``.name``, ``.error``, ``.progress``)."""
    temporal = _sdk()
    client = await temporal.connect(target)
    started = await temporal.start_fleet(client, fleet, task_queue=task_queue)
    for outcome, _handle in started:
        on_started(outcome.name, outcome.workflow_id, outcome.started)
    if not wait:
        return [outcome for outcome, _handle in started]
    outcomes: list[Any] = await temporal.wait_fleet(started, on_progress=on_progress)
    return outcomes
