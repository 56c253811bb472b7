"""What a fetching CLI command does: check everything, then run the sync, then report.

Kept apart from ``_commands.py`` (which only declares commands and options) so the
command definitions stay readable in one screen.

Everything a user can get wrong is checked before the first request and
reported in one line with exit 2: a list given twice, two files of the run
that are one file once symbolic links and relative paths are resolved (an
export overwritten by ``--stats`` would be a silent loss), folders that
cannot be written, another run holding the output's lock, a checkpoint that
cannot be trusted. A failure or Ctrl-C later ends its one line with the
command that resumes, where ``--resume`` applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import click
import orjson
import stamina.instrumentation

from .. import (
    AsyncFetchError,
    IncompleteListError,
    IntercomClient,
    PageLimitError,
    Retries,
    SinkError,
    open_sink,
)
from .._redact import SHORT_SECRET, redact
from ._checkpoint import CheckpointMismatch, checkpoint_path
from ._db import sync_to_db
from ._formats import Csv, OutputFormat, make_format
from ._loop import run as run_on_loop
from ._progress import progress_board
from ._sync import (
    FetchClient,
    ListSpec,
    Output,
    OutputLock,
    Target,
    in_place,
    partial_path,
    plan_targets,
    sync_merged,
    sync_separately,
)
from ._wording import count, option_message

__all__ = [
    "FetchPlan",
    "LineUsageError",
    "cli_errors",
    "companies_by",
    "company_users_by",
    "contacts_list",
    "plan_fetch",
    "run_fetch",
    "users_by",
]

# Either client: IntercomClient for the Intercom commands, PagesClient for ``pages``.
C = TypeVar("C", bound=FetchClient)

_EXTENSIONS = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv"}


def users_by(
    filter_name: str | None, value: str | None, *, scroll: bool
) -> ListSpec[IntercomClient]:
    """``asyncfetch users``: all of them, or a tag's (``tag_id``) or a segment's."""
    always = True if scroll else None
    if filter_name is None or value is None:
        return ListSpec(
            "users", "users", lambda c: c.users(scroll=always), {"list": "users", "scroll": scroll}
        )
    value = value.strip()
    label = filter_name.removesuffix("_id")
    tag_id = value if filter_name == "tag_id" else None
    segment_id = value if filter_name == "segment_id" else None
    return ListSpec(
        f"users {label} {value}",
        f"users-{label}-{value}",
        lambda c: c.users(tag_id=tag_id, segment_id=segment_id, scroll=always),
        {"list": "users", filter_name: value, "scroll": scroll},
    )


def company_users_by(filter_name: str, value: str) -> ListSpec[IntercomClient]:
    value = value.strip()
    return ListSpec(
        f"company {value} users",
        f"company-users-{filter_name.replace('_', '-')}-{value}",
        lambda c: (
            c.company_users(id=value) if filter_name == "id" else c.company_users(company_id=value)
        ),
        {"list": "company_users", filter_name: value},
    )


def companies_by(filter_name: str | None, value: str | None) -> ListSpec[IntercomClient]:
    """``asyncfetch companies``: all of them, or a tag's (``tag_id``) or a segment's."""
    if filter_name is None or value is None:
        return ListSpec(
            "companies",
            "companies",
            lambda c: c.companies(),
            {"list": "companies", "tag_id": None, "segment_id": None},
        )
    value = value.strip()
    label = filter_name.removesuffix("_id")
    tag_id = value if filter_name == "tag_id" else None
    segment_id = value if filter_name == "segment_id" else None
    return ListSpec(
        f"companies {label} {value}",
        f"companies-{label}-{value}",
        lambda c: c.companies(tag_id=tag_id, segment_id=segment_id),
        {"list": "companies", "tag_id": tag_id, "segment_id": segment_id},
    )


def contacts_list() -> ListSpec[IntercomClient]:
    return ListSpec("contacts", "contacts", lambda c: c.contacts(), {"list": "contacts"})


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LONGEST_STEM = 100


def _file_stems(names: list[str]) -> list[str]:
    """A file name (without extension) per list that no other list of the run can
    share: the readable slug of its name, plus a short hash of the name where
    slugging changed it (``acme/eu`` and ``acme eu`` both slug to ``acme_eu``),
    cut it short, or left it equal to another's but for case (a case-insensitive
    file system would make them one file)."""
    slugs = [_UNSAFE.sub("_", name)[:_LONGEST_STEM] for name in names]
    seen = Counter(slug.lower() for slug in slugs)
    return [
        slug
        if slug == name and seen[slug.lower()] == 1
        else f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        for slug, name in zip(slugs, names, strict=True)
    ]


class LineUsageError(click.UsageError):
    """A usage error shown as one line (``asyncfetch: error: ...``), exit 2."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"asyncfetch: error: {self.format_message()}", err=True, file=file)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchPlan:
    """What one fetching command will do, decided from its options alone
    (``plan_fetch``): no request sent, no file or folder touched yet."""

    specs: list[ListSpec[IntercomClient]]
    client: IntercomClient
    """Made, not opened: its options are checked, nothing is sent."""
    token: str
    paths: list[str]
    """The file of each list: one per list, or the same for all when merged; "-" is stdout."""
    out_dir: str | None
    merged: bool
    resumable: bool
    """A file per list (not stdout, not merged): ``--resume`` applies."""
    format_name: str
    field_names: list[str] | None
    extra: dict[str, Any]
    """What a checkpoint must agree on to be resumed (besides the list)."""
    stats_path: str | None
    resume: bool
    restart: bool
    restart_on_change: bool
    verbose: int
    quiet: bool
    db: str | None = None
    """``--db``: the database URL (it may hold a password: never shown), or ``None``."""
    db_restart: bool = False
    """``--db --restart``: an unfinished run of a list starts afresh, not continued."""
    incremental_margin: float | None = None
    """``--incremental``: the margin in seconds before the bookmark; ``None``: a full pass."""

    @property
    def outputs(self) -> list[str]:
        """The files written, each once, streams (stdout, ``/dev/null``, a pipe) left out."""
        return list(dict.fromkeys(path for path in self.paths if not in_place(path)))

    def make_fmt(self, name: str | None = None) -> OutputFormat:
        """The output format, for the list ``name`` (named in warnings, if several)."""
        where = f"{name}: " if name is not None and len(self.specs) > 1 else ""

        def on_missing(field: str, nearest: str | None) -> None:
            hint = f" (did you mean {nearest!r}?)" if nearest else ""
            _warn(f"{where}--fields {field!r}: no record of the first page has it{hint}")

        return make_format(self.format_name, self.field_names, on_missing=on_missing)


