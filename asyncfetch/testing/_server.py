"""The bundled Intercom-compatible server (API 1.x page-numbered lists).

It stands in for ``https://api.intercom.io`` in the tests, the benchmarks and
the demo, so it copies what clients depend on: the list envelopes and their
absolute ``pages.next`` links, the ``error.list`` bodies, Bearer and Basic
authentication, the ``X-RateLimit-*`` headers with fixed 10-second windows
(optionally enforced with 429), and the 10,000-record cap on page-numbered
listing.  Bodies are joined from bytes the `Workspace` serialised once.

It answers the way the real API does, not the way our client expects: a
server that flatters the client hides the ways a run can exit 0 with fewer
records than exist.  Each behaviour below is a `ServerConfig` option, on by
default because Intercom does it:

* The cap, per endpoint (``cap_per_endpoint``), on the page whose first record
  is at ``page_cap_records`` or later: ``user.list`` endpoints (``/users`` with
  or without a tag or segment, a company's users) answer 400 ``bad_request``
  "page limit reached, please use scroll API" (intercom-node#115,
  python-intercom#186); ``/contacts`` 400 ``parameter_invalid`` "'page' not
  found on model" and ``/companies`` a **200** with an empty list,
  ``total_count: 0`` and ``total_pages: 0`` (both intercom-ruby#274; PostHog
  met the latter at page 167 of 60, PostHog/posthog#63033).
* Leads in lists (``leads_in_lists``): the ``users`` lists of a tag or segment
  hold the leads carrying it, as ``"type": "contact"`` records (Intercom's
  "List by Tag, Segment, Company" page: "a pageable list of users and leads";
  intercom-go ``fixtures/segments.json`` has a segment with
  ``person_type: "contact"``).
* Nested companies as ``{"type": "company", "id": ...}`` only
  (``company_refs_id_only``), as the 1.x User Model shows them; users also
  carry the model's ``referrer``, ``utm_*`` and ``location_data`` with
  coordinates.  ``GET /companies?company_id=X`` without ``type`` is the
  company itself (API 1.x "View a Company").
* The Scroll API past the cap (``/users/scroll``, ``/contacts/scroll``,
  ``/companies/scroll``; see `_scroll_server.py`): the cursor lives on
  the server, the same ``scroll_param`` for every batch, as in the
  python-intercom 3.1.0 ``tests/unit``, intercom-ruby ``spec/spec_helper.rb``
  and intercom-node ``test/`` fixtures (``scroll_cursor``); one open scroll
  per workspace across users, contacts and companies, a second start getting
  400 ``scroll_exists`` (airbyte#8395, intercom-ruby#292;
  ``scroll_per_workspace``); expiry after a minute unused; a 5xx ends the
  scroll (the 1.x docs: any error means starting again).

Rate-limit headers, as the real API sends them (sources: Intercom's "Rate
Limiting" page of the API 1.x and 2.0 reference, and intercom-node
``test/errors.js``):

* ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (UNIX seconds) and an
  ``X-Request-Id`` on every answer of the API, 401 included (intercom-node
  ``test/errors.js`` answers a 401 with them); a 401 does not count against
  the budget.  The ``error.list`` body's ``request_id`` is the same id.
* The limit is metered per window and advertised rounded down: 1,000 a
  minute shows as ``X-RateLimit-Limit: 166`` per 10-second window, while the
  429 says "Exceeded rate limit of 167 in 10_seconds" (Intercom's rate-limit
  docs).  ``rate_limit_per_minute`` models that; ``rate_limit`` sets a
  whole number per window directly.
* ``Remaining`` under either model (``remaining_counts_request``): counting
  the request it answers, or as in the 1.x and 2.0 docs' examples, where it
  still equals ``Limit`` after a window's first request.
* The headers are occasionally missing (Intercom's docs: about once a month,
  when they expire): ``rate_headers_missing`` leaves them off a range of
  answers while the limit still holds.
* ``Date`` comes from the server's own clock, so ``clock_skew_seconds`` moves
  ``Date`` and ``X-RateLimit-Reset`` together, as a real server whose clock
  differs from the client's would.

Sorting ``GET /users`` (the whole-workspace list), as Intercom's API 1.x
"List Users" reference documents it (developers.intercom.com, references
1.0, 1.1 and 1.2, rest-api/users/list-users): ``sort`` is "what field to sort
the results by.  Valid values: created_at, last_request_at, signed_up_at,
updated_at"; ``order`` is "asc or desc ... defaults to desc"; "the user list
is sorted by the created_at field".  Where the docs are silent, the choices
made here and why:

* An unknown ``sort`` value sorts by ``created_at`` and an unknown ``order``
  is ``desc``: ignored, as an unknown parameter is, rather than refused.  A
  refusal would flatter a client that misspells one (it would fail loudly);
  the quiet reading is the one a client must survive, so a client that
  depends on the order checks it (ours does).
* Equal values go by creation, in the same direction, so the order is total.
* Only the whole-workspace list is sorted: the docs document ``sort`` and
  ``order`` for listing all users ("Works with: All" in 1.2), not for the
  lists by tag, segment or company, which keep their order and ignore them.
* A request with neither ``sort`` nor ``order`` keeps the order this server
  has always served (creation order, sign-ups during a fetch at the front;
  see `Workspace.insert_user`), which the rest of the tests rely on.  The docs
  call that default "created_at ... descending"; ``order=desc`` gets it.

Records touched during a fetch (``touch_users_every`` or `IntercomServer.touch`)
get ``updated_at`` = the server clock's now (whole seconds) and move to the
front of a list sorted by ``updated_at`` descending; the users they pass move
one place on, across page boundaries, as the real API's would.

For testing clients against a misbehaving API it can also inject seeded
faults into list requests (`FaultConfig`: 5xx, proxy HTML pages, bad bodies,
429 bursts, resets, hangs, latency) and grow the user lists during a fetch
(``insert_users_every``, ``insert_users_count`` at a time: enough to push a
list past the cap mid-fetch).  Faults hit scroll requests too.

Three ways to run it:

* ``async with IntercomServer(ServerConfig(users=500)) as server:`` in async code;
* ``with ServerThread(ServerConfig(...)) as server:`` from synchronous code;
* `run_server` -- blocking, for ``asyncfetch serve``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import dataclasses
import email.utils
import functools
import hmac
import math
import random
import secrets
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, NoReturn, Self

import orjson
from aiohttp import web

from ._common import ApiError, is_int
from ._faults import (
    BAD_BODY_HTML,
    ERROR_CODES,
    HTML_ERROR_PAGES,
    ODD_HEADER_NAMES,
    FaultConfig,
    FaultInjector,
)
from ._scroll_server import SCROLL_KINDS, ScrollRegistry
from ._workspace import MAX_USERS, SORT_FIELDS, ListKey, Workspace

__all__ = [
    "ADVERTISED_RATE_LIMIT",
    "CAP_MESSAGE",
    "CONTACTS_CAP_MESSAGE",
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
#: Intercom's 10,000 requests per minute, metered per 10-second window and
#: rounded down.
ADVERTISED_RATE_LIMIT: Final = 1666
CAP_MESSAGE: Final = "page limit reached, please use scroll API"
#: What /contacts answers past the cap (intercom-ruby#274).
CONTACTS_CAP_MESSAGE: Final = "'page' not found on model"

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


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """How the bundled server behaves.

    Attributes:
        users: Users in the synthetic workspace (0 to 1,000,000); the other
            collections scale with it, see `_workspace.py`.
            Default ``1000``.
        seed: Seed of the workspace; the same ``(users, seed)`` serves the same bytes.
            Default ``0``.
        latency_ms: Fixed delay, in milliseconds, added to every request before
            it is handled (simulates the network and Intercom's own time).
            Default ``0.0``.
        rate_limit: Requests allowed per window.  When set it is advertised
            in ``X-RateLimit-Limit`` and enforced with 429; when None (and
            ``rate_limit_per_minute`` is None) the headers advertise 1666 per
            window but nothing is enforced.
            Default ``None``.
        rate_limit_per_minute: The quota as Intercom states it, per minute
            (instead of ``rate_limit``): each window allows its share,
            ``per_minute * rate_window_seconds / 60``, rounded up when
            enforced and rounded down in ``X-RateLimit-Limit``.
            Default ``None``.
        remaining_counts_request: True: ``X-RateLimit-Remaining`` counts the
            request it answers (``Limit - 1`` after a window's first).  False:
            the 1.x and 2.0 docs' model, where it is what was left before it
            (``Limit`` after a window's first request).
            Default ``True``.
        rate_headers_missing: ``(first, last)``: the API's answers to
            authenticated requests number ``first`` to ``last`` (from 1, in
            arrival order) carry no ``X-RateLimit-*`` headers, though the limit
            still holds.  None: every answer carries them.
            Default ``None``.
        clock_skew_seconds: How far the server's clock runs ahead of ``clock``
            (negative: behind).  ``Date``, the rate windows and
            ``X-RateLimit-Reset`` all follow the skewed clock.
            Default ``0.0``.
        rate_window_seconds: Length of the rate-limit windows, an int >= 1.
            Windows are aligned to multiples of it since the epoch, and
            ``X-RateLimit-Reset`` is the end of the current one (Intercom: 10).
            Default 10 (``RATE_WINDOW_SECONDS``).
        token: The only access token accepted.  None accepts any non-empty token.
            Default ``None``.
        page_cap_records: A page whose first record has this 0-based index or
            more is past the cap (Intercom stops page-numbered listing at
            10,000 records), answered as ``cap_per_endpoint`` says.
            Default ``10_000``.
        clock: Returns the current UNIX time in seconds; drives the rate-limit
            windows.  Tests inject a fake clock to cross windows without sleeping.
            Default ``time.time``.
        faults: Seeded faults injected into list and scroll requests; None
            (or a config with every rate 0) serves every request faithfully.
            A 5xx fault on a scroll request ends that scroll.
            Default ``None``.
        insert_users_every: After every this many user-list pages served
            (any ``user.list``: all users, by tag, segment or company, and
            ``/users/scroll`` batches), sign up a new user at the front of the
            all-users and large-tag lists (see `Workspace.insert_user`): later
            items shift one place, and ``total_count`` grows.  A scroll already
            open does not see the newcomers.  None never does.
            Default ``None``.
        scroll_page_size: Objects per Scroll API batch, an int >= 1.
            Default ``100``.
        scroll_expiry_seconds: A scroll unused for this many seconds (on
            ``clock``) expires: its ``scroll_param`` gives 404 and it no longer
            blocks a new scroll.  A finite number > 0 (Intercom: one minute).
            Default ``60.0``.
        cap_per_endpoint: Past ``page_cap_records`` each endpoint answers as
            Intercom's does (users: 400 ``bad_request`` "page limit reached,
            please use scroll API"; companies: 200 with an empty list,
            ``total_count`` 0 and ``total_pages`` 0; contacts: 400
            ``parameter_invalid`` "'page' not found on model").  False: every
            endpoint answers 400 ``parameter_invalid`` "page limit reached...".
            Default ``True``.
        leads_in_lists: The ``users`` lists of a tag or segment hold the leads
            carrying it too, as ``"type": "contact"`` records (Intercom).  False:
            leads belong to no tag or segment.
            Default ``True``.
        company_refs_id_only: A user's nested companies are
            ``{"type": "company", "id": ...}`` only, as in the 1.x User Model.
            False adds ``company_id`` and ``name``.
            Default ``True``.
        scroll_cursor: ``"server"`` (Intercom): a scroll's cursor lives on the
            server and every batch of one scroll carries the same
            ``scroll_param``, so a re-sent request gets the next batch, not the
            one whose answer was lost.  ``"single_use"``: each batch carries a
            fresh ``scroll_param`` and re-sending a spent one gives 404 and ends
            the scroll.
            Default ``"server"``.
        scroll_per_workspace: One scroll open at a time across users, contacts
            and companies (Intercom); False: one per collection.
            Default ``True``.
        insert_users_count: Users signed up at each ``insert_users_every``
            step, an int >= 1: a list near the cap crosses it mid-fetch.
            Default ``1``.
        touch_users_every: After every this many user-list pages served
            (counted like ``insert_users_every``), touch ``touch_users_count``
            users picked at random (seeded by ``seed``): their ``updated_at``
            becomes the server clock's now, moving them to the front of
            ``/users?sort=updated_at&order=desc`` (see `IntercomServer.touch`).
            None never does. Default ``None``.
        touch_users_count: Users touched at each ``touch_users_every`` step,
            an int >= 1. Default ``1``.
    """

    users: int = 1000
    seed: int = 0
    latency_ms: float = 0.0
    rate_limit: int | None = None
    rate_limit_per_minute: int | None = None
    remaining_counts_request: bool = True
    rate_headers_missing: tuple[int, int] | None = None
    clock_skew_seconds: float = 0.0
    token: str | None = None
    page_cap_records: int = 10_000
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    rate_window_seconds: int = RATE_WINDOW_SECONDS
    faults: FaultConfig | None = None
    insert_users_every: int | None = None
    scroll_page_size: int = 100
    scroll_expiry_seconds: float = 60.0
    cap_per_endpoint: bool = True
    leads_in_lists: bool = True
    company_refs_id_only: bool = True
    scroll_cursor: str = "server"
    scroll_per_workspace: bool = True
    insert_users_count: int = 1
    touch_users_every: int | None = None
    touch_users_count: int = 1

    def __post_init__(self) -> None:
        if not is_int(self.users) or not 0 <= self.users <= MAX_USERS:
            raise ValueError(f"users must be an int from 0 to {MAX_USERS}, got {self.users!r}")
        if not is_int(self.seed):
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
        if not (is_int(window) and window >= 1):
            raise ValueError(f"rate_window_seconds must be an int >= 1, got {window!r}")
        if self.rate_limit is not None and not (is_int(self.rate_limit) and self.rate_limit >= 1):
            raise ValueError(
                f"rate_limit must be None (not enforced) or an int >= 1 requests per "
                f"{window} s, got {self.rate_limit!r}"
            )
        per_minute = self.rate_limit_per_minute
        if per_minute is not None and not (is_int(per_minute) and per_minute >= 1):
            raise ValueError(
                f"rate_limit_per_minute must be None or an int >= 1, got {per_minute!r}"
            )
        if per_minute is not None and self.rate_limit is not None:
            raise ValueError("give rate_limit or rate_limit_per_minute, not both")
        if not isinstance(self.remaining_counts_request, bool):
            raise ValueError(  # noqa: TRY004 - ValueError like every other field
                f"remaining_counts_request must be a bool, got {self.remaining_counts_request!r}"
            )
        missing = self.rate_headers_missing
        if missing is not None and not (
            isinstance(missing, tuple)
            and len(missing) == 2
            and all(is_int(n) and n >= 1 for n in missing)
            and missing[0] <= missing[1]
        ):
            raise ValueError(
                f"rate_headers_missing must be None or (first, last) request numbers, "
                f"1 <= first <= last, got {missing!r}"
            )
        skew = self.clock_skew_seconds
        if not (
            isinstance(skew, int | float) and not isinstance(skew, bool) and math.isfinite(skew)
        ):
            raise ValueError(f"clock_skew_seconds must be a finite number, got {skew!r}")
        token = self.token
        if token is not None and not (
            isinstance(token, str) and token and token.isprintable() and " " not in token
        ):
            raise ValueError(
                f"token must be None (any token accepted) or a non-empty string "
                f"without spaces, got {token!r}"
            )
        if not is_int(self.page_cap_records) or self.page_cap_records < 1:
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
        if every is not None and not (is_int(every) and every >= 1):
            raise ValueError(
                f"insert_users_every must be None (never) or an int >= 1 pages, got {every!r}"
            )
        if not (is_int(self.scroll_page_size) and self.scroll_page_size >= 1):
            raise ValueError(f"scroll_page_size must be an int >= 1, got {self.scroll_page_size!r}")
        expiry = self.scroll_expiry_seconds
        if not (
            isinstance(expiry, int | float)
            and not isinstance(expiry, bool)
            and math.isfinite(expiry)
            and expiry > 0
        ):
            raise ValueError(f"scroll_expiry_seconds must be a finite number > 0, got {expiry!r}")
        if self.scroll_cursor not in ("server", "single_use"):
            raise ValueError(
                f"scroll_cursor must be 'server' or 'single_use', got {self.scroll_cursor!r}"
            )
        touch = self.touch_users_every
        if touch is not None and not (is_int(touch) and touch >= 1):
            raise ValueError(
                f"touch_users_every must be None (never) or an int >= 1 pages, got {touch!r}"
            )
        if not (is_int(self.touch_users_count) and self.touch_users_count >= 1):
            raise ValueError(
                f"touch_users_count must be an int >= 1, got {self.touch_users_count!r}"
            )
        if not (is_int(self.insert_users_count) and self.insert_users_count >= 1):
            raise ValueError(
                f"insert_users_count must be an int >= 1, got {self.insert_users_count!r}"
            )
        for name in (
            "cap_per_endpoint",
            "leads_in_lists",
            "company_refs_id_only",
            "scroll_per_workspace",
        ):
            if not isinstance(getattr(self, name), bool):
                # ValueError like every other field, so callers catch one type.
                raise ValueError(  # noqa: TRY004
                    f"{name} must be True or False, got {getattr(self, name)!r}"
                )


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
        windows: Authenticated requests counted against the rate limit, by
            the start (server clock, UNIX seconds) of the window each fell in,
            429s included: what a window's limit is measured against.
    """

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    pages: list[tuple[str, int]] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    windows: Counter[int] = field(default_factory=Counter)

    def reset(self) -> None:
        """Forget history; requests in flight stay counted in ``in_flight``."""
        self.requests = 0
        self.max_in_flight = self.in_flight
        self.statuses = Counter()
        self.pages = []
        self.faults = Counter()
        self.windows = Counter()


# The X-Request-Id of the request being answered, repeated in error bodies.
_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "_REQUEST_ID", default=None
)


def _error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {
        "type": "error.list",
        # Random like Intercom's; clients only log it.
        "request_id": _REQUEST_ID.get() or secrets.token_hex(10),
        "errors": [{"code": code, "message": message}],
    }
    response = _json_response(orjson.dumps(body), status=status)
    if headers:
        response.headers.update(headers)
    return response


def _error_for(exc: ApiError | web.HTTPException) -> web.Response:
    """The ``error.list`` answer for an error raised by a handler or by the router."""
    if isinstance(exc, ApiError):
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
    """Counts requests in fixed windows of ``seconds`` aligned to the epoch of
    the server's (maybe skewed) clock."""

    def __init__(self, config: ServerConfig) -> None:
        seconds = config.rate_window_seconds
        if config.rate_limit_per_minute is not None:
            share = config.rate_limit_per_minute * seconds / 60
            # Advertised rounded down, enforced as the quota's share (Intercom:
            # "X-RateLimit-Limit: 166" for 1,000 a minute, "Exceeded rate limit of 167").
            self.limit = max(math.floor(share), 1)
            self.allowed = max(math.ceil(share), 1)
        else:
            self.limit = ADVERTISED_RATE_LIMIT if config.rate_limit is None else config.rate_limit
            self.allowed = self.limit
        self._enforced = config.rate_limit is not None or config.rate_limit_per_minute is not None
        self.seconds = seconds
        self._counts_request = config.remaining_counts_request
        self._missing = config.rate_headers_missing
        self._clock = config.clock
        self._skew = config.clock_skew_seconds
        self._window_start = -1
        self._count = 0
        self._answers = 0

    @property
    def window_start(self) -> int:
        """The start of the window the last request was counted in."""
        return self._window_start

    def now(self) -> float:
        """The server's clock: ``clock`` plus the configured skew."""
        return self._clock() + self._skew

    def hit(self) -> tuple[bool, dict[str, str]]:
        """Count one request; return (allowed, the X-RateLimit-* headers)."""
        start = self._start()
        self._count += 1
        self._answers += 1
        allowed = not self._enforced or self._count <= self.allowed
        missing = self._missing
        if missing is not None and missing[0] <= self._answers <= missing[1]:
            return allowed, {}
        left = self.limit - self._count + (0 if self._counts_request else 1)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            # 0, never negative, once past an enforced limit.
            "X-RateLimit-Remaining": str(max(left, 0)),
            "X-RateLimit-Reset": str(start + self.seconds),
        }
        return allowed, headers

    def peek(self) -> dict[str, str]:
        """The X-RateLimit-* headers of an answer that is not counted (a 401)."""
        start = self._start()
        left = self.limit - self._count
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(left, 0)),
            "X-RateLimit-Reset": str(start + self.seconds),
        }

    def _start(self) -> int:
        start = math.floor(self.now() / self.seconds) * self.seconds
        if start != self._window_start:
            self._window_start, self._count = start, 0
        return start

    def exceeded(self, headers: Mapping[str, str]) -> web.Response:
        """The 429 of an exhausted window, with ``headers`` (X-RateLimit-*) and Remaining 0."""
        message = f"Exceeded rate limit of {self.allowed} in {self.seconds}_seconds"
        if "X-RateLimit-Limit" in headers:  # not while the headers are missing
            headers = {**headers, "X-RateLimit-Remaining": "0"}
        return _error_response(429, "rate_limit_exceeded", message, headers)


