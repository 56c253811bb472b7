"""The options every fetching command shares, defined once.

``users``, ``companies``, ``company-users``, ``contacts`` and ``pages`` fetch
through the same transport and write their files the same way, so their
``--out``, ``--format``, ``--fields``, ``--concurrency``, ``--rate``,
``--timeout``, ``--retries``, ``--max-retry-wait``, ``--shared-budget``,
``--allow-insecure-http``, ``--resume``, ``--restart``, ``--restart-on-change``,
``--stats``, ``--loop``, ``-v`` and ``-q`` are one definition here: a fix to one is a
fix to all. What differs stays with its command: Intercom's ``--token``, ``--base-url`` and
``--per-page`` (1 to 60) in ``_commands.py``; ``pages``' URL, ``--items``,
page-count and ``--header`` options in ``_pages.py``.

The defaults are the library's, read from the signature of the client the
command makes (``IntercomClient`` or ``PagesClient``) and from ``Retries()``,
not repeated here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .. import Retries
from ._formats import FORMATS
from ._loop import LOOPS, choose_loop

__all__ = ["fetch_options"]

F = TypeVar("F", bound=Callable[..., Any])


def fetch_options(
    *, client: Callable[..., object], secret: str, several_lists: bool, fields_example: str
) -> Callable[[F], F]:
    """A decorator adding the shared fetch options to a command.

    Args:
        client: The client class the command makes; its signature gives the
            defaults of ``--concurrency`` and ``--timeout``.
        secret: What ``--allow-insecure-http`` would send unencrypted ("the token").
        several_lists: The command can fetch several lists (``--out`` merges them).
        fields_example: An example of ``--fields`` for this API's records.
    """
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(client).parameters.items()
    }
    retries = Retries()
    merged = " Several lists: merged." if several_lists else ""
    options = [
        click.option(
            "--out",
            "out_path",
            default="-",
            type=click.Path(dir_okay=False, allow_dash=True),
            help=f"File to write, items in API order; '-' is stdout.{merged}",
        ),
        click.option(
            "--format",
            "format_name",
            type=click.Choice(FORMATS),
            default="jsonl",
            show_default=True,
            help="jsonl: one object per line; json: one array; csv: the --fields.",
        ),
        click.option(
            "--fields",
            default=None,
            help=f"CSV columns, dotted paths: {fields_example}",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=defaults["concurrency"],
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
            default=defaults["timeout"],
            show_default=True,
            help="Seconds allowed for one request.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=1),
            default=retries.attempts,
            show_default=True,
            help="Tries per request, the first included (1: no retries).",
        ),
        click.option(
            "--max-retry-wait",
            type=click.FloatRange(min=0, min_open=True),
            default=retries.max_wait,
            show_default=True,
            help="Seconds one request may spend retrying, pauses included.",
        ),
        click.option(
            "--shared-budget",
            is_flag=True,
            help="Share the server's rate budget with other processes on this machine that "
            "use the same credentials and URL, through a locked file in $XDG_RUNTIME_DIR/"
            "asyncfetch or ~/.cache/asyncfetch (numbers only, never the token).",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            help=f"Allow plain http:// to a non-loopback host (sends {secret} unencrypted).",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Continue an interrupted run from its FILE.partial and the checkpoint beside it.",
        ),
        click.option(
            "--restart",
            is_flag=True,
            help="With --resume: fetch again from page 1 a file that is complete already.",
        ),
        click.option(
            "--restart-on-change",
            is_flag=True,
            help="With --resume: start over when the list's total count changed since the "
            "interrupted run (default: warn and continue).",
        ),
        click.option(
            "--stats",
            "stats_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="Write the run's summary as JSON to this file.",
        ),
        click.option(
            "--loop",
            type=click.Choice(LOOPS),
            default="auto",
            show_default=True,
            expose_value=False,
            callback=choose_loop,
            help="Event loop: uvloop (faster, where installed), asyncio's own, or auto: "
            "uvloop if installed.",
        ),
        click.option("-v", "--verbose", count=True, help="-v: retries and pauses; -vv: requests."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr."),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
