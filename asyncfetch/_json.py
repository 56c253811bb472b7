"""JSON that keeps every integer exact.

orjson reads an integer wider than 64 bits as a float
(``123456789012345678901234567890`` becomes ``1.2345678901234568e+29``) and
refuses to write one. An export must not change a value, so a body holding
such a number is read by the standard library's ``json`` instead, and a
record holding one is written by it.

Finding them costs one ``bytes.translate`` and two substring searches over
the body: every integer orjson cannot hold has at least 20 digits, or is
negative with 19 (below ``-2**63``, ``-9223372036854775808``), so no 20
digits in a row and no ``-`` before 19 means none is there. Measured on a typical 50-user page
(70 KB): about 80 µs, against 170 µs for ``orjson.loads`` itself and several
milliseconds for the request, so the check stays below a tenth of the page's
client-side cost; a body that has such a run (a 20-digit number, even inside
a string) is parsed about four times slower, and nothing else changes.

Cheaper checks tried (issue 12; timeit on the bundled server's 75 KB page of
50 users, best of 7, a loaded machine: ``orjson.loads`` 184 µs, this check
74 µs): a regular expression for the digit run, ``rb"[0-9]{19}"``, 665 µs
(``re`` tries a match at every digit); one anchored on what precedes a JSON
number, ``rb"[:,[] *-?[0-9]{19}"``, 490 µs; a sample of every sixth byte
(a run of 19 digits holds 3 sampled digits in a row) 14 µs, but Intercom's
24-character hexadecimal ids are dense with digits and set it off on every
page, so the full check would follow it anyway. orjson has no option to
refuse or keep wide integers. The translation stays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import orjson

__all__ = ["dumps_each", "loads"]

# Digits become "0", "-" stays, everything else " ": a run of 20 digits becomes
# 20 zeros.
_DIGITS_ONLY: Final = bytes(
    0x30 if 0x30 <= byte <= 0x39 else byte if byte == 0x2D else 0x20 for byte in range(256)
)
_WIDE_NUMBER: Final = b"0" * 20
_WIDE_NEGATIVE: Final = b"-" + b"0" * 19


def loads(body: bytes) -> Any:
    """Parse ``body`` like ``orjson.loads``, keeping integers wider than 64 bits
    exact. Raises ``ValueError`` (``json.JSONDecodeError`` or orjson's subclass
    of it) for a body that is not JSON."""
    digits = body.translate(_DIGITS_ONLY)
    if _WIDE_NUMBER in digits or _WIDE_NEGATIVE in digits:
        return json.loads(body)
    return orjson.loads(body)


def dumps(value: Any) -> bytes:
    """``orjson.dumps(value)``, or the standard library's compact JSON for a
    value orjson refuses (an integer wider than 64 bits)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def dumps_each(items: Sequence[Any]) -> list[bytes]:
    """``dumps`` of each item: the slow path of a page orjson refused."""
    return [dumps(item) for item in items]
