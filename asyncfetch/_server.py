"""The bundled Intercom-compatible server (API 1.x page-numbered lists).

It stands in for ``https://api.intercom.io`` in the tests, the benchmarks and
the demo, so it copies what clients depend on: the list envelopes and their
absolute ``pages.next`` links, the ``error.list`` bodies, Bearer and Basic
authentication, the ``X-RateLimit-*`` headers with fixed 10-second windows
(optionally enforced with 429), and the 10,000-record cap on page-numbered
listing.  Bodies are joined from bytes the `Workspace` serialised once.

Past the cap, ``/users/scroll``, ``/contacts/scroll`` and ``/companies/scroll``
serve Intercom's Scroll API with its rules (one open scroll per collection,
expiry, single-use ``scroll_param``, a 5xx ends the scroll); see
`asyncfetch._scroll_server`.

For testing clients against a misbehaving API it can also inject seeded
faults into list requests (`FaultConfig`: 5xx, proxy HTML pages, bad bodies,
429 bursts, resets, hangs, latency) and grow the user lists during a fetch
(``insert_users_every``).  Faults hit scroll requests too.

Three ways to run it:

* ``async with IntercomServer(ServerConfig(users=500)) as server:`` in async code;
* ``with ServerThread(ServerConfig(...)) as server:`` from synchronous code;
* `run_server` -- blocking, for ``asyncfetch serve``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import hmac
import math
import secrets
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, NoReturn, Self

import orjson
from aiohttp import web

from asyncfetch._faults import (
    BAD_BODY_HTML,
    ERROR_CODES,
    HTML_ERROR_PAGES,
    FaultConfig,
    FaultInjector,
)
from asyncfetch._scroll_server import SCROLL_KINDS, ScrollError, ScrollRegistry
from asyncfetch._wording import count
from asyncfetch._workspace import MAX_USERS, ListKey, Workspace

__all__ = [
    "ADVERTISED_RATE_LIMIT",
    "CAP_MESSAGE",
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "RATE_WINDOW_SECONDS",
    "FaultConfig",
    "IntercomServer",
    "ServerConfig",
    "ServerStats",
    "ServerThread",
    "run_server",
    "startup_text",
]

DEFAULT_PER_PAGE: Final = 50
MAX_PER_PAGE: Final = 60
#: Default length of the rate-limit windows (`ServerConfig.rate_window_seconds`).
RATE_WINDOW_SECONDS: Final = 10
#: Advertised (never enforced) per-window limit when no rate_limit is set:
#: Intercom's 10,000 requests per minute, metered per 10-second window.
ADVERTISED_RATE_LIMIT: Final = 1667
CAP_MESSAGE: Final = "page limit reached, please use scroll API"

# Handlers still running at stop() get this long before they are cancelled;
# short, because a test or the demo waits on it.
_SHUTDOWN_TIMEOUT: Final = 1.0
# Joined page items kept per server: at most this many ~60 KB bodies.
_PAGE_CACHE_SIZE: Final = 256
# A dropped connection's handler is cancelled on the next loop turn; this is
# only the bound of an impossible wait.
_DROP_GRACE: Final = 60.0

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LIST_TYPES: Final = {"users": "user.list", "companies": "company.list", "contacts": "contact.list"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """How the bundled server behaves.

    Attributes:
        users: Users in the synthetic workspace (0 to 1,000,000); the other
            collections scale with it, see `asyncfetch._workspace`.
        seed: Seed of the workspace; the same ``(users, seed)`` serves the same bytes.
        latency_ms: Fixed delay, in milliseconds, added to every request before
            it is handled (simulates the network and Intercom's own time).
        rate_limit: Requests allowed per window.  When set it is advertised
            in ``X-RateLimit-Limit`` and enforced with 429; when None the
            headers advertise 1667 per window but nothing is enforced.
        rate_window_seconds: Length of the rate-limit windows, an int >= 1.
            Windows are aligned to multiples of it since the epoch, and
            ``X-RateLimit-Reset`` is the end of the current one (Intercom: 10).
        token: The only access token accepted.  None accepts any non-empty token.
        page_cap_records: A page whose first record has this 0-based index or
            more is refused with 400 (Intercom stops page-numbered listing at
            10,000 records).
        clock: Returns the current UNIX time in seconds; drives the rate-limit
            windows.  Tests inject a fake clock to cross windows without sleeping.
        faults: Seeded faults injected into list and scroll requests; None
            (or a config with every rate 0) serves every request faithfully.
            A 5xx fault on a scroll request ends that scroll.
        insert_users_every: After every this many user-list pages served
            (any ``user.list``: all users, by tag, segment or company, and
            ``/users/scroll`` batches), sign up a new user at the front of the
            all-users and large-tag lists (see `Workspace.insert_user`): later
            items shift one place, and ``total_count`` grows.  A scroll already
            open does not see the newcomers.  None never does.
        scroll_page_size: Objects per Scroll API batch, an int >= 1.
        scroll_expiry_seconds: A scroll unused for this many seconds (on
            ``clock``) expires: its ``scroll_param`` gives 404 and it no longer
            blocks a new scroll.  A finite number > 0 (Intercom: one minute).
    """

    users: int = 1000
    seed: int = 0
    latency_ms: float = 0.0
    rate_limit: int | None = None
    token: str | None = None
    page_cap_records: int = 10_000
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    rate_window_seconds: int = RATE_WINDOW_SECONDS
    faults: FaultConfig | None = None
    insert_users_every: int | None = None
    scroll_page_size: int = 100
    scroll_expiry_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not _is_int(self.users) or not 0 <= self.users <= MAX_USERS:
            raise ValueError(f"users must be an int from 0 to {MAX_USERS}, got {self.users!r}")
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        latency = self.latency_ms
        if not (
            isinstance(latency, int | float)
            and not isinstance(latency, bool)
            and math.isfinite(latency)
            and latency >= 0
        ):
            raise ValueError(f"latency_ms must be a finite number >= 0, got {latency!r}")
        window = self.rate_window_seconds
        if not (_is_int(window) and window >= 1):
            raise ValueError(f"rate_window_seconds must be an int >= 1, got {window!r}")
        if self.rate_limit is not None and not (_is_int(self.rate_limit) and self.rate_limit >= 1):
            raise ValueError(
                f"rate_limit must be None (not enforced) or an int >= 1 requests per "
                f"{window} s, got {self.rate_limit!r}"
            )
        token = self.token
        if token is not None and not (
            isinstance(token, str) and token and token.isprintable() and " " not in token
        ):
            raise ValueError(
                f"token must be None (any token accepted) or a non-empty string "
                f"without spaces, got {token!r}"
            )
        if not _is_int(self.page_cap_records) or self.page_cap_records < 1:
            raise ValueError(f"page_cap_records must be an int >= 1, got {self.page_cap_records!r}")
        if not callable(self.clock):
            # ValueError like every other field, so callers catch one type.
            raise ValueError(  # noqa: TRY004
                f"clock must be a callable returning UNIX seconds, got {self.clock!r}"
            )
        if self.faults is not None and not isinstance(self.faults, FaultConfig):
            # ValueError like every other field, so callers catch one type.
            raise ValueError(f"faults must be None or a FaultConfig, got {self.faults!r}")
        every = self.insert_users_every
        if every is not None and not (_is_int(every) and every >= 1):
            raise ValueError(
                f"insert_users_every must be None (never) or an int >= 1 pages, got {every!r}"
            )
        if not (_is_int(self.scroll_page_size) and self.scroll_page_size >= 1):
            raise ValueError(f"scroll_page_size must be an int >= 1, got {self.scroll_page_size!r}")
        expiry = self.scroll_expiry_seconds
        if not (
            isinstance(expiry, int | float)
            and not isinstance(expiry, bool)
            and math.isfinite(expiry)
            and expiry > 0
        ):
            raise ValueError(f"scroll_expiry_seconds must be a finite number > 0, got {expiry!r}")


@dataclass
class ServerStats:
    """What the server has seen, for tests and the demo.

    Attributes:
        requests: Requests received (every path, every outcome).
        in_flight: Requests being handled now (includes the latency sleep).
        max_in_flight: Highest ``in_flight`` seen since start or `reset`.
        statuses: Responses by status code; a request cancelled because its
            client went away has no status.
        pages: ``(path, page)`` of every request in order of arrival; ``page``
            is 1 when absent and 0 when it is not a plain number (such as "x" or "-1").
            For a scroll request it is the batch asked for: 1 to start, n + 1
            with the ``scroll_param`` of batch n, 0 for a ``scroll_param``
            unknown, spent or expired on arrival.
        faults: Injected faults by kind (``"error"``, ``"html_error"``,
            ``"bad_body"``, ``"throttle"``, ``"reset"``, ``"hang"``, ``"slow"``).
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    pages: list[tuple[str, int]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Forget history; requests in flight stay counted in ``in_flight``."""
        self.requests = 0
        self.max_in_flight = self.in_flight
        self.statuses = Counter()
        self.pages = []
        self.faults = Counter()


class _ApiError(Exception):
    """Ends a request with an Intercom ``error.list`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {
        "type": "error.list",
        # Random like Intercom's; clients only log it.
        "request_id": secrets.token_hex(10),
        "errors": [{"code": code, "message": message}],
    }
    response = _json_response(orjson.dumps(body), status=status)
    if headers:
        response.headers.update(headers)
    return response


def _error_for(exc: _ApiError | web.HTTPException) -> web.Response:
    """The ``error.list`` answer for an error raised by a handler or by the router."""
    if isinstance(exc, _ApiError):
        return _error_response(exc.status, exc.code, exc.message)
    # The router's own answers (unknown path, wrong method) as error.list.
    code = "not_found" if exc.status == 404 else "bad_request"
    return _error_response(exc.status, code, exc.reason)


def _json_response(body: bytes, *, status: int = 200) -> web.Response:
    return web.Response(
        body=body, status=status, headers={"Content-Type": "application/json; charset=utf-8"}
    )


def _html_response(body: bytes, *, status: int) -> web.Response:
    return web.Response(
        body=body, status=status, headers={"Content-Type": "text/html; charset=utf-8"}
    )


class _RateWindow:
    """Counts requests in fixed windows of ``seconds`` aligned to the epoch."""

    def __init__(self, limit: int | None, seconds: int, clock: Callable[[], float]) -> None:
        self.limit = ADVERTISED_RATE_LIMIT if limit is None else limit
        self.seconds = seconds
        self._enforced = limit is not None
        self._clock = clock
        self._window_start = -1
        self._count = 0

    def hit(self) -> tuple[bool, dict[str, str]]:
        """Count one request; return (allowed, the X-RateLimit-* headers)."""
        now = self._clock()
        start = math.floor(now / self.seconds) * self.seconds
        if start != self._window_start:
            self._window_start, self._count = start, 0
        self._count += 1
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            # 0, never negative, once past an enforced limit.
            "X-RateLimit-Remaining": str(max(self.limit - self._count, 0)),
            "X-RateLimit-Reset": str(start + self.seconds),
        }
        return not self._enforced or self._count <= self.limit, headers

    def exceeded(self, headers: Mapping[str, str]) -> web.Response:
        """The 429 of an exhausted window, with ``headers`` (X-RateLimit-*) and Remaining 0."""
        message = f"Exceeded rate limit of {self.limit} in {self.seconds}_seconds"
        return _error_response(
            429, "rate_limit_exceeded", message, {**headers, "X-RateLimit-Remaining": "0"}
        )


def _positive_int(query: Mapping[str, str], name: str, default: int) -> int:
    """Read the integer query parameter ``name`` (>= 1), or 400."""
    raw = query.get(name)
    if raw is None:
        return default
    # isascii+isdigit: int() would also take " 7", "+7", "1_0" and "٣"; the
    # length cap keeps int() below Python's 4,300-digit conversion limit.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 100) or int(raw) < 1:
        raise _ApiError(400, "parameter_invalid", f"{name} must be an integer >= 1, got {raw!r}")
    return int(raw)


def _page_for_stats(query: Mapping[str, str]) -> int:
    raw = query.get("page")
    if raw is None:
        return 1
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 100 else 0


class IntercomServer:
    """An Intercom API 1.x stand-in served by aiohttp on a real socket.

    Args:
        config: The server's behaviour; None means ``ServerConfig()``.
        **overrides: `ServerConfig` fields replacing those of ``config``, e.g.
            ``IntercomServer(users=500, latency_ms=5)``.

    The workspace is generated in the constructor (20-40 ms per 1,000 users).
    Start it once, with `start` or ``async with``.
    """

    def __init__(self, config: ServerConfig | None = None, **overrides: Any) -> None:
        config = config or ServerConfig()
        self.config: ServerConfig = (
            dataclasses.replace(config, **overrides) if overrides else config
        )
        self.workspace: Workspace = Workspace.generate(
            users=self.config.users, seed=self.config.seed
        )
        self.stats = ServerStats()
        config = self.config
        self._rate = _RateWindow(config.rate_limit, config.rate_window_seconds, config.clock)
        self._latency_s = config.latency_ms / 1000
        # None unless some fault can happen: the happy path pays one None check.
        self._faults = (
            FaultInjector(config.faults)
            if config.faults is not None and config.faults.active
            else None
        )
        self._user_pages_served = 0
        self._scrolls = ScrollRegistry(
            self.workspace,
            page_size=config.scroll_page_size,
            expiry_seconds=config.scroll_expiry_seconds,
            clock=config.clock,
            seed=config.seed,
            on_batch=self._scroll_batch_served,
        )
        # A closure rather than lru_cache on a method (which would pin self in
        # a class-level cache): cached page items live and die with the server.
        self._page_items: Callable[[ListKey, int, int], bytes] = functools.lru_cache(
            maxsize=_PAGE_CACHE_SIZE
        )(self._join_page_items)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self.app = web.Application(middlewares=[self._count_middleware, self._api_middleware])
        # The paged lists and the scrolls, the only routes that get faults.
        self._list_resources: set[web.AbstractResource | None] = set()
        for path, handler in (
            ("/users", self._users),
            ("/companies/{id}/users", self._company_users),  # before /companies
            ("/companies", self._companies),
            ("/contacts", self._contacts),
        ):
            self._list_resources.add(self.app.router.add_get(path, handler).resource)
        self._scroll_kinds: dict[web.AbstractResource | None, str] = {}
        for kind in SCROLL_KINDS:
            route = self.app.router.add_get(
                f"/{kind}/scroll", functools.partial(self._scroll, kind)
            )
            self._scroll_kinds[route.resource] = kind
        self._list_resources.update(self._scroll_kinds)
        for name in ("tags", "segments", "admins"):
            self.app.router.add_get(f"/{name}", functools.partial(self._small_list, name))

    # -- lifecycle ----------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port``; port 0 picks a free port (see `base_url`)."""
        # Once per instance: aiohttp cannot set an Application up again after cleanup.
        if self._runner is not None or self._base_url is not None:
            raise RuntimeError("IntercomServer.start() was already called")
        # handler_cancellation: a client that disconnects cancels its handler,
        # so in_flight drops like a real server's would.  No access log: one
        # log line per page would dominate the cost of serving it.
        runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()  # e.g. the port is taken: leave nothing half-open
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = f"[{host}]" if ":" in host else host
        self._base_url = f"http://{url_host}:{bound_port}"

    async def stop(self) -> None:
        """Stop listening and close connections; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
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
    def base_url(self) -> str:
        """``http://host:port`` of the running server, without a trailing slash."""
        if self._base_url is None:
            raise RuntimeError("IntercomServer is not started")
        return self._base_url

    # -- middlewares --------------------------------------------------------------

    @web.middleware
    async def _count_middleware(
        self, request: web.Request, handler: _Handler
    ) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        kind = self._scroll_kinds.get(request.match_info.route.resource)
        page = (
            _page_for_stats(request.query)
            if kind is None
            else self._scrolls.batch_number(kind, request.query.get("scroll_param"))
        )
        stats.pages.append((request.path, page))
        # try/finally: a handler cancelled by a client disconnect (or by
        # shutdown) still leaves in_flight.
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            stats.statuses[exc.status] += 1
            raise
        except Exception:
            stats.statuses[500] += 1
            raise
        else:
            stats.statuses[response.status] += 1
            return response
        finally:
            stats.in_flight -= 1

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        try:
            self._authenticate(request.headers.get("Authorization"))
        except _ApiError as err:
            # Unauthenticated: no rate-limit headers, no count against the budget.
            return _error_response(err.status, err.code, err.message)
        allowed, rate_headers = self._rate.hit()
        if not allowed:
            return self._rate.exceeded(rate_headers)
        if self._faults is not None and request.match_info.route.resource in self._list_resources:
            return await self._answer_with_fault(request, handler, rate_headers)
        # Inline rather than through _answer(): one coroutine less per request
        # on the path the benchmarks measure.
        response: web.StreamResponse
        try:
            response = await handler(request)
        except (_ApiError, web.HTTPException) as exc:
            response = _error_for(exc)
        response.headers.update(rate_headers)
        return response

    @staticmethod
    async def _answer(request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Run ``handler``, turning its errors into ``error.list`` answers."""
        try:
            return await handler(request)
        except (_ApiError, web.HTTPException) as exc:
            return _error_for(exc)

    async def _answer_with_fault(
        self, request: web.Request, handler: _Handler, rate_headers: dict[str, str]
    ) -> web.StreamResponse:
        """Answer a list request as its `Fault` says (normally, if it has none)."""
        assert self._faults is not None
        fault = self._faults.decide(request.path_qs)
        if fault.kind is not None:
            self.stats.faults[fault.kind] += 1
        if fault.kind in ("error", "html_error"):
            kind = self._scroll_kinds.get(request.match_info.route.resource)
            if kind is not None:
                # A 500 during a scroll means starting again (Intercom).
                self._scrolls.abandon(kind, request.query.get("scroll_param"))
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        response: web.StreamResponse
        match fault.kind:
            case "error":
                code, message = ERROR_CODES[fault.status]
                response = _error_response(fault.status, code, message, rate_headers)
            case "html_error":
                # Made by a proxy the request never got past: no X-RateLimit-* headers.
                return _html_response(HTML_ERROR_PAGES[fault.status], status=fault.status)
            case "throttle":
                response = self._rate.exceeded(rate_headers)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
            case "bad_body":
                if fault.html:
                    return _html_response(BAD_BODY_HTML, status=200)
                response = await self._truncated(request, handler)
                response.headers.update(rate_headers)
            case "reset":
                await _drop_connection(request)
            case "hang":
                await asyncio.sleep(self._faults.config.hang_seconds)
                await _drop_connection(request)
            case _:  # no fault, or "slow" (already waited)
                response = await self._answer(request, handler)
                response.headers.update(rate_headers)
        return response

    async def _truncated(self, request: web.Request, handler: _Handler) -> web.Response:
        """The normal answer's JSON cut in half, sent whole as a 200.

        As from a proxy that lost the end of the body but not the headers:
        the status is 200 even when the cut answer was an error.
        """
        normal = await self._answer(request, handler)
        # Every handler here answers with a web.Response whose body is bytes.
        body = normal.body if isinstance(normal, web.Response) else b""
        data = body if isinstance(body, bytes) else b""
        return _json_response(data[: len(data) // 2])

    def _authenticate(self, header: str | None) -> None:
        """Accept ``Bearer <token>`` or Basic ``<token>:`` (python-intercom 3.x), or 401."""
        if not header:
            raise _ApiError(401, "unauthorized", "Access Token missing")
        scheme, _, credentials = header.partition(" ")
        token = ""
        if scheme.lower() == "bearer":
            token = credentials.strip()
        elif scheme.lower() == "basic":
            # Decoded by hand: aiohttp.BasicAuth is deprecated.
            try:
                decoded = base64.b64decode(credentials.strip().encode("ascii"), validate=True)
                login, colon, password = decoded.decode("utf-8").partition(":")
            except ValueError:  # binascii.Error and UnicodeError are ValueErrors
                raise _ApiError(401, "unauthorized", "Malformed Basic credentials") from None
            # The token is the user name; a password means an old app_id:api_key pair.
            token = login if colon and not password else ""
        if not token:
            raise _ApiError(401, "unauthorized", "Access Token Invalid")
        expected = self.config.token
        if expected is not None and not hmac.compare_digest(token.encode(), expected.encode()):
            raise _ApiError(401, "unauthorized", "Access Token Invalid")

    # -- handlers -----------------------------------------------------------------

    async def _users(self, request: web.Request) -> web.Response:
        query = request.query
        if "tag_id" in query and "segment_id" in query:
            raise _ApiError(400, "parameter_invalid", "tag_id and segment_id cannot be combined")
        return self._paged(request, self._filtered_key("users", query))

    async def _company_users(self, request: web.Request) -> web.Response:
        company = request.match_info["id"]
        return self._paged(request, self._company_key(company, by="id"))

    async def _companies(self, request: web.Request) -> web.Response:
        query = request.query
        if "company_id" in query:
            kind = query.get("type")
            if kind is None:
                raise _ApiError(400, "missing_parameter", "type=user is required with company_id")
            if kind != "user":
                raise _ApiError(400, "parameter_invalid", f"type must be 'user', got {kind!r}")
            return self._paged(request, self._company_key(query["company_id"], by="company_id"))
        if "tag_id" in query and "segment_id" in query:
            raise _ApiError(400, "parameter_invalid", "tag_id and segment_id cannot be combined")
        return self._paged(request, self._filtered_key("companies", query))

    async def _contacts(self, request: web.Request) -> web.Response:
        return self._paged(request, ListKey("contacts"))

    async def _scroll(self, kind: str, request: web.Request) -> web.Response:
        """``/{kind}/scroll``: one batch of Intercom's Scroll API (see `ScrollRegistry`)."""
        try:
            body = self._scrolls.serve(kind, request.query)
        except ScrollError as err:
            raise _ApiError(err.status, err.code, err.message) from None
        return _json_response(body)

    def _scroll_batch_served(self, kind: str) -> None:
        # Scroll batches of users are user-list pages for insert_users_every.
        if self.config.insert_users_every is not None and kind == "users":
            self._count_user_page(self.config.insert_users_every)

    async def _small_list(self, name: str, request: web.Request) -> web.Response:
        body = self.workspace.small_list_body(name)
        assert body is not None  # only routed for tags, segments, admins
        return _json_response(body)

    def _filtered_key(self, collection: str, query: Mapping[str, str]) -> ListKey:
        for by, what in (("tag_id", "Tag"), ("segment_id", "Segment")):
            if by in query:
                key = ListKey(collection, by, query[by])
                if self.workspace.list_blobs(key) is None:
                    raise _ApiError(404, "not_found", f"{what} Not Found")
                return key
        return ListKey(collection)

    def _company_key(self, company: str, *, by: str) -> ListKey:
        """The users of a company named by Intercom ``id`` or by its own ``company_id``."""
        company_id = self.workspace.company_ids.get(company) if by == "company_id" else company
        key = ListKey("users", "company", company_id or "")
        if self.workspace.list_blobs(key) is None:
            raise _ApiError(404, "company_not_found", "Company Not Found")
        return key

    # -- pagination ---------------------------------------------------------------

    def _paged(self, request: web.Request, key: ListKey) -> web.Response:
        """One page of the list ``key``, in Intercom's v1 envelope."""
        page = _positive_int(request.query, "page", 1)
        per_page = min(_positive_int(request.query, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        if (page - 1) * per_page >= self.config.page_cap_records:
            raise _ApiError(400, "parameter_invalid", CAP_MESSAGE)
        blobs = self.workspace.list_blobs(key)
        assert blobs is not None  # the handlers resolved key before
        total = len(blobs)
        total_pages = -(-total // per_page)
        next_url = None
        if page < total_pages:
            # Absolute, from the request's own scheme and Host, so a client
            # pointed at 127.0.0.1:PORT follows it back here; every filter is
            # kept, and per_page is always spelt out, like Intercom's.
            params = [(k, v) for k, v in request.query.items() if k not in ("page", "per_page")]
            params += [("per_page", str(per_page)), ("page", str(page + 1))]
            next_url = str(request.url.with_query(params))
        pages = {
            "type": "pages",
            "next": next_url,
            "page": page,
            "per_page": per_page,
            "total_pages": total_pages,
        }
        body = b"".join(
            (
                b'{"type":"%s","total_count":%d,"%s":['
                % (_LIST_TYPES[key.collection].encode(), total, key.collection.encode()),
                self._page_items(key, page, per_page),
                b'],"pages":',
                orjson.dumps(pages),
                b"}",
            )
        )
        if self.config.insert_users_every is not None and key.collection == "users":
            self._count_user_page(self.config.insert_users_every)
        return _json_response(body)

    def _count_user_page(self, every: int) -> None:
        """Count one user-list page served; sign a user up after every ``every``-th."""
        self._user_pages_served += 1
        if self._user_pages_served % every == 0:
            self.workspace.insert_user()
            # Cached pages of the two lists that grew are stale now; the
            # others are not, but a rare full clear keeps this simple.
            self._page_items.cache_clear()  # type: ignore[attr-defined]

    def _join_page_items(self, key: ListKey, page: int, per_page: int) -> bytes:
        blobs = self.workspace.list_blobs(key) or ()
        first = (page - 1) * per_page
        return b",".join(blobs[first : first + per_page])


async def _drop_connection(request: web.Request) -> NoReturn:
    """Close the request's connection with a TCP reset, without answering.

    The aborted transport makes aiohttp cancel the handler (the server runs
    with handler_cancellation=True), so this never returns.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN, like a crashed peer.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # Waits for the cancellation; the bound only guards against a connection
    # that somehow stays open.
    await asyncio.sleep(_DROP_GRACE)
    raise ConnectionResetError("fault injection dropped the connection")


class ServerThread:
    """Runs an `IntercomServer` on its own event loop in a daemon thread.

    For synchronous code (python-intercom, CLI tests, the demo)::

        with ServerThread(ServerConfig(users=500)) as server:
            requests.get(server.base_url + "/users", auth=("tok", ""))

    Args:
        config: The server's behaviour; None means ``ServerConfig()``.
        host: Interface to listen on.
        port: Port to listen on; 0 picks a free one.
        **overrides: `ServerConfig` fields replacing those of ``config``.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **overrides: Any,
    ) -> None:
        self.server = IntercomServer(config, **overrides)
        self._host = host
        self._port = port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return self.server.base_url

    @property
    def stats(self) -> ServerStats:
        """The server's `ServerStats` (plain counters; read them from any thread)."""
        return self.server.stats

    @property
    def workspace(self) -> Workspace:
        """The workspace the server serves."""
        return self.server.workspace

    @property
    def config(self) -> ServerConfig:
        """The server's configuration."""
        return self.server.config

    def start(self, timeout: float = 30.0) -> None:
        """Start the thread and wait until the server listens (or raise its error)."""
        if self._thread is not None:
            raise RuntimeError("ServerThread.start() was already called")
        self._thread = threading.Thread(target=self._run, name="intercom-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("the server failed to start") from self._error

    def stop(self) -> None:
        """Stop the server and join the thread; idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None and thread.is_alive():
            # The loop may close between is_alive() and here.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_event.set)
        thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to start(), which raises it
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        await self.server.start(self._host, self._port)
        try:
            self._ready.set()
            await self._stop_event.wait()
        finally:
            await self.server.stop()


def startup_text(server: IntercomServer) -> str:
    """What ``asyncfetch serve`` prints once listening: the URL first (scripts read
    it from the first line), then ids to try and how to point the CLI here."""
    ws = server.workspace

    def members(filter_name: str, object_id: str) -> int:
        return len(ws.list_blobs(ListKey("users", filter_name, object_id)) or ())

    tags = [ws.tags[0], ws.tags[1], ws.tags[-1]] if len(ws.tags) > 2 else list(ws.tags)
    shown_tags = ", ".join(
        f"{t['id']} {t['name']} ({count(members('tag_id', str(t['id'])), 'user')})" for t in tags
    )
    shown_segments = ", ".join(
        f"{s['id']} {s['name']} ({count(members('segment_id', str(s['id'])), 'user')})"
        for s in ws.segments[:2]
    )
    return (
        f"Intercom-compatible server on {server.base_url} "
        f"({count(len(ws.users), 'user')}, {count(len(ws.companies), 'company', 'companies')}, "
        f"{count(len(ws.contacts), 'contact')}); Ctrl-C stops it\n"
        f"  tags:     {shown_tags}\n"
        f"  segments: {shown_segments}\n"
        f"  (asyncfetch tags, asyncfetch segments: all of them)\n"
        f"Point the CLI here, with any token:\n"
        f"  export INTERCOM_BASE_URL={server.base_url} INTERCOM_ACCESS_TOKEN=any-token"
    )


def run_server(config: ServerConfig, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``config`` on ``host:port`` until Ctrl-C (for ``asyncfetch serve``).

    Prints `startup_text` once listening: the URL on the first line.
    """

    async def serve() -> None:
        server = IntercomServer(config)
        await server.start(host, port)
        try:
            print(startup_text(server), flush=True)
            await asyncio.Event().wait()
        finally:
            await server.stop()

    # asyncio.run cancels serve() on Ctrl-C, so the finally above closes the server.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
