"""What a fetching CLI command does: check everything, then run the sync, then report.

Kept apart from ``_cli.py`` (which only declares commands and options) so the
command definitions stay readable in one screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import click
import orjson
import stamina.instrumentation

from ._checkpoint import CheckpointMismatch
from ._client import IntercomClient
from ._config import Retries
from ._exceptions import AsyncFetchError
from ._formats import make_format
from ._progress import progress_board
from ._sync import ListSpec, Output, Target, plan_targets, sync_merged, sync_separately
from ._wording import count, option_message

__all__ = [
    "cli_errors",
    "companies_by",
    "company_users_by",
    "contacts_list",
    "run_fetch",
    "users_by",
]

_EXTENSIONS = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv"}


def users_by(filter_name: str | None, value: str | None, *, scroll: bool) -> ListSpec:
    """``asyncfetch users``: all of them, or a tag's (``tag_id``) or a segment's."""
    always = True if scroll else None
    if filter_name is None or value is None:
        return ListSpec(
            "users", "users", lambda c: c.users(scroll=always), {"list": "users", "scroll": scroll}
        )
    label = filter_name.removesuffix("_id")
    tag_id = value if filter_name == "tag_id" else None
    segment_id = value if filter_name == "segment_id" else None
    return ListSpec(
        f"users {label} {value}",
        _slug(f"users-{label}-{value}"),
        lambda c: c.users(tag_id=tag_id, segment_id=segment_id, scroll=always),
        {"list": "users", filter_name: value, "scroll": scroll},
    )


def company_users_by(filter_name: str, value: str) -> ListSpec:
    return ListSpec(
        f"company {value} users",
        _slug(f"company-users-{filter_name.replace('_', '-')}-{value}"),
        lambda c: (
            c.company_users(id=value) if filter_name == "id" else c.company_users(company_id=value)
        ),
        {"list": "company_users", filter_name: value},
    )


def companies_by(*, tag_id: str | None, segment_id: str | None) -> ListSpec:
    return ListSpec(
        "companies",
        "companies",
        lambda c: c.companies(tag_id=tag_id, segment_id=segment_id),
        {"list": "companies", "tag_id": tag_id, "segment_id": segment_id},
    )


def contacts_list() -> ListSpec:
    return ListSpec("contacts", "contacts", lambda c: c.contacts(), {"list": "contacts"})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def run_fetch(
    specs: list[ListSpec],
    *,
    base_url: str,
    token: str | None,
    out_path: str,
    out_dir: str | None,
    format_name: str,
    fields: str | None,
    resume: bool,
    stats_path: str | None,
    per_page: int,
    concurrency: int,
    rate: float | None,
    timeout: float,
    retries: int,
    max_retry_wait: float,
    keep_duplicates: bool,
    allow_insecure_http: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Run one fetching command: every check before any request, then the fetch."""
    if not token:
        raise click.UsageError("no token: pass --token or set INTERCOM_ACCESS_TOKEN")
    try:
        client = IntercomClient(
            token=token,
            base_url=base_url,
            concurrency=concurrency,
            rate=rate,
            per_page=per_page,
            timeout=timeout,
            retries=Retries(attempts=retries, max_wait=max_retry_wait),
            keep_duplicates=keep_duplicates,
            allow_insecure_http=allow_insecure_http,
        )
        for spec in specs:
            spec.make(client)  # checks the filters; the listing itself is dropped
        fmt = make_format(format_name, fields.split(",") if fields else None)
    except ValueError as exc:
        raise click.UsageError(option_message(str(exc))) from None
    if fields and format_name != "csv":
        raise click.UsageError("--fields goes with --format csv")

    merged = out_dir is None and len(specs) > 1
    if out_dir is not None:
        if out_path != "-":
            raise click.UsageError("give --out or --out-dir, not both")
        os.makedirs(out_dir, exist_ok=True)
        paths = [os.path.join(out_dir, spec.slug + _EXTENSIONS[format_name]) for spec in specs]
    else:
        paths = [out_path] * len(specs)
    if resume and (merged or (out_path == "-" and out_dir is None)):
        raise click.UsageError(
            "--resume needs a file per list: --out FILE for one list, --out-dir for several"
        )
    for path in set(paths):
        _check_writable(path)
    extra = {
        "base_url": base_url,
        "per_page": per_page,
        "format": format_name,
        "fields": fields,
        "keep_duplicates": keep_duplicates,
    }
    try:
        targets = plan_targets(specs, paths, extra, resume=resume)
    except (CheckpointMismatch, ValueError) as exc:
        raise click.UsageError(str(exc)) from None

    _configure_logging(verbose, token)
    # Retries are counted and reported here; stamina's own log line per retry is noise.
    stamina.instrumentation.set_on_retry_hooks([])
    show_progress = not quiet and sys.stderr.isatty()
    with cli_errors():
        seconds = asyncio.run(_fetch(client, targets, fmt, merged, show_progress))
    _report(client, targets, seconds, stats_path=stats_path, quiet=quiet)


