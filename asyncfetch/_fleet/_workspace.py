"""A workspace's sync, the same on a Temporal worker and in one process (``--local``).

``workspace_client`` reads the workspace's token from the environment variable
FLEET.toml names, where the sync runs (the worker, or the ``--local``
process): the token is never in a file, an argument or a workflow's input.
One client per workspace, shared by its lists: one connection pool and one
rate budget, the workspace's own (each Intercom workspace has its own).

``sync_workspace_list`` is one list into the workspace's own tables (a
schema, or a file beside the given one: ``open_sink(url, workspace=...)``),
by the sink's ``sync_list``: the run continues from the database's record of
its last committed page, so a rerun after a dead worker neither loses nor
doubles a record. ``run_local`` syncs a whole fleet in this process.

``failure_line`` turns what stopped a workspace into its one line, and
``is_permanent`` says whether trying again could help: a token refused (401,
403), a missing token variable, a bad database URL fail the workspace at once;
a server down, a lost connection, a database locked by a dying worker are
tried again.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio

from .. import (
    AsyncFetchError,
    AuthenticationError,
    IntercomClient,
    InvalidRequestError,
    ListSynced,
    NotFoundError,
    PageLimitError,
    SchemaVersionError,
    Sink,
    SinkRun,
    SinkURLError,
    UnsafeURLError,
    open_sink,
    sync_list,
)
from .._exceptions import FleetError, FleetTokenError
from .._redact import redact
from ._config import FleetSpec, ListSpec, WorkspaceSpec

__all__ = [
    "WorkspaceResult",
    "failure_line",
    "is_permanent",
    "run_local",
    "sync_workspace_list",
    "workspace_client",
    "workspace_token",
]

# Failures another attempt would meet again: the workspace fails at once. (A list
# that ended short, IncompleteListError, may be whole on another try: retried.)
_PERMANENT = (
    AuthenticationError,
    NotFoundError,
    InvalidRequestError,
    PageLimitError,
    UnsafeURLError,
    SinkURLError,
    SchemaVersionError,
    FleetError,
)


def workspace_token(token_env: str, environ: Mapping[str, str] | None = None) -> str:
    """A workspace's token, read from ``$token_env`` here and now (a secret
    file's trailing newline off); ``""`` if unset."""
    return (os.environ if environ is None else environ).get(token_env, "").strip()


def workspace_client(
    workspace: WorkspaceSpec, *, environ: Mapping[str, str] | None = None
) -> IntercomClient:
    """The workspace's client, its token read from ``$token_env`` here and now."""
    token = workspace_token(workspace.token_env, environ)
    if not token:
        raise FleetTokenError(
            f"{workspace.token_env} is not set where this workspace is synced "
            "(it holds the workspace's token)"
        )
    try:
        return IntercomClient(token=token, base_url=workspace.base_url, per_page=workspace.per_page)
    except ValueError as exc:
        raise FleetTokenError(f"{workspace.token_env}: {exc}") from None


async def sync_workspace_list(
    client: IntercomClient,
    sink: Sink,
    workspace: WorkspaceSpec,
    spec: ListSpec,
    *,
    on_page: Callable[[int], object] | None = None,
) -> ListSynced:
    """``spec``'s list of ``workspace`` into ``sink`` (opened for the workspace),
    started or continued; ``on_page(pages done in the run)`` after each page."""

    def on_begun(run: SinkRun) -> Callable[[object], None] | None:
        if on_page is None:
            return None
        done = run.pages

        def written(_page: object) -> None:
            nonlocal done
            done += 1
            on_page(done)

        return written

    def requests() -> int:
        return client.stats.requests

    async def sync(*, restart: bool) -> ListSynced:
        return await sync_list(
            sink,
            lambda: spec.make(client),
            list_name=spec.name,
            kind=spec.kind,
            whole=spec.whole,
            per_page=workspace.per_page,
            base_url=workspace.base_url,
            requests=requests,
            display_name=f"{workspace.name}: {spec.name}",
            restart=restart,
            on_begun=on_begun,
        )

    try:
        return await sync(restart=False)
    except PageLimitError as exc:
        if not exc.continued:
            raise
        # A run stopped after its list went on by the scroll (past the page cap)
        # cannot be continued by page; the CLI says --restart, the fleet has
        # nobody to say it to: it starts the list afresh, once.
        return await sync(restart=True)


def is_permanent(exc: BaseException) -> bool:
    """Whether ``exc`` (or, for a group, its first failure) would stop another
    attempt the same way."""
    if isinstance(exc, BaseExceptionGroup):
        exc = _first_leaf(exc)
    return isinstance(exc, _PERMANENT)


def failure_line(exc: BaseException, *, secret: str = "") -> str:
    """What stopped a workspace, on one line, never the token (``secret``)."""
    if isinstance(exc, BaseExceptionGroup):
        exc = _first_leaf(exc)
    text = str(exc) if isinstance(exc, AsyncFetchError) else f"{type(exc).__name__}: {exc}"
    line = " ".join(text.split()) or type(exc).__name__
    return redact(line, secret, "***") if secret else line


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


@dataclass(frozen=True, slots=True)
class WorkspaceResult:
    """How a workspace's sync ended: ``error`` is its one line, or ``None``."""

    name: str
    pages: int = 0
    items: int = 0
    error: str | None = None


async def run_local(
    fleet: FleetSpec,
    db_url: str,
    *,
    on_done: Callable[[WorkspaceResult], Awaitable[None] | None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[WorkspaceResult]:
    """Every workspace of ``fleet`` in this process, side by side; each one's
    lists side by side on its one client and its one sink. A workspace that
    fails does not stop the others. The results in the file's order."""
    results: dict[str, WorkspaceResult] = {}

    async def one(workspace: WorkspaceSpec) -> None:
        secret = workspace_token(workspace.token_env, environ)
        try:
            result = await _local_workspace(workspace, db_url, environ)
        except Exception as exc:
            result = WorkspaceResult(workspace.name, error=failure_line(exc, secret=secret))
        results[workspace.name] = result
        if on_done is not None:
            shown = on_done(result)
            if shown is not None:
                await shown

    async with anyio.create_task_group() as group:
        for workspace in fleet.workspaces:
            group.start_soon(one, workspace)
    return [results[workspace.name] for workspace in fleet.workspaces]


async def _local_workspace(
    workspace: WorkspaceSpec, db_url: str, environ: Mapping[str, str] | None
) -> WorkspaceResult:
    client = workspace_client(workspace, environ=environ)
    synced: list[ListSynced] = []

    async def one(spec: ListSpec) -> None:
        synced.append(await sync_workspace_list(client, sink, workspace, spec))

    async with open_sink(db_url, workspace=workspace.name) as sink, client:
        try:
            async with anyio.create_task_group() as group:
                for spec in workspace.lists:
                    group.start_soon(one, spec)
        except BaseExceptionGroup as group_error:
            raise _first_leaf(group_error) from None
    return WorkspaceResult(
        workspace.name,
        pages=sum(each.run_pages for each in synced),
        items=sum(each.run_items for each in synced),
    )
