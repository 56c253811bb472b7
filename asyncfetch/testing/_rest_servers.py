"""Two small servers shaped like page-numbered APIs that are not Intercom.

They stand in for real APIs in the tests of ``PagesClient`` and ``asyncfetch
pages``, and answer the way those APIs answer, not the way the client expects:

- ``WordPressServer``: ``GET /wp/v2/posts?page=N&per_page=M`` as the WordPress
  REST API does it (REST API Handbook, "Pagination"): the body is a JSON array
  of posts, newest first; ``X-WP-Total`` and ``X-WP-TotalPages`` say how many
  posts and pages there are; ``per_page`` is 1 to 100 (default 10), anything
  else a 400 ``rest_invalid_param``; a page past the last is a 400
  ``rest_post_invalid_page_number``; an empty list is a 200 ``[]`` with both
  headers 0.
- ``GitHubServer``: ``GET /repos/o/r/issues?page=N&per_page=M`` as GitHub's
  REST API does it (GitHub REST API docs, "Using pagination in the REST API"):
  the body is a JSON array of issues, newest first; the ``Link`` header names
  the ``prev``, ``next``, ``last`` and ``first`` pages, each of those that
  exists, and is absent when the list fits one page; ``per_page`` defaults to
  30 and is capped at 100; a page past the last is a 200 ``[]``.

A test double shares no code with what it checks: this module imports
nothing from the client side of the package. Each server counts what it
sees (``RestStats``: requests, requests in flight at once, the pages asked
for), takes an optional token (``Authorization: Bearer <token>``, or GitHub's
``token <token>``) and an optional ``fail_page``, a page answered 500 until
the attribute is set back to ``None`` (a failure mid-run, for resume tests).

Run one from the command line (until Ctrl-C)::

    python -m asyncfetch.testing wordpress --items 250 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

__all__ = ["GitHubServer", "RestServer", "RestServerThread", "RestStats", "WordPressServer"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class RestStats:
    """What a server has seen.

    Attributes:
        requests: Requests received, every outcome.
        in_flight: Requests being handled now (the latency sleep included).
        max_in_flight: Highest ``in_flight`` seen.
        statuses: Responses by status code.
        pages: The ``page`` asked for by each request, in order of arrival
            (0 when it was not a whole number).
        authorizations: The ``Authorization`` values received, each once.
        rate_limited: Requests refused for a spent rate budget.
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    pages: list[int] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    rate_limited: int = 0


