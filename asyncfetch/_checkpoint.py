"""The checkpoint beside an output file, so an interrupted export can resume.

``users.jsonl`` gets ``users.jsonl.checkpoint``: what was asked for (the
fingerprint: endpoint, filters, per_page, format…), how many pages are whole
in the file and how many bytes they fill. The file is flushed before the
checkpoint moves, and the checkpoint is replaced atomically, so after any
stop (``kill -9`` included) the checkpoint never claims more than the file
holds. On resume the file is cut back to the checkpoint's length, which
drops a page half-written when the process died.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
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

    def save(self, path: str) -> None:
        data = orjson.dumps({"version": _VERSION, **asdict(self)})
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
        if data.get("fingerprint") != fingerprint:
            theirs = data.get("fingerprint")
            differences = sorted(
                key
                for key in set(fingerprint) | set(theirs or {})
                if fingerprint.get(key) != (theirs or {}).get(key)
            )
            raise CheckpointMismatch(
                f"{path} is for a different request (differs in: {', '.join(differences)}); "
                "rerun with the same options, or delete it (or drop --resume) to start afresh"
            )
        return cls(
            fingerprint=fingerprint,
            pages=int(data["pages"]),
            items=int(data["items"]),
            offset=int(data["offset"]),
        )

    @staticmethod
    def remove(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
