"""Words for people: counts with the right plural, and library messages in CLI terms.

The library checks its keyword arguments and says what is wrong in its own
vocabulary (``max_wait must be ...``). Someone at the command line never
typed ``max_wait``: they typed ``--max-retry-wait``. `option_message` rewrites
a library ``ValueError`` message at the CLI boundary so a usage error names
the option to change, and the library keeps the names its callers use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "OPTION_FOR_PARAMETER",
    "SERVE_OPTION_FOR_PARAMETER",
    "count",
    "option_message",
    "times_faster",
]

#: The CLI option behind each library parameter a ValueError may name.
OPTION_FOR_PARAMETER: Final = {
    "token": "--token",
    "base_url": "--base-url",
    "concurrency": "--concurrency",
    "rate": "--rate",
    "per_page": "--per-page",
    "timeout": "--timeout",
    "attempts": "--retries",
    "max_wait": "--max-retry-wait",
    "tag_id": "--tag-id",
    "segment_id": "--segment-id",
    "company_id": "--company-id",
    "id": "--id",
    "format": "--format",
}

#: The same for ``asyncfetch serve`` and the bundled server's ``ServerConfig``.
SERVE_OPTION_FOR_PARAMETER: Final = {
    "users": "--users",
    "seed": "--seed",
    "latency_ms": "--latency-ms",
    "rate_limit": "--rate-limit",
    "rate_window_seconds": "--rate-window",
    "token": "--token",
    "insert_users_every": "--insert-users-every",
}

# Phrases that tell a library caller which argument to pass; the option is
# already named beside them.
_PHRASES: Final = (
    ("allow_insecure_http=True (--allow-insecure-http)", "--allow-insecure-http"),
    ("pass the token as token=... (--token)", "pass the token with --token"),
)

_LEADING_NAME: Final = re.compile(r"^([a-z_]+)\b")
# "must be None (any token accepted) or ...": None is how a library caller leaves
# a setting unset; at the command line, one leaves the option out.
_NONE_FIRST: Final = re.compile(r"must be None(?: \([^)]*\))? or ")


def option_message(message: str, options: Mapping[str, str] = OPTION_FOR_PARAMETER) -> str:
    """``message`` from a library ``ValueError``, naming CLI options instead of parameters.

    Only the name a message starts with is rewritten (``tag_id must be ...``),
    so a word like "id" inside a sentence stays as it is.
    """
    for phrase, replacement in _PHRASES:
        message = message.replace(phrase, replacement)
    match = _LEADING_NAME.match(message)
    if match and match.group(1) == "token":
        message = message.partition(", got ")[0]  # never echo a token, even a malformed one
    if match and match.group(1) in options:
        message = options[match.group(1)] + message[match.end() :]
    message = _NONE_FIRST.sub("must be ", message)
    return message.replace(" or None, got ", ", got ")


def count(number: int, singular: str, plural: str | None = None) -> str:
    """``"1 user"``, ``"2 users"``, ``"0 users"`` (``plural`` for irregular words)."""
    word = singular if number == 1 else (plural or singular + "s")
    return f"{number} {word}"


def times_faster(seconds: float, baseline_seconds: float) -> str:
    """How ``seconds`` compares with ``baseline_seconds``: ``"3.2x faster"`` or
    ``"1.5x slower"`` (never "0.7x faster")."""
    if seconds <= 0 or baseline_seconds <= 0:
        return "as fast"
    if seconds <= baseline_seconds:
        return f"{baseline_seconds / seconds:.1f}x faster"
    return f"{seconds / baseline_seconds:.1f}x slower"
