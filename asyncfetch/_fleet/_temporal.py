"""The fleet on Temporal: the worker (``fleet worker``) and the starter (``fleet run``).

The only modules of asyncfetch that import ``temporalio`` are this one and
``_temporal_workflow.py`` (the workflow itself, kept free of everything else
for the sandbox): without the extra (``pip install 'asyncfetch[temporal]'``)
the rest of the package, ``fleet run --local`` included, works.

The worker runs ``SyncWorkspace`` workflows and their ``sync_list``
activities. It holds one client per workspace (``_Clients``: one connection
pool, one rate budget), shared by whatever activities of that workspace it
runs at once and closed when the last of them ends; the token is read from
the workspace's ``token_env`` here, on the worker, and nowhere else. Each
activity opens the workspace's own tables (``open_sink(url, workspace=...)``),
heartbeats with its pages done (after every page, and every second while a
page is awaited, so that a rate-limit pause is not taken for a dead worker),
and on a retry continues from the database's record of the last committed
page. A failure is raised as an ``ApplicationError`` carrying its one line,
never the token; non-retryable when another attempt would meet it again.

The starter starts one workflow per workspace, its id derived from the
workspace's name (``asyncfetch-sync-<name>``): a second ``fleet run`` while
one runs finds it running and attaches to it instead of starting another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta

import anyio
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .. import IntercomClient, open_sink
from .._exceptions import FleetError
from . import workflow_id
from ._config import FleetSpec, WorkspaceSpec, parse_list
from ._temporal_workflow import (
    PERMANENT,
    ListJob,
    ListReport,
    SyncWorkspace,
    WorkspaceJob,
    WorkspaceProgress,
)
from ._workspace import (
    failure_line,
    is_permanent,
    sync_workspace_list,
    workspace_client,
    workspace_token,
)

__all__ = [
    "FleetActivities",
    "WorkspaceOutcome",
    "connect",
    "run_worker",
    "start_fleet",
    "wait_fleet",
]

_RETRYABLE = "AsyncFetchRetryable"
STICKY_TIMEOUT = timedelta(seconds=2)


async def connect(target: str) -> Client:
    """A client of the Temporal server at ``HOST:PORT``; ``FleetError`` (one line) if
    it cannot be reached."""
    with _server_errors(f"cannot connect to Temporal at {target}"):
        return await Client.connect(target)


@contextmanager
def _server_errors(what: str) -> Iterator[None]:
    """The SDK's errors from the server (an ``RPCError``: the namespace missing,
    the server gone; a ``RuntimeError`` from the worker's own checks of it) as a
    ``FleetError``: one line, ``what: reason``."""
    try:
        yield
    except (RPCError, RuntimeError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FleetError(f"{what}: {reason}") from None


def _job(workspace: WorkspaceSpec) -> WorkspaceJob:
    return WorkspaceJob(
        name=workspace.name,
        base_url=workspace.base_url,
        token_env=workspace.token_env,
        lists=[spec.name for spec in workspace.lists],
        per_page=workspace.per_page,
    )


def _workspace(job: WorkspaceJob) -> WorkspaceSpec:
    return WorkspaceSpec(
        name=job.name,
        base_url=job.base_url,
        token_env=job.token_env,
        lists=tuple(parse_list(each) for each in job.lists),
        per_page=job.per_page,
    )


class _Clients:
    """One client per workspace on this worker, opened by its first activity and
    closed when its last one ends: the workspace's one rate budget here."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[IntercomClient, int]] = {}
        self._lock = anyio.Lock()

    @asynccontextmanager
    async def of(self, workspace: WorkspaceSpec) -> AsyncIterator[IntercomClient]:
        async with self._lock:
            if workspace.name in self._open:
                client, users = self._open[workspace.name]
            else:
                client, users = workspace_client(workspace), 0
                await client.__aenter__()
            self._open[workspace.name] = (client, users + 1)
        try:
            yield client
        finally:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    client, users = self._open.pop(workspace.name)
                    if users > 1:
                        self._open[workspace.name] = (client, users - 1)
                    else:
                        await client.aclose()


class FleetActivities:
    """The ``sync_list`` activity, bound to this worker's database and clients."""

    def __init__(self, db_url: str) -> None:
        self._db_url = db_url
        self._clients = _Clients()

    @activity.defn(name="sync_list")
    async def sync_list(self, job: ListJob) -> ListReport:
        info = activity.info()
        secret = workspace_token(job.workspace.token_env)
        try:
            workspace = _workspace(job.workspace)
            spec = parse_list(job.list_name)
            pages_done = 0
            if info.heartbeat_details:
                # What the attempt before said it had done; the database says where to go on.
                pages_done = int(info.heartbeat_details[0])

            def on_page(done: int) -> None:
                nonlocal pages_done
                pages_done = done
                activity.heartbeat(done)

            async with self._clients.of(workspace) as client, anyio.create_task_group() as beat:
                beat.start_soon(_keep_beating, lambda: pages_done)
                async with open_sink(self._db_url, workspace=workspace.name) as sink:
                    synced = await sync_workspace_list(
                        client, sink, workspace, spec, on_page=on_page
                    )
                beat.cancel_scope.cancel()
        except Exception as exc:
            line = failure_line(exc, secret=secret)
            raise ApplicationError(
                line,
                type=PERMANENT if is_permanent(exc) else _RETRYABLE,
                non_retryable=is_permanent(exc),
            ) from None
        return ListReport(
            list_name=spec.name,
            pages=synced.run_pages,
            items=synced.run_items,
            attempt=info.attempt,
        )


