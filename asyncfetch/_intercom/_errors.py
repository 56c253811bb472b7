"""What Intercom's error responses say, read for the transport (``decode_error``).

Intercom answers an error with an ``error.list`` body::

    {"type": "error.list", "request_id": "...",
     "errors": [{"code": "not_found", "message": "User Not Found"}]}

Older payloads carry the code under ``type`` instead of ``code`` (API 1.x
reference, "Errors"). The first error's code and message, and the
``request_id``, become the ``APIError``'s; anything else (a proxy's HTML page,
an empty body) leaves the message to the body's first line.

One error body means something else: a 400 "page limit reached, please use
scroll API" on a users list (intercom-node#115, python-intercom#186) is the
10,000-record cap of page-numbered listing, so it becomes ``PageLimitError``
and the client goes on by the scroll. The other endpoints' ways of saying the
same are read in ``_pages.py``, since they are only the cap on a list request.

Kept out of ``_http`` so that the transport knows no particular API.
"""

from __future__ import annotations

from typing import Final

import orjson
from multidict import CIMultiDictProxy

from .._exceptions import AsyncFetchError, PageLimitError
from .._http._transport import ErrorReport, body_snippet

__all__ = ["decode_error"]

_PAGE_LIMIT_MESSAGE: Final = "page limit reached"


def decode_error(
    status: int, body: bytes, headers: CIMultiDictProxy[str]
) -> ErrorReport | AsyncFetchError:
    """Read an Intercom error response: an ``ErrorReport`` of its ``error.list``,
    or ``PageLimitError`` for the users lists' "page limit reached"."""
    code = request_id = message = None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("type") == "error.list":
        request_id = payload.get("request_id")
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            # Older payloads carry the code under "type" instead of "code".
            code = errors[0].get("code") or errors[0].get("type")
            message = errors[0].get("message")
    if not message:
        message = body_snippet(body) or "no error message"
    if status == 400 and _PAGE_LIMIT_MESSAGE in str(message).lower():
        return PageLimitError(
            f"the API stopped page-numbered listing: {message}; "
            "Intercom lists at most 10,000 records by page (use the Scroll API past that)"
        )
    return ErrorReport(
        message=str(message),
        code=str(code) if code else None,
        request_id=str(request_id) if request_id else None,
    )
