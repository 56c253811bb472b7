"""The ``asyncfetch`` command line: a thin shell over the library.

Exit codes: 0 success; 1 the API or the network failed (one line on stderr,
no traceback); 2 a usage error, reported before any request is sent;
130 interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

import click
import stamina.instrumentation

from ._client import DEFAULT_BASE_URL, IntercomClient
from ._config import Retries
from ._exceptions import AsyncFetchError
from ._export import BinaryWriter, ExportSummary, export_jsonl
from ._intercom import Item
from ._listing import Listing
from ._progress import page_progress
from ._version import __version__

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
ListingFactory = Callable[[IntercomClient], Listing[Item]]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asyncfetch")
def cli() -> None:
    """Fetch every page of an Intercom list concurrently, in order, as JSON Lines."""


def _fetch_options(command: F) -> F:
    """The options every fetching command takes."""
    options = [
        click.option(
            "--base-url",
            envvar="INTERCOM_BASE_URL",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help="The API's root URL [env: INTERCOM_BASE_URL].",
        ),
        click.option(
            "--token",
            envvar="INTERCOM_ACCESS_TOKEN",
            help="Access token [env: INTERCOM_ACCESS_TOKEN]. Never printed.",
        ),
        click.option(
            "--out",
            "out_path",
            default="-",
            type=click.Path(dir_okay=False, allow_dash=True),
            help="JSON Lines file to write, one item per line in API order; '-' is stdout.",
        ),
        click.option(
            "--per-page",
            type=click.IntRange(1, 60),
            default=50,
            show_default=True,
            help="Items per page (Intercom allows 1 to 60).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=16,
            show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="At most this many requests per second [default: no cap].",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            help="Seconds allowed for one request.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            help="Tries per request, the first included (1: no retries).",
        ),
        click.option(
            "--max-retry-wait",
            type=click.FloatRange(min=0, min_open=True),
            default=120.0,
            show_default=True,
            help="Seconds one request may spend retrying, pauses included.",
        ),
        click.option(
            "--keep-duplicates",
            is_flag=True,
            help="Keep a record seen twice when the list changes mid-fetch.",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Allow plain http:// to a non-loopback host (sends the token unencrypted).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@click.option("--tag-id", help="Only users carrying this tag.")
@click.option("--segment-id", help="Only users in this segment.")
@_fetch_options
def users(tag_id: str | None, segment_id: str | None, **options: Any) -> None:
    """Users and leads, optionally by tag or by segment (not both)."""
    if tag_id is not None and segment_id is not None:
        raise click.UsageError("--tag-id and --segment-id cannot be combined (the API refuses it)")
    _run(lambda client: client.users(tag_id=tag_id, segment_id=segment_id), **options)


@cli.command("company-users")
@click.option("--id", "id_", help="Intercom's id of the company.")
@click.option("--company-id", help="Your own company_id of the company.")
@_fetch_options
def company_users(id_: str | None, company_id: str | None, **options: Any) -> None:
    """Users of one company, by --id or by --company-id (exactly one)."""
    if (id_ is None) == (company_id is None):
        raise click.UsageError("give exactly one of --id or --company-id")
    _run(lambda client: client.company_users(id=id_, company_id=company_id), **options)


@cli.command()
@click.option("--tag-id", help="Only companies carrying this tag.")
@click.option("--segment-id", help="Only companies in this segment.")
@_fetch_options
def companies(tag_id: str | None, segment_id: str | None, **options: Any) -> None:
    """Companies, optionally by tag or by segment (not both)."""
    if tag_id is not None and segment_id is not None:
        raise click.UsageError("--tag-id and --segment-id cannot be combined (the API refuses it)")
    _run(lambda client: client.companies(tag_id=tag_id, segment_id=segment_id), **options)


@cli.command()
@_fetch_options
def contacts(**options: Any) -> None:
    """Leads."""
    _run(lambda client: client.contacts(), **options)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--users", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Enforce this many requests per 10-second window (429 past it).",
)
@click.option(
    "--rate-window",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Length of a rate-limit window in seconds.",
)
@click.option("--token", default=None, help="Accept only this token [default: any non-empty].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the synthetic data.")
@click.option(
    "--faults",
    default="",
    help="Injected faults, e.g. 'error_rate=0.05,reset_rate=0.01,seed=3' "
    "(keys: see asyncfetch/_faults.py).",
)
@click.option(
    "--insert-users-every",
    type=click.IntRange(min=1),
    default=None,
    help="Add a user at the front of the user lists after every N user pages.",
)
def serve(
    host: str,
    port: int,
    users: int,
    latency_ms: float,
    rate_limit: int | None,
    rate_window: int,
    token: str | None,
    seed: int,
    faults: str,
    insert_users_every: int | None,
) -> None:
    """Run the bundled Intercom-compatible server (test and benchmark stand-in)."""
    from ._faults import FaultConfig
    from ._server import ServerConfig, run_server

    try:
        fault_config = FaultConfig.parse(faults)
        config = ServerConfig(
            users=users,
            seed=seed,
            latency_ms=latency_ms,
            rate_limit=rate_limit,
            rate_window_seconds=rate_window,
            token=token,
            faults=fault_config if fault_config.active else None,
            insert_users_every=insert_users_every,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    run_server(config, host=host, port=port)


@cli.command()
@click.option(
    "--out",
    "out_path",
    default="demo-output/users.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option("--users", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=50.0, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True)
def demo(out_path: str, users: int, latency_ms: float, concurrency: int) -> None:
    """Fetch a tag's users from the bundled server, concurrently and then sequentially."""
    from ._demo import run_demo

    with _cli_errors():
        asyncio.run(
            run_demo(out_path=out_path, users=users, latency_ms=latency_ms, concurrency=concurrency)
        )


