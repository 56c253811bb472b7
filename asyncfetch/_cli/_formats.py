"""Output formats, written page by page as pages arrive: JSON Lines, a JSON array, CSV.

Each format turns a page of items into bytes on its own, given how many items
were written before it, so an interrupted file can be continued exactly where
its last whole page ended (``--resume``) and come out byte for byte as an
uninterrupted run would have written it.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, Protocol

import orjson

from .._json import dumps, dumps_each

__all__ = ["FORMATS", "Csv", "JsonArray", "JsonLines", "OutputFormat", "make_format"]

_LINE: Final = orjson.OPT_APPEND_NEWLINE


class OutputFormat(Protocol):
    """Bytes for the start of the file, each page, and the end of the file."""

    def header(self) -> bytes: ...

    def page(self, items: Sequence[Any], *, written_before: int) -> bytes: ...

    def footer(self, *, written: int) -> bytes: ...


class JsonLines:
    """One JSON object per line (the default)."""

    def header(self) -> bytes:
        return b""

    def page(self, items: Sequence[Any], *, written_before: int) -> bytes:
        dumps = orjson.dumps
        try:
            return b"".join([dumps(item, option=_LINE) for item in items])
        except orjson.JSONEncodeError:  # an integer wider than 64 bits: keep it exact
            return b"".join([line + b"\n" for line in dumps_each(items)])

    def footer(self, *, written: int) -> bytes:
        return b""


class JsonArray:
    """One JSON array of every item, one item per line."""

    def header(self) -> bytes:
        return b"["

    def page(self, items: Sequence[Any], *, written_before: int) -> bytes:
        if not items:
            return b""
        dumps = orjson.dumps
        # The separator comes before each item, so a page never needs to know
        # whether another follows it.
        first = b"\n" if written_before == 0 else b",\n"
        try:
            return first + b",\n".join([dumps(item) for item in items])
        except orjson.JSONEncodeError:  # an integer wider than 64 bits: keep it exact
            return first + b",\n".join(dumps_each(items))

    def footer(self, *, written: int) -> bytes:
        return b"\n]\n" if written else b"]\n"


OnMissingField = Callable[[str, "str | None"], None]
"""Called with a CSV field that no record of the first page carries, and the
nearest path those records do carry (``None`` if none is close)."""


class Csv:
    """Comma-separated values with a header line; ``fields`` are dotted paths
    (``custom_attributes.plan``), trimmed of spaces. Nested objects and lists are
    written as JSON, ``null`` and missing fields as empty cells.

    A misspelt field would give a column silently empty, so the first page
    that has records is checked: each field none of them carries is passed
    to ``on_missing`` with the nearest path they do carry. ``never_found``
    lists the fields no record written so far carried; it is kept up to date
    by looking, on each page, only for the fields still missing (nothing per
    item once every field has been seen).
    """

    def __init__(self, fields: Sequence[str], *, on_missing: OnMissingField | None = None) -> None:
        fields = [field.strip() for field in fields]
        if not fields or not all(fields):
            raise ValueError(
                "CSV needs a list of fields, e.g. --fields id,email,custom_attributes.plan"
            )
        self._fields = fields
        self._paths = [field.split(".") for field in fields]
        self._on_missing = on_missing
        self._checked_first = False
        self.never_found = list(fields)

    def header(self) -> bytes:
        return self._rows([self._fields])

    def page(self, items: Sequence[Any], *, written_before: int) -> bytes:
        if self.never_found and items:
            self._look_for_missing(items)
        return self._rows([[_cell(item, path) for path in self._paths] for item in items])

    def _look_for_missing(self, items: Sequence[Any]) -> None:
        self.never_found = [
            field
            for field in self.never_found
            if not any(_carries(item, field.split(".")) for item in items)
        ]
        if self._checked_first:
            return
        self._checked_first = True
        if self._on_missing is None or not self.never_found:
            return
        known = sorted({path for item in items for path in _paths_of(item)})
        for field in self.never_found:
            close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
            self._on_missing(field, close[0] if close else None)

    def footer(self, *, written: int) -> bytes:
        return b""

    @staticmethod
    def _rows(rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        return buffer.getvalue().encode()


def _carries(item: Any, path: list[str]) -> bool:
    value = item
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def _paths_of(item: Any, prefix: str = "", depth: int = 4) -> Iterator[str]:
    """The dotted paths a record carries, nested objects followed ``depth`` levels."""
    if not isinstance(item, dict):
        return
    for key, value in item.items():
        path = f"{prefix}{key}"
        yield path
        if depth > 1 and isinstance(value, dict):
            yield from _paths_of(value, path + ".", depth - 1)


def _cell(item: Any, path: list[str]) -> str:
    value = item
    for key in path:
        if not isinstance(value, dict):
            return ""
        value = value.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return dumps(value).decode()


FORMATS: Final = ("jsonl", "json", "csv")


def make_format(
    name: str, fields: Sequence[str] | None = None, *, on_missing: OnMissingField | None = None
) -> OutputFormat:
    """The format called ``name`` (one of ``FORMATS``); ``fields`` (and ``on_missing``,
    see ``Csv``) for CSV."""
    if name == "jsonl":
        return JsonLines()
    if name == "json":
        return JsonArray()
    if name == "csv":
        return Csv(fields or [], on_missing=on_missing)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {name!r}")
