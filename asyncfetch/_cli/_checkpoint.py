"""The checkpoint beside an output file, so an interrupted export can resume.

``users.jsonl`` gets ``users.jsonl.checkpoint``: what was asked for (the
fingerprint: endpoint, filters, per_page, format…), how many pages are whole
in the file and how many bytes they fill. The file is flushed before the
checkpoint moves, and the checkpoint is replaced atomically, so after any
stop (``kill -9`` included) the checkpoint never claims more than the file
holds. On resume the file is cut back to the checkpoint's length, which
drops a page half-written when the process died.

Saving one is a file written and renamed (0.3-0.5 ms here), more than the
rest of a 5-item page costs the command: ``CheckpointWriter`` saves at most
every ``SAVE_INTERVAL`` seconds and keeps the newest progress in between,
saved when asked (``save_pending``: at the end of a list, on a failure or
Ctrl-C, and before a list goes on by the scroll). Pages slower than that are
each saved as before; only a ``kill -9`` can leave the checkpoint behind the
file, by at most ``SAVE_INTERVAL``'s worth of pages, fetched again on resume.

The checkpoint is read as untrusted input: a hand-edited one (a missing
``offset``, ``pages: -1``) is refused with one line, never a traceback. It
also records the list's ``total_count`` when it was last seen, so a resume
can tell that the list changed a lot meanwhile.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "SAVE_INTERVAL",
    "Checkpoint",
    "CheckpointMismatch",
    "CheckpointWriter",
    "checkpoint_path",
]

_VERSION = 1
SAVE_INTERVAL = 0.02
"""Seconds between two checkpoint saves of a list whose pages come faster."""


class CheckpointMismatch(Exception):
    """The checkpoint beside the output belongs to a different request."""


def checkpoint_path(out_path: str) -> str:
    return out_path + ".checkpoint"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """``pages`` whole pages (``items`` items) fill the first ``offset`` bytes of the file."""

    fingerprint: dict[str, Any]
    pages: int = 0
    items: int = 0
    offset: int = 0
    total_count: int | None = None
    """The list's ``total_count`` when a page was last written (``None``: not given)."""

    def save(self, path: str) -> None:
        # Not dataclasses.asdict: it deep-copies the fingerprint, for nothing.
        data = orjson.dumps(
            {
                "version": _VERSION,
                "fingerprint": self.fingerprint,
                "pages": self.pages,
                "items": self.items,
                "offset": self.offset,
                "total_count": self.total_count,
            }
        )
        temporary = path + ".tmp"
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str, fingerprint: dict[str, Any]) -> Checkpoint | None:
        """The checkpoint at ``path`` for this request; ``None`` if there is none.

        Raises ``CheckpointMismatch`` when it belongs to another request, and
        ``ValueError`` when it cannot be read.
        """
        try:
            with open(path, "rb") as file:
                data = orjson.loads(file.read())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the checkpoint {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ValueError(f"{path} is not an asyncfetch checkpoint of this version")
        theirs = data.get("fingerprint")
        if not isinstance(theirs, dict):
            raise ValueError(f"{path} is not a valid checkpoint (no fingerprint)")  # noqa: TRY004
        if theirs != fingerprint:
            differences = sorted(
                key
                for key in set(fingerprint) | set(theirs)
                if fingerprint.get(key) != theirs.get(key)
            )
            raise CheckpointMismatch(
                f"{path} is for a different request (differs in: {', '.join(differences)}); "
                "rerun with the same options, or delete it (or drop --resume) to start afresh"
            )
        counts: dict[str, Any] = {key: data.get(key) for key in ("pages", "items", "offset")}
        for key, value in counts.items():
            if not _is_count(value):
                raise ValueError(
                    f"{path} is not a valid checkpoint ({key}: {value!r}, not a whole number "
                    "of at least 0); delete it (or drop --resume) to start afresh"
                )
        total_count = data.get("total_count")
        if total_count is not None and not _is_count(total_count):
            raise ValueError(
                f"{path} is not a valid checkpoint (total_count: {total_count!r}); "
                "delete it (or drop --resume) to start afresh"
            )
        return cls(
            fingerprint=fingerprint,
            pages=counts["pages"],
            items=counts["items"],
            offset=counts["offset"],
            total_count=total_count,
        )

    @staticmethod
    def remove(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


class CheckpointWriter:
    """Saves the checkpoints of one list to ``path``: the first offered, then at most
    one every ``interval`` seconds (by ``clock``), keeping the newest in between."""

    def __init__(
        self,
        path: str,
        *,
        interval: float = SAVE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._interval = interval
        self._clock = clock
        self._pending: Checkpoint | None = None
        self._saved_at = -math.inf

    def offer(self, checkpoint: Checkpoint) -> None:
        """The file now holds what ``checkpoint`` says (flushed): save it, or keep
        it until the interval is over."""
        now = self._clock()
        if now - self._saved_at < self._interval:
            self._pending = checkpoint
            return
        self._pending, self._saved_at = None, now
        checkpoint.save(self.path)

    def save_pending(self) -> None:
        """Save the newest checkpoint offered and not saved yet, if any."""
        if self._pending is not None:
            checkpoint, self._pending = self._pending, None
            self._saved_at = self._clock()
            checkpoint.save(self.path)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
