"""Taking a secret out of text: one rule for the transport's errors and the CLI's logs.

A real Intercom token is some 60 characters: it is replaced wherever it
appears. A short one (a test's ``"x"``, ``"e"``) is replaced only where it
stands alone: replaced inside words it would garble the message, the error
code callers act on (``"scroll_exists"`` -> ``"scroll_e[token]ists"``) and
every log line.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["SHORT_SECRET", "redact"]

SHORT_SECRET: Final = 16
"""A secret shorter than this is replaced only where it stands alone."""


def redact(text: str, secret: str, mark: str) -> str:
    """``text`` with ``secret`` replaced by ``mark`` (see the module docstring)."""
    if not secret or secret not in text:
        return text
    if len(secret) >= SHORT_SECRET:
        return text.replace(secret, mark)
    return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", mark, text)
