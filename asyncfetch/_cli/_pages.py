"""``asyncfetch pages URL ...``: any page-numbered JSON API, from the command line.

The command is ``PagesClient`` with its options as flags, and the Intercom
commands' machinery for the rest (``_sync.py``, ``_run.py``, ``_options.py``): the same
output formats, partial file and checkpoint, ``--resume``, progress, summary
and exit codes. Everything a user can get wrong is reported before any
request, in one line, exit 2: a URL that is not http(s), no page-count flag
or two, a ``--header`` that is not ``Name: value``, paging parameters given
in the URL.

``--header`` values are secrets (a token, most often): they are never
printed, and the command a failure suggests to resume shows ``Name: ***``.
"""

from __future__ import annotations

import logging
import shlex
import sys
from typing import Any

import click
import stamina.instrumentation
from yarl import URL

from .. import PageNumbered, PagesClient, Retries
from ._checkpoint import CheckpointMismatch
from ._formats import OutputFormat, make_format
from ._loop import run as run_on_loop
from ._options import fetch_options
from ._run import (
    LineUsageError,
    _check_writable,
    _fetch,
    _Redact,
    _refuse_shared_files,
    _report,
    _warn,
    cli_errors,
)
from ._sync import ListSpec, OutputLock, plan_targets
from ._wording import option_message

__all__ = ["pages"]

# The library's parameter names, as the flags that set them.
_OPTION_FOR_PARAMETER = {
    "items": "--items",
    "total_pages": "--total-pages",
    "total_pages_header": "--total-pages-header",
    "total_count": "--total-count",
    "total_count_header": "--total-count-header",
    "page_param": "--page-param",
    "per_page_param": "--per-page-param",
    "per_page": "--per-page",
    "concurrency": "--concurrency",
    "rate": "--rate",
    "timeout": "--timeout",
    "attempts": "--retries",
    "max_wait": "--max-retry-wait",
    "base_url": "URL",
}


@click.command(short_help="Any page-numbered JSON API: every page, in order.")
@click.argument("url")
@click.option("--items", "items", required=True, help="Dotted path to the items ('' : the body).")
@click.option("--total-pages", default=None, help="Dotted path to the page count in the body.")
@click.option("--total-pages-header", default=None, help="Header holding the page count.")
@click.option("--link-last", is_flag=True, help='Page count from the Link header\'s rel="last".')
@click.option("--total-count", default=None, help="Dotted path to the item count (checked).")
@click.option("--total-count-header", default=None, help="Header holding the item count.")
@click.option("--page-param", default="page", show_default=True, help="Page number parameter.")
@click.option(
    "--per-page-param", default="per_page", show_default=True, help="Page size parameter."
)
@click.option(
    "--per-page",
    type=click.IntRange(min=1),
    default=None,
    help="Items per page [default: the API's].",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Sent with every request (repeatable); values never printed.",
)
@fetch_options(
    client=PagesClient,
    secret="the headers",
    several_lists=False,
    fields_example="id,title.rendered",
)
def pages(url: str, **options: Any) -> None:
    """Every item of a page-numbered list at URL, as JSON Lines (or --format).

    Say where the items are (--items data.items, or '' for a body that is the
    list) and where the page count is, with one of --total-pages PATH,
    --total-pages-header NAME (X-WP-TotalPages) or --link-last (GitHub).
    """
    run_pages(url, **options)