async def _keep_beating(pages_done: Callable[[], int]) -> None:
    """A heartbeat every second while a page is awaited (a rate-limit pause)."""
    while True:
        await anyio.sleep(1)
        activity.heartbeat(pages_done())


def _runner() -> SandboxedWorkflowRunner:
    # The workflow module imports only temporalio and the standard library; its
    # package (asyncfetch, aiohttp below it) is loaded once, outside the sandbox.
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("asyncfetch")
    )


async def run_worker(target: str, *, task_queue: str, db_url: str) -> None:
    """Run a worker until cancelled (Ctrl-C, SIGTERM): the workflows and activities."""
    client = await connect(target)
    activities = FleetActivities(db_url)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[SyncWorkspace],
        activities=[activities.sync_list],
        workflow_runner=_runner(),
        # A workflow's next task waits this long for the worker that ran its last
        # one (its cache) before any worker may take it: a dead worker's
        # workflows move on after 2 s instead of the SDK's 10 (their histories
        # are a few events, replayed in no time).
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
    )
    with _server_errors(f"the worker stopped (Temporal at {target})"):
        await worker.run()


@dataclass(frozen=True, slots=True)
class WorkspaceOutcome:
    """A workspace's workflow: ``started`` (or found running), then its end."""

    name: str
    workflow_id: str
    started: bool
    error: str | None = None
    progress: WorkspaceProgress | None = None


async def start_fleet(
    client: Client, fleet: FleetSpec, *, task_queue: str
) -> list[tuple[WorkspaceOutcome, WorkflowHandle[SyncWorkspace, WorkspaceProgress]]]:
    """Start a workflow per workspace, or find the one running under its id."""
    started = []
    for workspace in fleet.workspaces:
        wid = workflow_id(workspace.name)
        try:
            with _server_errors(f"{workspace.name}: cannot start its workflow"):
                handle = await client.start_workflow(
                    SyncWorkspace.run,
                    _job(workspace),
                    id=wid,
                    task_queue=task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                )
            new = True
        except WorkflowAlreadyStartedError:
            handle = client.get_workflow_handle_for(SyncWorkspace.run, wid)
            new = False
        started.append((WorkspaceOutcome(workspace.name, wid, new), handle))
    return started


async def wait_fleet(
    started: list[tuple[WorkspaceOutcome, WorkflowHandle[SyncWorkspace, WorkspaceProgress]]],
    *,
    on_progress: Callable[[str, str], None],
) -> list[WorkspaceOutcome]:
    """Wait for every workflow; ``on_progress(name, line)`` as lists complete."""
    outcomes: dict[str, WorkspaceOutcome] = {}

    async def watch(
        outcome: WorkspaceOutcome, handle: WorkflowHandle[SyncWorkspace, WorkspaceProgress]
    ) -> None:
        shown = [0]  # the lists reported so far
        async with anyio.create_task_group() as group:
            group.start_soon(_report_progress, outcome.name, handle, on_progress, shown)
            try:
                result = await handle.result()
                # What finished between the last query and the end.
                _show_done(outcome.name, result, on_progress, shown)
                outcomes[outcome.name] = WorkspaceOutcome(
                    outcome.name, outcome.workflow_id, outcome.started, progress=result
                )
            except RPCError as exc:
                reason = " ".join(str(exc).split())
                raise FleetError(f"{outcome.name}: lost the Temporal server: {reason}") from None
            except WorkflowFailureError as exc:
                cause = exc.cause
                reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
                outcomes[outcome.name] = WorkspaceOutcome(
                    outcome.name,
                    outcome.workflow_id,
                    outcome.started,
                    error=" ".join(reason.split()) or type(cause).__name__,
                )
            group.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as group:
            for outcome, handle in started:
                group.start_soon(watch, outcome, handle)
    except BaseExceptionGroup as errors:
        # The server lost: one workspace's FleetError says so (the task groups
        # wrap it, once per level), not the group.
        lost = errors.subgroup(lambda exc: isinstance(exc, FleetError))
        if lost is None:
            raise
        first: BaseException = lost
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [outcomes[outcome.name] for outcome, _ in started]


async def _report_progress(
    name: str,
    handle: WorkflowHandle[SyncWorkspace, WorkspaceProgress],
    on_progress: Callable[[str, str], None],
    shown: list[int],
) -> None:
    while True:
        await anyio.sleep(0.5)
        try:
            progress = await handle.query(SyncWorkspace.progress)
        except Exception:  # not yet picked up by a worker, or ended: next time
            continue
        if progress is not None:
            _show_done(name, progress, on_progress, shown)


def _show_done(
    name: str,
    progress: WorkspaceProgress,
    on_progress: Callable[[str, str], None],
    shown: list[int],
) -> None:
    """A line for each list completed since the last one shown."""
    for report in progress.done[shown[0] :]:
        shown[0] += 1
        on_progress(
            name,
            f"{report.list_name} done ({shown[0]}/{progress.lists} lists): "
            f"{report.pages:,} pages, {report.items:,} records",
        )
