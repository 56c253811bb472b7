"""What the modules of the bundled Intercom server share.

One error class and one integer check, so that the server, its scroll
registry, its faults and its workspace refuse a request or an option in the
same way: a handler (or the `ScrollRegistry` it calls) raises `ApiError`,
and `IntercomServer` answers it with Intercom's ``error.list`` body; every
option that takes a whole number is checked by `is_int` (``True`` is no
number of users).
"""

from __future__ import annotations

__all__ = ["ApiError", "is_int"]


class ApiError(Exception):
    """Ends a request with an Intercom ``error.list`` body (the server answers it).

    Args:
        status: The HTTP status (400, 401, 404...).
        code: The ``errors[0].code`` of the body.
        message: The ``errors[0].message`` of the body.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def is_int(value: object) -> bool:
    """Is ``value`` an ``int`` and not a ``bool`` (which Python counts as one)?"""
    return isinstance(value, int) and not isinstance(value, bool)