def run_fetch(specs: list[ListSpec[IntercomClient]], **options: Any) -> None:
    """Run one fetching command: the plan (every option checked, before any
    request), then its files claimed (folders, locks, checkpoints), the fetch,
    and the report. ``options`` are ``plan_fetch``'s."""
    plan = plan_fetch(specs, **options)
    if plan.db is not None:
        targets = [
            Target(spec=spec, path=path) for spec, path in zip(specs, plan.paths, strict=True)
        ]
        seconds = _run(plan, targets)
        _report(plan.client, targets, seconds, stats_path=plan.stats_path, quiet=plan.quiet)
        return
    with _claimed(plan) as targets:
        if all(target.complete for target in targets):
            return
        seconds = _run(plan, targets)
        _report(plan.client, targets, seconds, stats_path=plan.stats_path, quiet=plan.quiet)


def plan_fetch(
    specs: list[ListSpec[IntercomClient]],
    *,
    base_url: str,
    token: str | None,
    out_path: str,
    out_dir: str | None,
    format_name: str,
    fields: str | None,
    resume: bool,
    restart: bool,
    restart_on_change: bool,
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
    db_url: str | None = None,
    incremental_margin: float | None = None,
    shared_budget: bool = False,
) -> FetchPlan:
    """Check a fetching command's options and decide its files, touching none:
    ``LineUsageError`` (exit 2) for anything a user can get wrong in them."""
    if not token:
        raise LineUsageError("no token: pass --token or set INTERCOM_ACCESS_TOKEN")
    field_names = [name.strip() for name in fields.split(",")] if fields else None
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
            shared_budget=shared_budget,
        )
        for spec in specs:
            spec.make(client)  # checks the filters; the listing itself is dropped
        make_format(format_name, field_names)
    except ValueError as exc:
        raise LineUsageError(option_message(str(exc))) from None
    if fields and format_name != "csv":
        raise LineUsageError("--fields goes with --format csv")
    _refuse_repeated_lists(specs)
    db_display = None
    if db_url is not None:
        db_display = _check_db(
            db_url,
            out=out_path != "-" or out_dir is not None,
            file_options=[
                name
                for name, given in (
                    ("--resume", resume),
                    ("--restart-on-change", restart_on_change),
                    ("--fields", bool(fields)),
                )
                if given
            ],
        )
    merged = out_dir is None and len(specs) > 1 and db_url is None
    if out_dir is not None:
        if out_path != "-":
            raise LineUsageError("give --out or --out-dir, not both")
        stems = _file_stems([spec.slug for spec in specs])
        paths = [os.path.join(out_dir, stem + _EXTENSIONS[format_name]) for stem in stems]
    elif db_display is not None:
        paths = [db_display] * len(specs)
    else:
        paths = [out_path] * len(specs)
    resumable = not merged and db_url is None and not in_place(paths[0])
    if resume and not resumable:
        raise LineUsageError(
            "--resume needs a regular file per list: --out FILE for one list, --out-dir for several"
        )
    return FetchPlan(
        specs=specs,
        client=client,
        token=token,
        paths=paths,
        out_dir=out_dir,
        merged=merged,
        resumable=resumable,
        format_name=format_name,
        field_names=field_names,
        extra={
            "base_url": base_url,
            "per_page": per_page,
            "format": format_name,
            "fields": ",".join(field_names) if field_names else None,
            "keep_duplicates": keep_duplicates,
        },
        stats_path=stats_path,
        resume=resume,
        restart=restart,
        restart_on_change=restart_on_change,
        verbose=verbose,
        quiet=quiet,
        db=db_url,
        db_restart=restart,
        incremental_margin=incremental_margin,
    )


