"""The ``asyncfetch`` command line: a thin shell over the library.

Exit codes: 0 success; 1 the API or the network failed (one line on stderr,
no traceback); 2 a usage error, reported before any request is sent;
130 interrupted.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from .. import DEFAULT_BASE_URL, IntercomClient, Retries, __version__
from ._fleet import fleet
from ._loop import run as run_on_loop
from ._options import fetch_options
from ._pages import pages
from ._run import (
    LineUsageError,
    cli_errors,
    companies_by,
    company_users_by,
    contacts_list,
    run_fetch,
    users_by,
)
from ._wording import SERVE_OPTION_FOR_PARAMETER, option_message

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="asyncfetch")
def cli() -> None:
    """Fetch every page of an Intercom list concurrently, in order, as JSON Lines.

    Find ids with `asyncfetch tags` and `asyncfetch segments`. To try it with no
    token and no network, run `asyncfetch serve` and point the other commands at
    it: INTERCOM_BASE_URL=http://127.0.0.1:8000 and any token.
    """


# The library's defaults are the command's: one place says what they are.
_CLIENT_DEFAULTS: Final = {
    name: parameter.default
    for name, parameter in inspect.signature(IntercomClient).parameters.items()
}
_RETRIES: Final = Retries()


def _fetch_options(command: F) -> F:
    """The options every Intercom fetching command takes: Intercom's own
    (where, who, page size, duplicates, a folder of files), then those shared
    with ``pages`` (``_options.py``)."""
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
            "--db",
            "db_url",
            default=None,
            metavar="URL",
            help="Sync into this database instead of a file: sqlite:///path/x.db (or a path "
            "ending .db/.sqlite) or postgresql://user@host/db. Rerun to continue a stopped "
            "run; --restart starts it afresh. Tag, segment and company lists are full "
            "passes (the API sorts only GET /users).",
        ),
        click.option(
            "--per-page",
            type=click.IntRange(1, 60),
            default=_CLIENT_DEFAULTS["per_page"],
            show_default=True,
            help="Items per page (Intercom allows 1 to 60).",
        ),
        click.option(
            "--keep-duplicates",
            is_flag=True,
            help="Keep a record seen twice when the list changes mid-fetch.",
        ),
        click.option(
            "--out-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Write each list to its own file in this folder (made if missing).",
        ),
        fetch_options(
            client=IntercomClient,
            secret="the token",
            several_lists=True,
            fields_example="id,email,custom_attributes.plan",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@click.option("--tag-id", multiple=True, help="Users carrying this tag; repeat for several lists.")
@click.option("--segment-id", multiple=True, help="Users in this segment; repeatable.")
@click.option(
    "--scroll",
    is_flag=True,
    help="Use the Scroll API (done anyway past the 10,000-record cap of page listing).",
)
@click.option(
    "--incremental",
    is_flag=True,
    help="With --db, all users: fetch only those updated since the last complete run "
    "started (sort=updated_at&order=desc, stopping at the first older page). Tag and "
    "segment lists cannot: the API sorts only GET /users.",
)
@click.option(
    "--incremental-margin",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Seconds subtracted from the bookmark: timestamps are whole seconds, clocks drift.",
)
@_fetch_options
def users(
    tag_id: tuple[str, ...],
    segment_id: tuple[str, ...],
    scroll: bool,
    incremental: bool,
    incremental_margin: float,
    **options: Any,
) -> None:
    """Users and leads, optionally by tag or by segment (not both)."""
    if tag_id and segment_id:
        raise LineUsageError("--tag-id and --segment-id cannot be combined (the API refuses it)")
    if incremental:
        if options.get("db_url") is None:
            raise LineUsageError(
                "--incremental goes with --db (the bookmark lives in the database)"
            )
        if tag_id or segment_id or scroll:
            raise LineUsageError(
                "--incremental is for all users: Intercom documents sort=updated_at for "
                "GET /users only, so a tag's or segment's list is a full pass (drop "
                "--incremental), and the Scroll API has no order"
            )
        options["incremental_margin"] = incremental_margin
    if tag_id or segment_id:
        specs = [users_by("tag_id", value, scroll=scroll) for value in tag_id]
        specs += [users_by("segment_id", value, scroll=scroll) for value in segment_id]
    else:
        specs = [users_by(None, None, scroll=scroll)]
    run_fetch(specs, **options)


@cli.command("company-users")
@click.option("--id", "id_", multiple=True, help="Intercom's id of a company; repeatable.")
@click.option("--company-id", multiple=True, help="Your own company_id of a company; repeatable.")
@_fetch_options
def company_users(id_: tuple[str, ...], company_id: tuple[str, ...], **options: Any) -> None:
    """Users of companies, by --id or by --company-id (each list its own)."""
    if not id_ and not company_id:
        raise LineUsageError("give --id or --company-id (each may be repeated)")
    specs = [company_users_by("id", value) for value in id_]
    specs += [company_users_by("company_id", value) for value in company_id]
    run_fetch(specs, **options)


@cli.command()
@click.option(
    "--tag-id", multiple=True, help="Companies carrying this tag; repeat for several lists."
)
@click.option("--segment-id", multiple=True, help="Companies in this segment; repeatable.")
@_fetch_options
def companies(tag_id: tuple[str, ...], segment_id: tuple[str, ...], **options: Any) -> None:
    """Companies, optionally by tag or by segment (not both)."""
    if tag_id and segment_id:
        raise LineUsageError("--tag-id and --segment-id cannot be combined (the API refuses it)")
    if tag_id or segment_id:
        specs = [companies_by("tag_id", value) for value in tag_id]
        specs += [companies_by("segment_id", value) for value in segment_id]
    else:
        specs = [companies_by(None, None)]
    run_fetch(specs, **options)


@cli.command()
@_fetch_options
def contacts(**options: Any) -> None:
    """Leads."""
    run_fetch([contacts_list()], **options)


_KEY_COLUMN = 28


def _faults_epilog() -> str:
    """The keys of ``serve --faults``, with their defaults and meanings, for its help.

    Read from `FaultConfig` itself (fields and the Attributes section of its
    docstring), so a new fault setting shows up here without a second list.
    """
    import dataclasses
    import textwrap

    from ..testing import FaultConfig

    described: dict[str, str] = {}
    key = ""
    in_attributes = False
    for line in (FaultConfig.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Attributes:":
            in_attributes = True
        elif in_attributes and stripped:
            name, colon, text = stripped.partition(": ")
            # A key's line is indented 8 spaces, its continuation lines more.
            if colon and name.isidentifier() and len(line) - len(line.lstrip()) == 8:
                key = name
                described[key] = text
            elif key:
                described[key] += " " + stripped
    lines = ["\b", "Keys of --faults (a rate is a probability per list request):"]
    for field in dataclasses.fields(FaultConfig):
        head = f"  {field.name}={field.default}"
        text = described.get(field.name, "").replace("``", "")
        if len(head) >= _KEY_COLUMN:
            lines.append(head)
            head = ""
        lines += textwrap.wrap(
            text,
            width=78,
            initial_indent=f"{head:<{_KEY_COLUMN}}",
            subsequent_indent=" " * _KEY_COLUMN,
        ) or [head]
    return "\n".join(lines)


@cli.command(short_help="Run the bundled Intercom-compatible server.", epilog=_faults_epilog())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port; the URL is printed).",
)
@click.option(
    "--users",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Users in the synthetic workspace (companies and leads scale with it).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Milliseconds added before every answer, as a distant API would.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Enforce this many requests per --rate-window (429 past it).",
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
    metavar="KEY=VALUE,...",
    help="Inject seeded faults into list requests, e.g. "
    "'error_rate=0.05,reset_rate=0.01,seed=3'; the keys are listed below.",
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
    """Run the bundled Intercom-compatible server (test and benchmark stand-in).

    It serves a deterministic synthetic workspace (the same ids every time for
    the same --seed) until Ctrl-C, and prints its URL and a few tag and segment
    ids to try. Point the CLI at it with INTERCOM_BASE_URL=http://127.0.0.1:PORT
    and any token.
    """
    from ..testing import FaultConfig, ServerConfig, run_server

    try:
        fault_config = FaultConfig.parse(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--faults'") from None
    try:
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
        raise LineUsageError(option_message(str(exc), SERVE_OPTION_FOR_PARAMETER)) from None
    try:
        run_server(config, host=host, port=port)
    except OSError as exc:  # the port is taken, the host does not resolve or is not ours
        raise LineUsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@cli.command(short_help="Fetch from the bundled server, concurrently then one by one.")
@click.option(
    "--out",
    "out_path",
    default="demo-output/users.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="JSON Lines file for the users of the concurrent fetch.",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Users in the bundled server's workspace (the tag holds half of them).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="Milliseconds the bundled server waits before every answer.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=_CLIENT_DEFAULTS["concurrency"],
    show_default=True,
    help="Requests in flight at once for the concurrent fetch.",
)
def demo(out_path: str, users: int, latency_ms: float, concurrency: int) -> None:
    """Fetch a tag's users from the bundled server, concurrently and then sequentially.

    No token and no network needed: the server runs in this process on a free
    loopback port.
    """
    from ._demo import run_demo

    with cli_errors():
        run_on_loop(
            run_demo(out_path=out_path, users=users, latency_ms=latency_ms, concurrency=concurrency)
        )


# --- the small lists: tags, segments, admins (to find the ids the fetches take) ---


def _small_list_options(command: F) -> F:
    """The options of ``tags``, ``segments`` and ``admins``: where, who, how patient."""
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
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=_CLIENT_DEFAULTS["timeout"],
            show_default=True,
            help="Seconds allowed for one request.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=1),
            default=_RETRIES.attempts,
            show_default=True,
            help="Tries per request, the first included (1: no retries).",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help="Allow plain http:// to a non-loopback host (sends the token unencrypted).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@_small_list_options
def tags(**options: Any) -> None:
    """List tags: the ids --tag-id takes.

    A table of id and name on a terminal, JSON Lines otherwise.
    """
    from ._lists import run_small_list

    run_small_list("tags", **options)


@cli.command()
@_small_list_options
def segments(**options: Any) -> None:
    """List segments: the ids --segment-id takes.

    A table of id, name and who they hold on a terminal, JSON Lines otherwise.
    """
    from ._lists import run_small_list

    run_small_list("segments", **options)


@cli.command()
@_small_list_options
def admins(**options: Any) -> None:
    """List admins (teammates): id, name, email.

    A table on a terminal, JSON Lines otherwise.
    """
    from ._lists import run_small_list

    run_small_list("admins", **options)


# --- any page-numbered JSON API (the command lives in _pages.py) ---

cli.add_command(pages)

# --- many workspaces (FLEET.toml; the command lives in _fleet.py) ---

cli.add_command(fleet)


def main() -> None:
    """Console-script entry point.

    Click's own refusals (a value out of range, an unknown option or command)
    would print four lines; every usage error is one line here, exit 2.
    """
    try:
        code = cli.main(prog_name="asyncfetch", standalone_mode=False)
    except (LineUsageError, click.exceptions.NoArgsIsHelpError) as exc:
        exc.show()  # one line; or, for a bare `asyncfetch`, the help
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        message = " ".join(exc.format_message().split())
        hint = f" (try '{exc.ctx.command_path} --help' for help)" if exc.ctx else ""
        click.echo(f"asyncfetch: error: {message}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"asyncfetch: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        # Ctrl-C outside a fetch (which reports its own): exit 130, as a fetch does.
        click.echo("asyncfetch: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