async def _fetch(
    client: IntercomClient,
    targets: list[Target],
    fmt: Any,
    merged: bool,
    show_progress: bool,
) -> float:
    started = asyncio.get_running_loop().time()
    async with client:
        with progress_board(enabled=show_progress, stats=lambda: client.stats) as board:
            if merged:
                summary = await sync_merged(
                    client, [t.spec for t in targets], Output(targets[0].path), fmt, board
                )
                targets[0].summary = summary
            else:
                await sync_separately(client, targets, fmt, board)
    return asyncio.get_running_loop().time() - started


def _report(
    client: IntercomClient,
    targets: list[Target],
    seconds: float,
    *,
    stats_path: str | None,
    quiet: bool,
) -> None:
    summaries = [t.summary for t in targets if t.summary is not None]
    for target in targets:
        if target.summary is not None and target.summary.changes.changed:
            click.echo(
                f"asyncfetch: warning: {target.spec.name}: {target.summary.changes.describe()}",
                err=True,
            )
    stats = client.stats
    pages = sum(s.pages for s in summaries)
    items = sum(s.items for s in summaries)
    per_second = stats.requests / seconds if seconds > 0 else 0.0
    if not quiet:
        click.echo(
            f"{count(items, 'item')}, {count(pages, 'page')} in {seconds:.2f} s "
            f"({per_second:.0f} requests/s; {count(stats.requests, 'request')}, "
            f"{count(stats.retries, 'retry', 'retries')}, {stats.statuses[429]} answered 429, "
            f"{count(stats.rate_limit_pauses, 'rate-limit pause')})",
            err=True,
        )
    if stats_path:
        report = {
            "pages": pages,
            "items": items,
            "requests": stats.requests,
            "retries": stats.retries,
            "statuses": {str(code): n for code, n in sorted(stats.statuses.items())},
            "bytes": stats.bytes,
            "seconds": round(seconds, 3),
            "requests_per_second": round(per_second, 1),
            "rate_limit_pauses": stats.rate_limit_pauses,
            "lists": [
                {
                    "name": t.spec.name,
                    "path": t.path,
                    "pages": t.summary.pages if t.summary else 0,
                    "items": t.summary.items if t.summary else 0,
                    "resumed_after_page": t.resume_from.pages if t.resume_from else 0,
                    "list_changed": bool(t.summary and t.summary.changes.changed),
                }
                for t in targets
            ],
        }
        with open(stats_path, "wb") as file:
            file.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")


def _check_writable(path: str) -> None:
    if path == "-":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise click.BadParameter(
            f"cannot write {path!r}: {folder!r} is not a writable folder", param_hint="'--out'"
        )


class _Redact(logging.Filter):
    """Defence in depth: no log line shows the token, whoever wrote it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._secret in message:
            record.msg, record.args = message.replace(self._secret, "***"), None
        return True


def _configure_logging(verbose: int, token: str) -> None:
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Redact(token))
    logger = logging.getLogger("asyncfetch")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a failed fetch into one line on stderr and exit 1; Ctrl-C into exit 130."""
    try:
        try:
            yield
        except BaseExceptionGroup as group:
            # Lists fetched side by side fail as a group: report the first failure.
            leaf = _first_leaf(group)
            if isinstance(leaf, AsyncFetchError | OSError):
                raise leaf from None
            raise
    except AsyncFetchError as exc:
        click.echo(f"asyncfetch: error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        # Writing the output failed: a full disk, a folder that went away.
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"asyncfetch: error: cannot write{where}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("asyncfetch: interrupted", err=True)
        sys.exit(130)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