def _check_db(url: str, *, out: bool, file_options: list[str]) -> str:
    """``--db``'s URL checked (its kind, not yet the database): what to show of it."""
    if out:
        raise LineUsageError("give --out (or --out-dir) or --db, not both")
    if file_options:
        raise LineUsageError(
            f"{file_options[0]} is for files; with --db, rerunning the same command "
            "continues an interrupted run from the database's own record"
        )
    try:
        return open_sink(url).display
    except SinkError as exc:
        raise LineUsageError(exc.message) from None


@contextlib.contextmanager
def _claimed(plan: FetchPlan) -> Iterator[list[Target[IntercomClient]]]:
    """The plan's files, checked and locked for this run (still exit 2 for what
    is wrong with them: a folder that cannot be made or written, two files that
    are one, another run holding a lock, a checkpoint that cannot be trusted);
    yields a target per list, its checkpoint read. The locks go at the end."""
    if plan.out_dir is not None:
        try:
            os.makedirs(plan.out_dir, exist_ok=True)
        except OSError as exc:
            raise LineUsageError(
                f"--out-dir: cannot make the folder {plan.out_dir!r}: {exc.strerror or exc}"
            ) from None
    for path in set(plan.paths):
        _check_writable(path, "--out-dir" if plan.out_dir is not None else "--out")
        _check_not_a_folder(path, "--out-dir" if plan.out_dir is not None else "--out")
    if plan.stats_path is not None:
        _check_writable(plan.stats_path, "--stats")
    outputs = plan.outputs
    _refuse_shared_files(outputs, plan.stats_path)
    locks = [OutputLock(path) for path in outputs]
    try:
        for lock, path in zip(locks, outputs, strict=True):
            try:
                lock.acquire()
            except BlockingIOError:
                raise LineUsageError(
                    f"another asyncfetch run is writing {path} (it holds {lock.path}); "
                    "wait for it to end"
                ) from None
            except OSError as exc:
                raise LineUsageError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
        try:
            targets = plan_targets(
                plan.specs, plan.paths, plan.extra, resume=plan.resume, restart=plan.restart
            )
        except (CheckpointMismatch, ValueError) as exc:
            raise LineUsageError(str(exc)) from None
        for target in targets:
            if target.complete:
                click.echo(
                    f"asyncfetch: {target.path} is complete; nothing fetched for it "
                    "(--restart fetches it again)",
                    err=True,
                )
        yield targets
    finally:
        for lock in locks:
            lock.release()


def _run(plan: FetchPlan, targets: list[Target[IntercomClient]]) -> float:
    """The fetch, in seconds; a failure is one line and an exit code (``cli_errors``)."""
    _configure_logging(plan.verbose, plan.token)
    # Retries are counted and reported here; stamina's own log line per retry is noise.
    stamina.instrumentation.set_on_retry_hooks([])
    show_progress = not plan.quiet and sys.stderr.isatty()
    if plan.db is not None:
        with cli_errors():
            return run_on_loop(_fetch_db(plan, targets, show_progress))
        raise AssertionError("unreachable: cli_errors exits")  # pragma: no cover
    fetch = _fetch(
        plan.client,
        targets,
        plan.make_fmt,
        plan.merged,
        show_progress,
        restart_on_change=plan.restart_on_change,
    )
    resumable = plan.resumable
    with cli_errors(
        resume_command=_resume_command(plan.token) if resumable else None,
        restart_command=_resume_command(plan.token, "--restart") if resumable else None,
    ):
        return run_on_loop(fetch)
    raise AssertionError("unreachable: cli_errors exits")  # pragma: no cover


