"""asyncfetch in an async web backend: a Starlette app that streams a list as NDJSON.

Run it from the repository's folder (``pip install 'asyncfetch[examples]'``;
``make test`` installs it into ``.venv``)::

    export INTERCOM_ACCESS_TOKEN=...    # and INTERCOM_BASE_URL=... for the bundled server
    uvicorn examples.web_backend:app
    curl 'http://127.0.0.1:8000/users?tag_id=3142'

``tests/test_web_backend.py`` runs it under uvicorn against the bundled server.

Why it is shaped this way:

- **One client for the whole app**, made in the lifespan: it owns the
  connection pool, the concurrency limit and the rate budget, which every
  request shares (a client per request would open a pool per request and let
  each spend the app's rate budget as if it were alone).
- **Page 1 before the status line.** The first page is fetched before the
  response starts, so a wrong tag id or token is a plain ``404``/``502`` with
  a JSON error, not a ``200`` that breaks off.
- **A page per chunk.** Each page's records become one chunk of lines
  (``orjson`` with ``OPT_APPEND_NEWLINE``), not one ``send`` per record.
- **Closed when the client goes away.** Starlette cancels the streaming task
  when the client disconnects, wherever it is: waiting for a page or sending
  one. ``ListingResponse`` holds the listing in ``async with`` around the
  whole response, so either way closing the listing cancels and awaits the
  requests it has running ahead before the handler returns: no request is sent
  to the API after the disconnect, and no task or connection is left behind.
  Between two pages the stream gives the event loop a turn, so a disconnect
  is noticed even when the API is faster than the client and pages are ready
  one after another.
- **A failure after the first line breaks the response** (the server drops
  the connection without the chunked encoding's last chunk), so no client
  takes a list cut short for the whole list.

Settings come from the environment, as for the ``asyncfetch`` command:
``INTERCOM_ACCESS_TOKEN`` (required), ``INTERCOM_BASE_URL`` (default
Intercom's) and ``INTERCOM_CONCURRENCY`` (requests in flight for the whole
app, default 16).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from asyncfetch import (
    DEFAULT_BASE_URL,
    AsyncFetchError,
    IntercomClient,
    Item,
    Listing,
    NotFoundError,
    Page,
)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    token = os.environ.get("INTERCOM_ACCESS_TOKEN")
    if not token:
        raise RuntimeError("set INTERCOM_ACCESS_TOKEN to an Intercom access token")
    async with IntercomClient(
        token=token,
        base_url=os.environ.get("INTERCOM_BASE_URL", DEFAULT_BASE_URL),
        concurrency=int(os.environ.get("INTERCOM_CONCURRENCY", "16")),
    ) as client:
        yield {"client": client}  # request.state.client; closed when the app stops


async def users(request: Request) -> Response:
    """``GET /users[?tag_id=...|?segment_id=...]``: the list as NDJSON, one record a line."""
    client: IntercomClient = request.state.client
    try:
        listing = client.users(
            tag_id=request.query_params.get("tag_id"),
            segment_id=request.query_params.get("segment_id"),
        )
    except ValueError as exc:  # tag_id and segment_id together
        return JSONResponse({"error": str(exc)}, status_code=400)
    pages = listing.pages()
    try:
        first = await anext(pages)
    except AsyncFetchError as exc:  # the fetch has ended; its message never holds the token
        status = 404 if isinstance(exc, NotFoundError) else 502
        return JSONResponse({"error": str(exc)}, status_code=status)
    return ListingResponse(listing, first, pages)


class ListingResponse(StreamingResponse):
    """A listing as NDJSON, a page per chunk; the listing is closed when the
    response ends, however it ends (the list's end, an error, the client leaving)."""

    def __init__(
        self, listing: Listing[Item], first: Page[Item], rest: AsyncIterator[Page[Item]]
    ) -> None:
        self.listing = listing
        self.lines = _ndjson(first, rest)
        super().__init__(self.lines, media_type="application/x-ndjson")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette leaves the body iterator suspended when the client goes
        # away during a send; closing both here, in the handler's task, stops
        # the fetch at once rather than whenever the garbage collector runs.
        async with self.listing, aclosing(self.lines):
            await super().__call__(scope, receive, send)


async def _ndjson(
    first: Page[Item], rest: AsyncIterator[Page[Item]]
) -> AsyncGenerator[bytes, None]:
    yield _lines(first.items)
    async for page in rest:
        # Pages already fetched come without a pause; one turn of the event
        # loop per page lets the server notice a client that has gone away.
        await asyncio.sleep(0)
        yield _lines(page.items)


def _lines(items: Sequence[Item]) -> bytes:
    """The page's records, one JSON object a line."""
    dumps, line = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    try:
        return b"".join([dumps(item, option=line) for item in items])
    except orjson.JSONEncodeError:  # an integer wider than 64 bits: keep it exact
        return "".join([json.dumps(item, separators=(",", ":")) + "\n" for item in items]).encode()


app = Starlette(routes=[Route("/users", users)], lifespan=lifespan)
