"""The ``SyncWorkspace`` workflow: a workspace's lists, one activity each.

This module is what Temporal's workflow sandbox loads (and reloads for every
replay): it imports nothing but the standard library and ``temporalio``, and
does nothing but decide, deterministically, which activity runs next. The
work (HTTP, the database) is in the activities (``_temporal.py``).

The input, ``WorkspaceJob``, is the workspace as FLEET.toml says it, with
``token_env`` (the NAME of the variable holding the token on the workers),
never the token: a workflow's input, its activities' inputs and results are
kept in Temporal's history for good and shown in its UI.

A workspace's lists run one after another. They share the workspace's rate
budget, which one list's window of requests already fills: side by side,
they would finish no sooner, and two workers each holding a client of the
workspace would each believe they had the whole budget. Workspaces are what
run side by side, on every worker.

Each list's activity heartbeats with its pages done; a worker that dies stops
heartbeating, and after ``HEARTBEAT_TIMEOUT`` Temporal gives the activity to
another worker, which continues from the database's record of the last
committed page. A failure another attempt would meet again (a refused token,
a missing token variable, a bad database URL) is raised non-retryable by the
activity and fails the workflow at once with its one-line reason; others are
tried ``ATTEMPTS`` times in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

__all__ = [
    "ATTEMPTS",
    "HEARTBEAT_TIMEOUT",
    "ListJob",
    "ListReport",
    "SyncWorkspace",
    "WorkspaceJob",
    "WorkspaceProgress",
]

HEARTBEAT_TIMEOUT = timedelta(seconds=6)
ATTEMPTS = 6
# The error type of a failure another attempt would meet again.
PERMANENT = "AsyncFetchPermanent"
RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=ATTEMPTS,
    non_retryable_error_types=[PERMANENT],
)


@dataclass(frozen=True)
class WorkspaceJob:
    """A workspace to sync: FLEET.toml's table, the token's variable, not the token."""

    name: str
    base_url: str
    token_env: str
    lists: list[str]
    per_page: int = 50


@dataclass(frozen=True)
class ListJob:
    """One list of a workspace, the activity's input."""

    workspace: WorkspaceJob
    list_name: str


@dataclass(frozen=True)
class ListReport:
    """A list synced: the run's pages and records (earlier attempts' included)."""

    list_name: str
    pages: int
    items: int
    attempt: int


@dataclass
class WorkspaceProgress:
    """What the workflow has done so far (its ``progress`` query, its result)."""

    name: str
    lists: int
    done: list[ListReport] = field(default_factory=list)
    current: str | None = None


@workflow.defn(name="SyncWorkspace")
class SyncWorkspace:
    def __init__(self) -> None:
        self._progress: WorkspaceProgress | None = None

    @workflow.run
    async def run(self, job: WorkspaceJob) -> WorkspaceProgress:
        self._progress = progress = WorkspaceProgress(name=job.name, lists=len(job.lists))
        for list_name in job.lists:
            progress.current = list_name
            try:
                report = await workflow.execute_activity(
                    "sync_list",
                    ListJob(workspace=job, list_name=list_name),
                    result_type=ListReport,
                    start_to_close_timeout=timedelta(hours=24),
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RETRY_POLICY,
                )
            except ActivityError as exc:
                cause = exc.cause
                reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
                if isinstance(cause, ApplicationError) and cause.type != PERMANENT:
                    reason += f" (after {ATTEMPTS} attempts)"
                raise ApplicationError(
                    f"{list_name}: {reason}", type=PERMANENT, non_retryable=True
                ) from None
            progress.done.append(report)
        progress.current = None
        return progress

    @workflow.query
    def progress(self) -> WorkspaceProgress | None:
        return self._progress