def _positive_int(query: Mapping[str, str], name: str, default: int) -> int:
    """Read the integer query parameter ``name`` (>= 1), or 400."""
    raw = query.get(name)
    if raw is None:
        return default
    # isascii+isdigit: int() would also take " 7", "+7", "1_0" and "٣"; the
    # length cap keeps int() below Python's 4,300-digit conversion limit.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 100) or int(raw) < 1:
        raise ApiError(400, "parameter_invalid", f"{name} must be an integer >= 1, got {raw!r}")
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
            users=self.config.users,
            seed=self.config.seed,
            leads_in_lists=self.config.leads_in_lists,
            company_refs_id_only=self.config.company_refs_id_only,
        )
        self.stats = ServerStats()
        config = self.config
        self._rate = _RateWindow(config)
        self._latency_s = config.latency_ms / 1000
        # None unless some fault can happen: the happy path pays one None check.
        self._faults = (
            FaultInjector(config.faults)
            if config.faults is not None and config.faults.active
            else None
        )
        self._user_pages_served = 0
        self._touch_rng = random.Random(f"touch\0{config.seed}")
        self.touched: list[str] = []
        self._scrolls = ScrollRegistry(
            self.workspace,
            page_size=config.scroll_page_size,
            expiry_seconds=config.scroll_expiry_seconds,
            clock=config.clock,
            seed=config.seed,
            on_batch=self._scroll_batch_served,
            cursor=config.scroll_cursor,
            per_workspace=config.scroll_per_workspace,
        )
        # A closure rather than lru_cache on a method (which would pin self in
        # a class-level cache): cached page items live and die with the server.
        self._page_items: Callable[[ListKey, int, int, tuple[str, str] | None], bytes] = (
            functools.lru_cache(maxsize=_PAGE_CACHE_SIZE)(self._join_page_items)
        )
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
    def token(self) -> str:
        """A token the server accepts: ``config.token``, or ``"any-token"`` when any is."""
        return self.config.token or "any-token"

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server, without a trailing slash."""
        if self._base_url is None:
            raise RuntimeError("IntercomServer is not started")
        return self._base_url

    # -- changes during a fetch ---------------------------------------------------

    def touch(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Update the users ``ids`` now: ``updated_at`` becomes the server clock's
        now, in whole seconds, as an update in Intercom would set it.

        In ``/users?sort=updated_at&order=desc`` they move to the front; the
        users they pass move one place on.  Call it between pages (from the
        server's event loop: the same loop in the tests) to change the list
        under a fetch.  The ids are added to `touched`.

        Returns:
            The touched users, as they are now.

        Raises:
            KeyError: An id names no user.
        """
        users = self.workspace.touch(ids, at=math.floor(self._rate.now()))
        self.touched.extend(str(i) for i in ids)
        self._page_items.cache_clear()  # type: ignore[attr-defined]
        return users

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
        request_id = secrets.token_hex(10)
        _REQUEST_ID.set(request_id)  # this request's task only
        rate = self._rate
        # The server's own clock, so that Date and X-RateLimit-Reset agree.
        date = email.utils.formatdate(rate.now(), usegmt=True)
        try:
            self._authenticate(request.headers.get("Authorization"))
        except ApiError as err:
            # Unauthenticated: not counted against the budget, but the headers
            # are there, as on every answer of the API (intercom-node test/errors.js).
            refused = _error_response(err.status, err.code, err.message, rate.peek())
            refused.headers.update({"X-Request-Id": request_id, "Date": date})
            return refused
        allowed, rate_headers = rate.hit()
        self.stats.windows[rate.window_start] += 1
        rate_headers["X-Request-Id"] = request_id
        rate_headers["Date"] = date
        if not allowed:
            return rate.exceeded(rate_headers)
        if self._faults is not None and request.match_info.route.resource in self._list_resources:
            return await self._answer_with_fault(request, handler, rate_headers)
        # Inline rather than through _answer(): one coroutine less per request
        # on the path the benchmarks measure.
        response: web.StreamResponse
        try:
            response = await handler(request)
        except (ApiError, web.HTTPException) as exc:
            response = _error_for(exc)
        response.headers.update(rate_headers)
        return response

    @staticmethod
    async def _answer(request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Run ``handler``, turning its errors into ``error.list`` answers."""
        try:
            return await handler(request)
        except (ApiError, web.HTTPException) as exc:
            return _error_for(exc)

    async def _answer_with_fault(
        self, request: web.Request, handler: _Handler, rate_headers: dict[str, str]
    ) -> web.StreamResponse:
        """Answer a list request as its `Fault` says (normally, if it has none)."""
        assert self._faults is not None
        fault = self._faults.decide(request.path_qs, self._rate.now())
        if fault.kind is not None:
            self.stats.faults[fault.kind] += 1
        if fault.odd_header is not None:
            self.stats.faults["odd_headers"] += 1
        if fault.kind in ("error", "html_error", "hiccup"):
            kind = self._scroll_kinds.get(request.match_info.route.resource)
            if kind is not None:
                # A 500 during a scroll means starting again (Intercom).
                self._scrolls.abandon(kind, request.query.get("scroll_param"))
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        response: web.StreamResponse
        match fault.kind:
            case "error" | "hiccup":
                code, message = ERROR_CODES[fault.status]
                response = _error_response(fault.status, code, message, rate_headers)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
            case "html_error":
                # Made by a proxy the request never got past: no X-RateLimit-* headers.
                response = _html_response(HTML_ERROR_PAGES[fault.status], status=fault.status)
                response.headers["Date"] = rate_headers["Date"]  # the proxy's, same clock
                return response
            case "throttle":
                response = self._rate.exceeded(rate_headers)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
            case "bad_body":
                if fault.html:
                    response = _html_response(BAD_BODY_HTML, status=200)
                    response.headers["Date"] = rate_headers["Date"]
                    return response
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
        if fault.odd_header is not None:
            # Over whatever the answer said (a 429's Remaining and Retry-After too).
            response.headers.update(dict.fromkeys(ODD_HEADER_NAMES, fault.odd_header))
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
            raise ApiError(401, "unauthorized", "Access Token missing")
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
                raise ApiError(401, "unauthorized", "Malformed Basic credentials") from None
            # The token is the user name; a password means an old app_id:api_key pair.
            token = login if colon and not password else ""
        if not token:
            raise ApiError(401, "unauthorized", "Access Token Invalid")
        expected = self.config.token
        if expected is not None and not hmac.compare_digest(token.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "Access Token Invalid")

    # -- handlers -----------------------------------------------------------------

    async def _users(self, request: web.Request) -> web.Response:
        query = request.query
        if "tag_id" in query and "segment_id" in query:
            raise ApiError(400, "parameter_invalid", "tag_id and segment_id cannot be combined")
        key = self._filtered_key("users", query)
        sort = None
        if key == ListKey("users") and ("sort" in query or "order" in query):
            # Unknown values read as the defaults (see the module docstring).
            field_ = query.get("sort", "created_at")
            order = query.get("order", "desc")
            sort = (
                field_ if field_ in SORT_FIELDS else "created_at",
                order if order in ("asc", "desc") else "desc",
            )
        return self._paged(request, key, sort=sort)

    async def _company_users(self, request: web.Request) -> web.Response:
        company = request.match_info["id"]
        return self._paged(request, self._company_key(company, by="id"))

    async def _companies(self, request: web.Request) -> web.Response:
        query = request.query
        if "company_id" in query:
            kind = query.get("type")
            if kind is None:
                # View a company by your own company_id (API 1.x "View a Company").
                body = self.workspace.company_body(query["company_id"])
                if body is None:
                    raise ApiError(404, "company_not_found", "Company Not Found")
                return _json_response(body)
            if kind != "user":
                raise ApiError(400, "parameter_invalid", f"type must be 'user', got {kind!r}")
            return self._paged(request, self._company_key(query["company_id"], by="company_id"))
        if "tag_id" in query and "segment_id" in query:
            raise ApiError(400, "parameter_invalid", "tag_id and segment_id cannot be combined")
        return self._paged(request, self._filtered_key("companies", query))

    async def _contacts(self, request: web.Request) -> web.Response:
        return self._paged(request, ListKey("contacts"))

    async def _scroll(self, kind: str, request: web.Request) -> web.Response:
        """``/{kind}/scroll``: one batch of Intercom's Scroll API (see `ScrollRegistry`)."""
        return _json_response(self._scrolls.serve(kind, request.query))

    def _scroll_batch_served(self, kind: str) -> None:
        # Scroll batches of users are user-list pages for insert_users_every.
        if kind == "users":
            self._count_user_page()

    async def _small_list(self, name: str, request: web.Request) -> web.Response:
        body = self.workspace.small_list_body(name)
        assert body is not None  # only routed for tags, segments, admins
        return _json_response(body)

    def _filtered_key(self, collection: str, query: Mapping[str, str]) -> ListKey:
        for by, what in (("tag_id", "Tag"), ("segment_id", "Segment")):
            if by in query:
                key = ListKey(collection, by, query[by])
                if self.workspace.list_blobs(key) is None:
                    raise ApiError(404, "not_found", f"{what} Not Found")
                return key
        return ListKey(collection)

    def _company_key(self, company: str, *, by: str) -> ListKey:
        """The users of a company named by Intercom ``id`` or by its own ``company_id``."""
        company_id = self.workspace.company_ids.get(company) if by == "company_id" else company
        key = ListKey("users", "company", company_id or "")
        if self.workspace.list_blobs(key) is None:
            raise ApiError(404, "company_not_found", "Company Not Found")
        return key

    # -- pagination ---------------------------------------------------------------

    def _paged(
        self, request: web.Request, key: ListKey, *, sort: tuple[str, str] | None = None
    ) -> web.Response:
        """One page of the list ``key``, in Intercom's v1 envelope."""
        page = _positive_int(request.query, "page", 1)
        per_page = min(_positive_int(request.query, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        if (page - 1) * per_page >= self.config.page_cap_records:
            return self._past_cap(key, page, per_page)
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
                self._page_items(key, page, per_page, sort),
                b'],"pages":',
                orjson.dumps(pages),
                b"}",
            )
        )
        if key.collection == "users":
            self._count_user_page()
        return _json_response(body)

    def _past_cap(self, key: ListKey, page: int, per_page: int) -> web.Response:
        """A page past the cap, answered as Intercom's endpoint for ``key`` does."""
        if not self.config.cap_per_endpoint:
            raise ApiError(400, "parameter_invalid", CAP_MESSAGE)
        if key.collection == "users":
            # intercom-node#115, python-intercom#186.
            raise ApiError(400, "bad_request", CAP_MESSAGE)
        if key.collection == "contacts":
            # intercom-ruby#274.
            raise ApiError(400, "parameter_invalid", CONTACTS_CAP_MESSAGE)
        # Companies, intercom-ruby#274: a 200 that looks like the end of the list.
        pages = {
            "type": "pages",
            "next": None,
            "page": page,
            "per_page": per_page,
            "total_pages": 0,
        }
        return _json_response(
            orjson.dumps(
                {"type": "company.list", "total_count": 0, "companies": [], "pages": pages}
            )
        )

    def _count_user_page(self) -> None:
        """Count one user-list page served; sign users up after every
        ``insert_users_every``-th, touch users after every ``touch_users_every``-th."""
        config = self.config
        if config.insert_users_every is None and config.touch_users_every is None:
            return
        self._user_pages_served += 1
        served = self._user_pages_served
        if config.insert_users_every is not None and served % config.insert_users_every == 0:
            for _ in range(config.insert_users_count):
                self.workspace.insert_user()
            # Cached pages of the two lists that grew are stale now; the
            # others are not, but a rare full clear keeps this simple.
            self._page_items.cache_clear()  # type: ignore[attr-defined]
        if config.touch_users_every is not None and served % config.touch_users_every == 0:
            users = self.workspace.users
            picked = self._touch_rng.sample(
                range(len(users)), min(config.touch_users_count, len(users))
            )
            self.touch([str(users[i]["id"]) for i in picked])

    def _join_page_items(
        self, key: ListKey, page: int, per_page: int, sort: tuple[str, str] | None
    ) -> bytes:
        first = (page - 1) * per_page
        if sort is not None and key == ListKey("users"):
            users = self.workspace.users_blobs
            ranked = self.workspace.sorted_user_indexes(*sort)
            return b",".join(users[i] for i in ranked[first : first + per_page])
        blobs = self.workspace.list_blobs(key) or ()
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
    def token(self) -> str:
        """A token the server accepts: ``config.token``, or ``"any-token"`` when any is."""
        return self.config.token or "any-token"

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

    def touch(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """`IntercomServer.touch`, run on the server's own loop (from any thread)."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("ServerThread is not started")

        async def touch() -> list[dict[str, Any]]:
            return self.server.touch(ids)

        return asyncio.run_coroutine_threadsafe(touch(), loop).result(timeout=30)

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


def _count(number: int, singular: str, plural: str | None = None) -> str:
    """``"1 user"``, ``"2 users"``: a copy of the CLI's ``count``, since the
    server shares no code with the client it stands in front of."""
    word = singular if number == 1 else (plural or singular + "s")
    return f"{number} {word}"


def startup_text(server: IntercomServer) -> str:
    """What ``asyncfetch serve`` prints once listening: the URL first (scripts read
    it from the first line), then ids to try and how to point the CLI here."""
    ws = server.workspace

    def members(filter_name: str, object_id: str) -> int:
        return len(ws.list_blobs(ListKey("users", filter_name, object_id)) or ())

    tags = [ws.tags[0], ws.tags[1], ws.tags[-1]] if len(ws.tags) > 2 else list(ws.tags)
    shown_tags = ", ".join(
        f"{t['id']} {t['name']} ({_count(members('tag_id', str(t['id'])), 'user')})" for t in tags
    )
    shown_segments = ", ".join(
        f"{s['id']} {s['name']} ({_count(members('segment_id', str(s['id'])), 'user')})"
        for s in ws.segments[:2]
    )
    return (
        f"Intercom-compatible server on {server.base_url} "
        f"({_count(len(ws.users), 'user')}, {_count(len(ws.companies), 'company', 'companies')}, "
        f"{_count(len(ws.contacts), 'contact')}); Ctrl-C stops it\n"
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