def run_pages(
    url: str,
    *,
    items: str,
    total_pages: str | None,
    total_pages_header: str | None,
    link_last: bool,
    total_count: str | None,
    total_count_header: str | None,
    page_param: str,
    per_page_param: str,
    per_page: int | None,
    headers: tuple[str, ...],
    out_path: str,
    format_name: str,
    fields: str | None,
    concurrency: int,
    rate: float | None,
    timeout: float,
    retries: int,
    max_retry_wait: float,
    allow_insecure_http: bool,
    resume: bool,
    restart: bool,
    restart_on_change: bool,
    stats_path: str | None,
    verbose: int,
    quiet: bool,
    shared_budget: bool = False,
) -> None:
    """Every check before any request, then the fetch, then the report."""
    sources = [
        flag
        for flag, given in (
            ("--total-pages", total_pages is not None),
            ("--total-pages-header", total_pages_header is not None),
            ("--link-last", link_last),
        )
        if given
    ]
    if len(sources) != 1:
        said = f" (got {' and '.join(sources)})" if sources else ""
        raise LineUsageError(
            "say where the page count is with exactly one of --total-pages PATH, "
            f"--total-pages-header NAME or --link-last{said}"
        )
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise LineUsageError("URL must be an http:// or https:// URL with a host")
    if page_param == per_page_param:
        raise LineUsageError(f"--page-param and --per-page-param are both {page_param!r}")
    params = dict(parsed.query)
    for flag, name in (("--page-param", page_param), ("--per-page-param", per_page_param)):
        if name in params:
            raise LineUsageError(
                f"the URL sets {name!r}, which asyncfetch sets for each page ({flag}"
                + (", --per-page)" if flag == "--per-page-param" else ")")
            )
    header_map = _parse_headers(headers)
    try:
        paging = PageNumbered(
            items=items,
            total_pages=total_pages,
            total_pages_header=total_pages_header,
            link_last=link_last,
            total_count=total_count,
            total_count_header=total_count_header,
            page_param=page_param,
            per_page_param=per_page_param,
            per_page=per_page,
        )
        client = PagesClient(
            base_url=str(parsed.with_query(None).with_fragment(None)),
            headers=header_map,
            concurrency=concurrency,
            rate=rate,
            timeout=timeout,
            retries=Retries(attempts=retries, max_wait=max_retry_wait),
            allow_insecure_http=allow_insecure_http,
            shared_budget=shared_budget,
        )
        client.list(paging=paging, params=params)  # checks; the listing is dropped
        field_names = [name.strip() for name in fields.split(",")] if fields else None
        make_format(format_name, field_names)
    except ValueError as exc:
        raise LineUsageError(option_message(str(exc), _OPTION_FOR_PARAMETER)) from None
    if fields and format_name != "csv":
        raise LineUsageError("--fields goes with --format csv")
    resumable = out_path != "-"
    if resume and not resumable:
        raise LineUsageError("--resume needs --out FILE")
    _check_writable(out_path, "--out")
    if stats_path is not None:
        _check_writable(stats_path, "--stats")
    _refuse_shared_files([out_path] if resumable else [], stats_path)

    name = parsed.path or "/"
    spec: ListSpec[PagesClient] = ListSpec(
        name,
        name.strip("/").replace("/", "-") or "list",
        lambda pages_client: pages_client.list(paging=paging, params=params),
        {
            "list": "pages",
            "url": str(parsed.with_query(None)),
            "params": sorted(params.items()),
            "items": items,
            "page_count": sources[0],
            "page_param": page_param,
            "per_page_param": per_page_param,
            "per_page": per_page,
            "header_names": sorted(header_map),
        },
    )
    extra = {"format": format_name, "fields": ",".join(field_names) if field_names else None}

    def on_missing(field: str, nearest: str | None) -> None:
        hint = f" (did you mean {nearest!r}?)" if nearest else ""
        _warn(f"--fields {field!r}: no record of the first page has it{hint}")

    def make_fmt(_name: str | None = None) -> OutputFormat:
        return make_format(format_name, field_names, on_missing=on_missing)

    lock = OutputLock(out_path) if resumable else None
    try:
        if lock is not None:
            try:
                lock.acquire()
            except BlockingIOError:
                raise LineUsageError(
                    f"another asyncfetch run is writing {out_path} (it holds {lock.path}); "
                    "wait for it to end"
                ) from None
            except OSError as exc:
                raise LineUsageError(f"cannot lock {lock.path}: {exc.strerror or exc}") from None
        try:
            targets = plan_targets([spec], [out_path], extra, resume=resume, restart=restart)
        except (CheckpointMismatch, ValueError) as exc:
            raise LineUsageError(str(exc)) from None
        if targets[0].complete:
            click.echo(
                f"asyncfetch: {out_path} is complete; nothing fetched for it "
                "(--restart fetches it again)",
                err=True,
            )
            return
        secrets = _secrets_of(header_map)
        _configure_logging(verbose, secrets)
        stamina.instrumentation.set_on_retry_hooks([])
        show_progress = not quiet and sys.stderr.isatty()
        fetch = _fetch(
            client, targets, make_fmt, False, show_progress, restart_on_change=restart_on_change
        )
        with cli_errors(
            resume_command=_again(secrets, "--resume") if resumable else None,
            restart_command=_again(secrets, "--restart") if resumable else None,
        ):
            seconds = run_on_loop(fetch)
        _report(client, targets, seconds, stats_path=stats_path, quiet=quiet)
    finally:
        if lock is not None:
            lock.release()


def _parse_headers(headers: tuple[str, ...]) -> dict[str, str]:
    """``--header 'Name: value'`` flags as a dict; a bad one is a usage error that
    shows at most its name (the value is likely a token)."""
    parsed: dict[str, str] = {}
    for header in headers:
        name, colon, value = header.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not value:
            raise LineUsageError(
                f"--header #{len(parsed) + 1} must be 'Name: value' (a name, a colon, a value)"
            )
        if not name.isascii() or not name.replace("-", "").replace("_", "").isalnum():
            raise LineUsageError(
                f"--header #{len(parsed) + 1}: the part before the colon is not a header name"
            )
        if name.lower() in (known.lower() for known in parsed):
            raise LineUsageError(f"--header {name!r} is given twice")
        parsed[name] = value
    return parsed


def _secrets_of(headers: dict[str, str]) -> list[str]:
    """What to keep out of log lines and the resume command: every ``--header``
    value, and the credentials of a ``scheme credentials`` one."""
    secrets = []
    for value in headers.values():
        secrets.append(value)
        credentials = value.partition(" ")[2].strip()
        if credentials:
            secrets.append(credentials)
    return sorted(secrets, key=len, reverse=True)


def _again(secrets: list[str], flag: str) -> str:
    """This run's command line with ``flag``, each ``--header`` value shown as ``***``."""
    args: list[str] = []
    hide_next = False
    for arg in sys.argv[1:]:
        if hide_next:
            args.append(arg.partition(":")[0] + ": ***")
            hide_next = False
        elif arg == "--header":
            args.append(arg)
            hide_next = True
        elif arg.startswith("--header="):
            args.append("--header=" + arg.removeprefix("--header=").partition(":")[0] + ": ***")
        elif arg not in ("--restart", "--resume"):
            for secret in secrets:
                arg = arg.replace(secret, "***")
            args.append(arg)
    args.append(flag)
    return shlex.join(["asyncfetch", *args])


def _configure_logging(verbose: int, secrets: list[str]) -> None:
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for secret in secrets:
        handler.addFilter(_Redact(secret))
    logger = logging.getLogger("asyncfetch")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
