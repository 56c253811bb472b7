"""The checkpoint beside an output file, so an interrupted export can resume.

``users.jsonl`` gets ``users.jsonl.checkpoint``: what was asked for (the
fingerprint: endpoint, filters, per_page, format…), how many pages are whole
in the file and how many bytes they fill. The file is flushed before the
checkpoint moves, and the checkpoint is replaced atomically, so after any
stop (``kill -9`` included) the checkpoint never claims more than the file
holds. On resume the file is cut back to the checkpoint's length, which
drops a page half-written when the process died.

The checkpoint is read as untrusted input: a hand-edited one (a missing
``offset``, ``pages: -1``) is refused with one line, never a traceback. It
also records the list's ``total_count`` when it was last seen, so a resume
can tell that the list changed a lot meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Checkpoint", "CheckpointMismatch", "checkpoint_path"]

_VERSION = 1


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


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