def _refuse_repeated_lists(specs: list[ListSpec[IntercomClient]]) -> None:
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for spec in specs:
        key = tuple(sorted(spec.fingerprint.items()))
        if key in seen:
            raise LineUsageError(f"{spec.name} is asked for twice; give each list once")
        seen.add(key)


def _refuse_shared_files(outputs: list[str], stats_path: str | None) -> None:
    """Any two files of the run that are one file (``x.jsonl`` and ``./x.jsonl``, a
    symbolic link, the stats written over an output) would overwrite each other."""
    files = [(f"the output {path}", path) for path in outputs]
    for path in outputs:
        partial = partial_path(path)
        files += [
            (f"the partial file {partial}", partial),
            (f"the checkpoint {checkpoint_path(partial)}", checkpoint_path(partial)),
            (f"the lock file {path}.lock", path + ".lock"),
        ]
    if stats_path is not None:
        files.append((f"--stats {stats_path}", stats_path))
    owners: dict[str, str] = {}
    for description, path in files:
        real = os.path.normcase(os.path.realpath(path))
        if real in owners:
            raise LineUsageError(f"{owners[real]} and {description} are the same file")
        owners[real] = description


def _warn(message: str) -> None:
    click.echo(f"asyncfetch: warning: {message}", err=True)


def _resume_command(token: str, flag: str = "--resume") -> str:
    """The command line of this run with ``flag`` (``--resume`` or ``--restart``),
    to print with a failure: the token is replaced by ``***`` (set
    INTERCOM_ACCESS_TOKEN instead)."""
    args: list[str] = []
    hide_next = False
    for arg in sys.argv[1:]:
        if hide_next:
            args.append("***")
            hide_next = False
        elif arg == "--token":
            args.append(arg)
            hide_next = True
        elif arg.startswith("--token="):
            args.append("--token=***")
        elif arg not in ("--restart", "--resume"):
            args.append(_masked(arg, token))
    args.append(flag)
    return shlex.join(["asyncfetch", *args])


def _masked(arg: str, token: str) -> str:
    """``arg`` with the token masked. A short token (``e``, ``x``) is masked only
    where it is the whole argument: replaced inside others it would garble the
    command (``--out users.jsonl`` -> ``--out us***rs.jsonl``), which would then
    resume another file."""
    if arg == token or len(token) >= SHORT_SECRET:
        return arg.replace(token, "***")
    return arg


async def _fetch(
    client: C,
    targets: list[Target[C]],
    make_fmt: Callable[[str | None], OutputFormat],
    merged: bool,
    show_progress: bool,
    *,
    restart_on_change: bool,
) -> float:
    started = asyncio.get_running_loop().time()
    async with client:
        with progress_board(enabled=show_progress, stats=lambda: client.stats) as board:
            if merged:
                fmt = targets[0].fmt = make_fmt(None)
                await sync_merged(client, targets, Output(targets[0].path), fmt, board)
            else:
                await sync_separately(
                    client,
                    targets,
                    make_fmt,
                    board,
                    warn=_warn,
                    restart_on_change=restart_on_change,
                )
    return asyncio.get_running_loop().time() - started


async def _fetch_db(
    plan: FetchPlan, targets: list[Target[IntercomClient]], show_progress: bool
) -> float:
    """The lists into the database: opened (locked, its schema checked) before
    the client sends a request, so what is wrong with it is still exit 2."""
    assert plan.db is not None
    started = asyncio.get_running_loop().time()
    async with open_sink(plan.db) as sink, plan.client as client:
        with progress_board(enabled=show_progress, stats=lambda: client.stats) as board:
            await sync_to_db(
                client,
                sink,
                targets,
                board,
                per_page=int(plan.extra["per_page"]),
                base_url=str(plan.extra["base_url"]),
                incremental_margin=plan.incremental_margin,
                restart=plan.db_restart,
                keep_duplicates=bool(plan.extra["keep_duplicates"]),
            )
    return asyncio.get_running_loop().time() - started


