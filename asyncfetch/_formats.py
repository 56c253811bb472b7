"""Output formats, written page by page as pages arrive: JSON Lines, a JSON array, CSV.

Each format turns a page of items into bytes on its own, given how many items
were written before it, so an interrupted file can be continued exactly where
its last whole page ended (``--resume``) and come out byte for byte as an
uninterrupted run would have written it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Final, Protocol

import orjson

from ._json import dumps, dumps_each

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


class Csv:
    """Comma-separated values with a header line; ``fields`` are dotted paths
    (``custom_attributes.plan``). Nested objects and lists are written as JSON,
    ``null`` and missing fields as empty cells."""

    def __init__(self, fields: Sequence[str]) -> None:
        if not fields or any(not field.strip() for field in fields):
            raise ValueError(
                "CSV needs a list of fields, e.g. --fields id,email,custom_attributes.plan"
            )
        self._fields = list(fields)
        self._paths = [field.split(".") for field in fields]

    def header(self) -> bytes:
        return self._rows([self._fields])

    def page(self, items: Sequence[Any], *, written_before: int) -> bytes:
        return self._rows([[_cell(item, path) for path in self._paths] for item in items])

    def footer(self, *, written: int) -> bytes:
        return b""

    @staticmethod
    def _rows(rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        return buffer.getvalue().encode()


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


def make_format(name: str, fields: Sequence[str] | None = None) -> OutputFormat:
    """The format called ``name`` (one of ``FORMATS``); ``fields`` for CSV."""
    if name == "jsonl":
        return JsonLines()
    if name == "json":
        return JsonArray()
    if name == "csv":
        return Csv(fields or [])
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {name!r}")
