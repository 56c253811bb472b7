"""``asyncfetch tags``, ``segments`` and ``admins``: the small lists, to find ids by.

A first run needs a tag or segment id, and the place to find one should not
be Intercom's web UI or a hand-made ``curl``. These commands read the small
lists (one response each, no pages) and print them: a table on a terminal,
for reading; JSON Lines otherwise, for ``jq`` and scripts. Same options,
environment variables and exit codes as the fetching commands.
"""

from __future__ import annotations

import sys
from typing import Any, Final

import click
import orjson

from .. import IntercomClient, Item, Retries
from ._loop import run as run_on_loop
from ._run import cli_errors
from ._wording import count, option_message

__all__ = ["SMALL_LISTS", "run_small_list"]

#: Columns beyond id and name, shown when some item carries them: counts where
#: the API gives them (``GET /segments?include_count=true`` adds ``count``).
SMALL_LISTS: Final = {
    "tags": ("tag", ("count", "user_count", "company_count")),
    "segments": ("segment", ("person_type", "count")),
    "admins": ("admin", ("email",)),
}


def run_small_list(
    name: str,
    *,
    base_url: str,
    token: str | None,
    timeout: float,
    retries: int,
    allow_insecure_http: bool,
) -> None:
    """Fetch the small list ``name`` and print it; usage errors before any request."""
    if not token:
        raise click.UsageError("no token: pass --token or set INTERCOM_ACCESS_TOKEN")
    try:
        client = IntercomClient(
            token=token,
            base_url=base_url,
            timeout=timeout,
            retries=Retries(attempts=retries),
            allow_insecure_http=allow_insecure_http,
            concurrency=1,
        )
    except ValueError as exc:
        raise click.UsageError(option_message(str(exc))) from None
    with cli_errors():
        items = run_on_loop(_fetch(client, name))
    if sys.stdout.isatty():
        _print_table(name, items)
        return
    # A closed pipe (`asyncfetch tags | head -1`) is a normal end; a full disk
    # or any other write error is one line and exit 1, as for the fetches.
    with cli_errors():
        out = sys.stdout.buffer
        out.write(b"".join(orjson.dumps(item) + b"\n" for item in items))
        out.flush()


async def _fetch(client: IntercomClient, name: str) -> list[Item]:
    async with client:
        listing = getattr(client, name)()
        async with listing:
            return [item async for item in listing]


def _print_table(name: str, items: list[Item]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    singular, extras = SMALL_LISTS[name]
    columns = ["id", "name", *(key for key in extras if any(key in item for item in items))]
    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for item in items:
        table.add_row(*(Text(_cell(item.get(key))) for key in columns))
    console = Console()
    console.print(table)
    console.print(count(len(items), singular), style="dim", highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