def _run(
    make_listing: ListingFactory,
    *,
    base_url: str,
    token: str | None,
    out_path: str,
    per_page: int,
    concurrency: int,
    rate: float | None,
    timeout: float,
    retries: int,
    max_retry_wait: float,
    keep_duplicates: bool,
    allow_insecure_http: bool,
    quiet: bool,
) -> None:
    if not token:
        raise click.UsageError("no token: pass --token or set INTERCOM_ACCESS_TOKEN")
    try:
        # Every argument is checked here, before a file is opened or a request sent.
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
        make_listing(client)  # validates the filters; the listing itself is discarded
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    show_progress = not quiet and sys.stderr.isatty()
    out = _Output(out_path)
    # Retries are counted and reported here; stamina's own log line per retry is noise.
    stamina.instrumentation.set_on_retry_hooks([])
    with _cli_errors(), contextlib.closing(out):
        summary = asyncio.run(_fetch(client, make_listing, out, show_progress=show_progress))
    if summary.changes.changed:
        click.echo(f"asyncfetch: warning: {summary.changes.describe()}", err=True)
    if not quiet:
        stats = client.stats
        click.echo(
            f"{summary.items} items, {summary.pages} pages in {summary.seconds:.2f} s "
            f"({stats.requests / summary.seconds if summary.seconds else 0:.0f} requests/s; "
            f"{stats.requests} requests, {stats.retries} retries, "
            f"{stats.statuses[429]} answered 429, {stats.rate_limit_pauses} rate-limit pauses)",
            err=True,
        )


async def _fetch(
    client: IntercomClient,
    make_listing: ListingFactory,
    out: BinaryWriter,
    *,
    show_progress: bool,
) -> ExportSummary:
    async with client:
        with page_progress(enabled=show_progress) as on_page:
            return await export_jsonl(make_listing(client), out, on_page=on_page)


class _Output:
    """The ``--out`` file, opened (and so emptied) only when page 1 has arrived:
    a run that fails at once leaves an earlier export untouched."""

    def __init__(self, path: str) -> None:
        if path != "-":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                raise click.BadParameter(
                    f"cannot write {path!r}: {folder!r} is not a writable folder",
                    param_hint="'--out'",
                )
        self._path = path
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._file = click.open_file(self._path, "wb")
        return self._file.write(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@contextlib.contextmanager
def _cli_errors() -> Iterator[None]:
    """Turn a failed fetch into one line on stderr and exit 1; Ctrl-C into exit 130."""
    try:
        yield
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="asyncfetch")