class RestServer:
    """What both servers share: a loopback aiohttp app, its counts, its token check.

    ``items`` is the whole list, in the order the API lists it.
    """

    path = "/"
    default_per_page = 10
    kind = ""

    def __init__(
        self, *, items: int = 0, token: str | None = None, latency_ms: float = 0.0
    ) -> None:
        if items < 0 or latency_ms < 0:
            raise ValueError("items and latency_ms must be at least 0")
        self.token = token
        self.latency = latency_ms / 1000
        self.items = [self.item(number) for number in range(items, 0, -1)]
        self.fail_page: int | None = None
        self.stats = RestStats()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def item(self, number: int) -> dict[str, Any]:
        raise NotImplementedError

    async def answer(self, request: web.Request, page: int, per_page: int) -> web.Response:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(middlewares=[self._counted])
        app.router.add_get(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{bound}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RestServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The list's URL."""
        return self.base_url + self.path

    @web.middleware
    async def _counted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            response = await handler(request)
            stats.statuses[response.status] += 1
            return response
        finally:
            stats.in_flight -= 1

    async def _handle(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        if authorization:
            self.stats.authorizations.add(authorization)
        page = _whole(request.query.get("page", "1"))
        self.stats.pages.append(page or 0)
        if self.token is not None and not self.authorized(authorization):
            return self.unauthorized()
        if page is not None and page == self.fail_page:
            return web.json_response({"message": "Server Error"}, status=500)
        return await self.answer(request, page or 0, self.per_page_of(request))

    def authorized(self, authorization: str) -> bool:
        return authorization == f"Bearer {self.token}"

    def unauthorized(self) -> web.Response:
        raise NotImplementedError

    def per_page_of(self, request: web.Request) -> int:
        value = request.query.get("per_page")
        if value is None:
            return self.default_per_page
        return _whole(value) or 0

    def pages_of(self, per_page: int) -> int:
        return -(-len(self.items) // per_page)


class WordPressServer(RestServer):
    """``GET /wp/v2/posts`` of the WordPress REST API (REST API Handbook, "Pagination")."""

    path = "/wp/v2/posts"
    default_per_page = 10
    kind = "wordpress"

    def item(self, number: int) -> dict[str, Any]:
        return {
            "id": number,
            "date": f"2024-01-01T00:{number // 60 % 60:02d}:{number % 60:02d}",
            "slug": f"post-{number}",
            "status": "publish",
            "type": "post",
            "title": {"rendered": f"Post {number}"},
        }

    def unauthorized(self) -> web.Response:
        return _wp_error(401, "rest_not_logged_in", "You are not currently logged in.")

    async def answer(self, request: web.Request, page: int, per_page: int) -> web.Response:
        if not 1 <= per_page <= 100:
            return _wp_error(
                400, "rest_invalid_param", "Invalid parameter(s): per_page", params="per_page"
            )
        if page < 1:
            return _wp_error(400, "rest_invalid_param", "Invalid parameter(s): page", params="page")
        pages = self.pages_of(per_page)
        if page > max(pages, 1):
            return _wp_error(
                400,
                "rest_post_invalid_page_number",
                "The page number requested is larger than the number of pages available.",
            )
        chunk = self.items[(page - 1) * per_page : page * per_page]
        return web.json_response(
            chunk, headers={"X-WP-Total": str(len(self.items)), "X-WP-TotalPages": str(pages)}
        )


class GitHubServer(RestServer):
    """``GET /repos/o/r/issues`` of GitHub's REST API ("Using pagination in the REST API")."""

    path = "/repos/o/r/issues"
    default_per_page = 30
    kind = "github"

    def __init__(
        self,
        *,
        items: int = 0,
        token: str | None = None,
        latency_ms: float = 0.0,
        rate_limit: int | None = None,
        rate_window: int = 3600,
    ) -> None:
        """``rate_limit``: requests allowed per ``rate_window`` seconds (windows
        aligned to the epoch, as ``x-ratelimit-reset`` says them); past it a 403
        with ``x-ratelimit-remaining: 0``, as GitHub answers ("Rate limits for the
        REST API"). ``None``: no limit, no rate headers."""
        super().__init__(items=items, token=token, latency_ms=latency_ms)
        if rate_limit is not None and (rate_limit < 1 or rate_window < 1):
            raise ValueError("rate_limit and rate_window must be at least 1")
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._window_start = 0
        self._used = 0
        self.spent_by_others = 0
        """The next this many requests find the window spent, as when another client
        of the same token has spent it: a 403 whatever this client was told."""

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """This request's ``x-ratelimit-*`` headers, and whether it is over the limit."""
        if self.rate_limit is None:
            return {}, False
        start = int(time.time()) // self.rate_window * self.rate_window
        if start != self._window_start:
            self._window_start, self._used = start, 0
        self._used += 1
        over = self._used > self.rate_limit
        if self.spent_by_others > 0:
            self.spent_by_others -= 1
            self._used -= 1  # not this client's
            over = True
        used = self.rate_limit if over else self._used
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.rate_limit - used),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Reset": str(start + self.rate_window),
            "X-RateLimit-Resource": "core",
        }, over

    def item(self, number: int) -> dict[str, Any]:
        return {
            "id": 1_000_000 + number,
            "number": number,
            "title": f"Issue {number}",
            "state": "open",
            "user": {"login": f"user{number % 7}"},
        }

    def authorized(self, authorization: str) -> bool:
        return authorization in (f"Bearer {self.token}", f"token {self.token}")

    def unauthorized(self) -> web.Response:
        return web.json_response(
            {
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401",
            },
            status=401,
        )

    def per_page_of(self, request: web.Request) -> int:
        # GitHub caps per_page at 100 and reads what is not a number as the default.
        return min(super().per_page_of(request) or self.default_per_page, 100)

    async def answer(self, request: web.Request, page: int, per_page: int) -> web.Response:
        rate, over = self._rate_headers()
        if over:
            self.stats.rate_limited += 1
            message = "API rate limit exceeded for user ID 1."
            docs = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            body = {"message": message, "documentation_url": docs}
            return web.json_response(body, status=403, headers=rate)
        page = max(page, 1)  # GitHub reads page 0 or junk as the first
        pages = self.pages_of(per_page)
        chunk = self.items[(page - 1) * per_page : page * per_page]
        links = []
        if pages > 1:
            query = {k: v for k, v in request.query.items() if k != "page"}

            def link(number: int, rel: str) -> str:
                target = urlencode({**query, "page": str(number)})
                return f'<{self.base_url}{self.path}?{target}>; rel="{rel}"'

            if page > 1:
                links.append(link(min(page - 1, pages), "prev"))
            if page < pages:
                links += [link(page + 1, "next"), link(pages, "last")]
            if page > 1:
                links.append(link(1, "first"))
        headers = {"Link": ", ".join(links), **rate} if links else rate
        return web.json_response(chunk, headers=headers)


def _wp_error(status: int, code: str, message: str, *, params: str | None = None) -> web.Response:
    data: dict[str, Any] = {"status": status}
    if params is not None:
        data["params"] = {params: f"{params} is not valid."}
    return web.json_response({"code": code, "message": message, "data": data}, status=status)


def _whole(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


KINDS: dict[str, type[RestServer]] = {"wordpress": WordPressServer, "github": GitHubServer}


class RestServerThread:
    """Runs a server on its own event loop in a daemon thread, for synchronous
    tests (the CLI's)::

        with RestServerThread(WordPressServer(items=250)) as server:
            ...  # server.url, server.stats
    """

    def __init__(self, server: RestServer, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = server
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rest-server", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> RestServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the server did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self.server

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.server.start(self._host, self._port)
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.stop()

        asyncio.run(serve())


@contextlib.contextmanager
def _interrupted_quietly() -> Iterator[None]:
    with contextlib.suppress(KeyboardInterrupt):
        yield


def main(argv: list[str] | None = None) -> None:
    """``python -m asyncfetch.testing KIND [--items N] [--port P] [--token T]``."""
    parser = argparse.ArgumentParser(
        prog="python -m asyncfetch.testing",
        description="Serve a WordPress- or GitHub-style page-numbered list on 127.0.0.1.",
    )
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--items", type=int, default=250, help="items in the list (250)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000; 0: any free one)")
    parser.add_argument("--token", default=None, help="accept only this token (default: any)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to each answer")
    args = parser.parse_args(argv)
    try:
        server = KINDS[args.kind](items=args.items, token=args.token, latency_ms=args.latency_ms)
    except ValueError as exc:
        parser.error(str(exc))

    async def serve() -> None:
        try:
            await server.start("127.0.0.1", args.port)
        except OSError as exc:
            parser.exit(2, f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}\n")
        print(f"{server.kind} list of {len(server.items)} at {server.url}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with _interrupted_quietly():
        asyncio.run(serve())