def _report(
    client: C,
    targets: list[Target[C]],
    seconds: float,
    *,
    stats_path: str | None,
    quiet: bool,
) -> None:
    summaries = [t.summary for t in targets if t.summary is not None]
    for target in targets:
        changes = target.summary.changes if target.summary is not None else None
        if changes is not None and changes.changed:
            click.echo(f"asyncfetch: warning: {target.spec.name}: {changes.describe()}", err=True)
        elif changes is not None and changes.duplicates_dropped:
            # A record seen twice is left out; the line says so even when no
            # total_count moved (in a merged file: seen in an earlier list).
            click.echo(
                f"asyncfetch: warning: {target.spec.name}: dropped "
                f"{changes.duplicates_dropped} duplicate record(s) (same id seen twice)",
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
        never_found = [_never_found(t) for t in targets]
        report: dict[str, Any] = {
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
                    "duplicates_dropped": t.summary.changes.duplicates_dropped if t.summary else 0,
                    "method": t.summary.changes.method if t.summary else None,
                    "count_check": t.summary.changes.count_check if t.summary else None,
                    "complete_already": t.complete,
                    **({"fields_never_found": found} if found is not None else {}),
                }
                for t, found in zip(targets, never_found, strict=True)
            ],
        }
        if isinstance(targets[0].fmt, Csv):
            # CSV: the fields that no record of any list carried (empty columns).
            lists = [set(found) for found in never_found if found is not None]
            report["fields_never_found"] = [
                f for f in targets[0].fmt.never_found if all(f in found for found in lists)
            ]
        try:
            with open(stats_path, "wb") as file:
                file.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        except OSError as exc:
            click.echo(f"asyncfetch: error: --stats: cannot write {stats_path}: {exc}", err=True)
            sys.exit(1)


def _never_found(target: Target[Any]) -> list[str] | None:
    return target.fmt.never_found if isinstance(target.fmt, Csv) else None


def _check_writable(path: str, option: str) -> None:
    if path == "-":
        return
    folder = os.path.dirname(os.path.abspath(path))
    if in_place(path) and not os.path.isdir(path):
        pass  # a pipe or a device, written where it is: its folder is not written
    elif not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise LineUsageError(
            f"{option}: cannot write {path!r}: {folder!r} is not a writable folder"
        )
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise LineUsageError(f"{option}: cannot write {path!r}: it is not writable")


def _check_not_a_folder(path: str, option: str) -> None:
    if os.path.isdir(path):
        raise LineUsageError(f"{option}: cannot write {path!r}: it is a folder")


class _Redact(logging.Filter):
    """Defence in depth: no log line shows the token, whoever wrote it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self._secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
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
def cli_errors(
    *, resume_command: str | None = None, restart_command: str | None = None
) -> Iterator[None]:
    """Turn a failed fetch into one line on stderr and exit 1; Ctrl-C into exit 130.

    With ``resume_command``, the line ends with the command that resumes the run.
    A ``PageLimitError`` met by a resume cannot be resumed: its line ends with
    ``restart_command`` instead; met by a fresh run, with neither.
    A reader that went away (``asyncfetch users | head -1``) is a normal end: exit 0.
    """
    resume = f"; to resume: {resume_command}" if resume_command else ""
    try:
        try:
            yield
        except BaseExceptionGroup as group:
            # Lists fetched side by side fail as a group: report the first failure.
            leaf = _first_leaf(group)
            if isinstance(leaf, AsyncFetchError | OSError | KeyboardInterrupt):
                raise leaf from None
            raise
    except SinkError as exc:
        # Found before any request (the URL, the file, the lock, the schema): a
        # usage error; a write that failed mid-run: a failed run.
        click.echo(f"asyncfetch: error: {exc.message}", err=True)
        sys.exit(2 if exc.usage else 1)
    except IncompleteListError as exc:
        # The list ended short of its own count: resuming cannot mend that (it
        # would fail the same way); fetching it again might.
        again = f"; to fetch it again: {restart_command}" if restart_command else ""
        click.echo(f"asyncfetch: error: {exc}{again}", err=True)
        sys.exit(1)
    except PageLimitError as exc:
        resumed = "--resume" in sys.argv[1:]
        restart = f"; to start afresh: {restart_command}" if restart_command and resumed else ""
        click.echo(f"asyncfetch: error: {exc}{restart}", err=True)
        sys.exit(1)
    except AsyncFetchError as exc:
        click.echo(f"asyncfetch: error: {exc}{resume}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # Whatever is still buffered for stdout goes nowhere, quietly, at exit too.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except OSError as exc:
        # Writing the output failed: a full disk, a folder that went away.
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(
            f"asyncfetch: error: cannot write{where}: {exc.strerror or exc}{resume}", err=True
        )
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(f"asyncfetch: interrupted{resume}", err=True)
        sys.exit(130)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
