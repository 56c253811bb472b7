"""Spend the server's advertised rate budget fully without tripping it.

Intercom meters requests in fixed windows and says so on every response:
``X-RateLimit-Limit`` (requests per window), ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (epoch seconds when the window ends). ``RateBudget``
turns those headers into a ceiling on the requests the client starts.

Every request gets a sequence number when it starts. A response to request
``k`` saying ``remaining = r`` means the server had counted everything before
``k`` and had ``r`` left, with or without ``k`` itself: Intercom's 1.x and 2.0
docs show ``Remaining`` still equal to ``Limit`` after a window's first
request, so it cannot be trusted to count the request it answers. Requests
started after ``k`` may not be counted yet. So the window is spent once we
have started request ``k + r - 1``: the ceiling is ``min(k + r - 1)`` over
this window's responses (one request a window is given up when the server
does count ``k``; a 429 costs far more). That counts the requests still in
flight, so the client never has more on the wire than the window has left.

When the ceiling is reached, every request waits for the window's reset (one
coordinated pause, not a herd of retries), then a single probe request goes
out and its response opens the new window for the others.

Clocks. ``X-RateLimit-Reset`` is the server's time, so waiting for it by our
clock is only right if the two agree. Each API response's ``Date`` header
(one with the rate headers: a proxy's page has the proxy's clock) gives
the server's time to the whole second: a ``Date`` of ``D`` received at our
time ``t`` (sent at ``s``) puts the server's clock between ``D - t`` and
``D + 1 - s`` ahead of ours. The budget keeps the tightest such bounds over
all answers and waits by the *lower* one, so the rounding of ``Date`` can
only make a pause a little long (less than a second, shrinking as answers
arrive), never send a request into a window that has not reset yet. Without
``Date`` headers both clocks are taken to agree.

Missing headers. Intercom's docs say the ``X-RateLimit-*`` headers are
occasionally missing (about once a month, when they expire). Once a budget
has been told, answers without them do not lift it: the budget keeps the
last ``Limit`` and counts windows of its own, aligned to the last ``Reset``
and as long as the shortest gap seen between two resets (10 s, Intercom's
window, until two were seen). At each window's edge it counts every request
that may land in the new window (those in flight and those started since the
edge could have passed, by the *upper* bound of the server's clock) against
that window's ``Limit``. The first answer with headers again takes over.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping

import anyio

from .._exceptions import RateLimitError
from ._adaptive import OtherSpenders

logger = logging.getLogger("asyncfetch")

__all__ = ["RateBudget", "check_max_wait", "header_number"]

_RECHECK_SECONDS = 0.5
"""How long to wait before probing again when a probe still hit the old window."""
_DEFAULT_WINDOW_SECONDS = 10.0
"""Intercom's window, assumed while headers are missing until two resets were seen."""
_MAX_HEADER_DIGITS = 30
"""Longer numbers in a header are not believed (and never reach int()'s digit limit)."""
_MAX_RESET_DISTANCE = 86_400.0
"""An ``X-RateLimit-Reset`` further than this from the server's time is not believed."""


def check_max_wait(
    wait: float,
    max_wait: float | None,
    started_waiting: float,
    *,
    limit: str = "the server's rate limit",
) -> None:
    """Raise ``RateLimitError`` if waiting ``wait`` more seconds would pass the
    ``max_wait`` of a request that began waiting at ``started_waiting``
    (``time.monotonic()``); ``limit`` names what asks for the wait."""
    if max_wait is None:
        return
    left = max_wait - (time.monotonic() - started_waiting)
    if wait > left:
        raise RateLimitError(
            f"{limit} asks to wait {wait:.0f} s, longer "
            f"than the {max(left, 0):.0f} s left of max_wait (--max-retry-wait)",
            status=429,
            code="rate_limit_wait",
            retry_after=wait,
        )


class RateBudget:
    """The current window's budget, learnt from ``X-RateLimit-*`` headers.

    ``clock`` gives epoch seconds (the unit of ``X-RateLimit-Reset``).
    ``adaptive``: pace requests once the headers show others spending the
    same budget (``_adaptive.py``).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, adaptive: bool = False) -> None:
        self._clock = clock
        self._others = OtherSpenders() if adaptive else None
        # The server's clock minus ours, as bounds learnt from Date headers.
        self._offset_low = 0.0
        self._offset_high = 0.0
        self._offset_known = False
        self._date: tuple[str, float | None] = ("", None)  # the last Date read, parsed
        self._started = 0
        self._ended = 0
        self._ceiling: int | None = None  # None: no budget known, nothing to hold back
        self._limit: int | None = None  # the last X-RateLimit-Limit told
        self._window = 0  # the server's X-RateLimit-Reset of the current window: its identity
        self._window_seconds: int | None = None  # shortest gap seen between two resets
        self._boundary = 0.0  # server time the current window ends, for counting
        # (started, in flight) when the boundary may have passed on the server.
        self._at_boundary: tuple[int, int] | None = None
        self._blind = False  # headers missing: windows counted by us
        self._reset_at = 0.0  # server time to look for a new window (probe)
        self._hold_until = 0.0  # server time of a Retry-After: nothing starts before it
        self._probe: int | None = None  # the request sent to learn the new window
        self._changed = asyncio.Event()
        self._paused_until = 0.0
        self.pauses = 0
        """How many times the client paused for a window's reset or a Retry-After."""

    def server_time(self) -> float:
        """The server's clock as far as we can be sure it has got: its lower bound."""
        return self._clock() + self._offset_low

    async def acquire(self, *, max_wait: float | None = None) -> int:
        """Wait until the budget allows one more request; return its sequence number.

        ``max_wait``: seconds this request may still wait. A pause that would
        last longer raises ``RateLimitError`` at once, saying how long the
        server asked to wait.
        """
        started_waiting = time.monotonic()
        while True:
            self._tick()
            now = self.server_time()
            if now >= self._hold_until:
                if self._ceiling is None or self._started < self._ceiling:
                    others = self._others
                    if others is not None and not self._blind and self._ceiling is not None:
                        start_at = others.start_at(now, self._window, self._ceiling - self._started)
                        if start_at > now:  # others spend too: pace, do not burst
                            check_max_wait(start_at - now, max_wait, started_waiting)
                            with anyio.move_on_after(start_at - now):
                                await self._changed.wait()
                            continue
                        others.started(now)
                    self._started += 1
                    return self._started
                if not self._blind and now >= self._reset_at and self._probe is None:
                    self._started += 1
                    self._probe = self._started
                    return self._probe
            changed = self._changed
            if self._probe is not None and now >= self._hold_until:
                await changed.wait()  # the probe's answer will say what is left
                continue
            if now < self._hold_until:
                wake_at = self._hold_until
            else:
                wake_at = self._boundary if self._blind else self._reset_at
                if wake_at <= now:  # pragma: no cover - _tick moved the window on
                    continue
            check_max_wait(wake_at - now, max_wait, started_waiting)
            if self._paused_until != wake_at:
                self._paused_until = wake_at
                self.pauses += 1
                logger.info(
                    "rate limit: pausing every request for %.1f s",
                    wake_at - now,
                    # For the CLI's progress bar (see _cli/_progress.py): what, and how long.
                    extra={"asyncfetch_wait": ("the rate-limit window to reset", wake_at - now)},
                )
            # Sleep until then, or until a response moves the ceiling.
            with anyio.move_on_after(wake_at - now):
                await changed.wait()

    def update(
        self,
        sequence: int,
        headers: Mapping[str, str],
        *,
        sent: float | None = None,
        received: float | None = None,
    ) -> None:
        """Read the ``X-RateLimit-*`` and ``Date`` headers of the response to
        request ``sequence``, sent and received at ``sent`` and ``received``
        by our clock."""
        remaining = header_number(headers.get("X-RateLimit-Remaining"))
        reset = header_number(headers.get("X-RateLimit-Reset"))
        limit = header_number(headers.get("X-RateLimit-Limit"))
        date = headers.get("Date")
        # Only the API's own answers (those with its rate headers) tell its clock:
        # a proxy's error page carries the proxy's.
        if reset is not None and date is not None and sent is not None and received is not None:
            self._read_date(date, sent, received)
        self._tick()
        self._ended += 1
        if reset is not None and abs(reset - self.server_time()) > _MAX_RESET_DISTANCE:
            reset = None  # not a time this window could end at: garbage
        if remaining is None or reset is None:
            if self._others is not None:
                # Counted, maybe, in a window it does not name.
                self._others.lost(self._clock() + self._offset_high)
            self._without_headers(sequence)
            self._notify()
            return
        self._blind = False
        if limit is not None and limit >= 1:
            self._limit = limit
        if self._others is not None:
            self._others.answered(
                reset, remaining, self._limit, self._in_flight(), self._window_seconds
            )
        ceiling = sequence + remaining - 1
        # Windows are told apart by the server's own reset values, never by our
        # clock, so a client clock ahead of or behind the server's only shifts
        # when we look, not what we count.
        if reset > self._window:  # the first response of a new window
            if self._window:
                gap = reset - self._window
                self._window_seconds = min(self._window_seconds or gap, gap)
            self._window = reset
            self._boundary = self._reset_at = float(reset)
            self._at_boundary = None
            self._ceiling = ceiling
        elif reset == self._window and self._ceiling is not None:
            self._ceiling = min(self._ceiling, ceiling)
        if sequence == self._probe:
            self._probe = None
            if self._ceiling is not None and self._started >= self._ceiling:
                # The probe still landed in the spent window (the server's clock
                # is behind our estimate of it): look again a little later.
                self._reset_at = max(self._reset_at, self.server_time() + _RECHECK_SECONDS)
        self._notify()

    def throttled(self, sequence: int, retry_after: float | None, *, told: bool) -> None:
        """Request ``sequence`` got a 429: start nothing new until ``retry_after``
        seconds from now or, without it, until the window's reset; then probe.
        ``told``: the 429 carried ``X-RateLimit-*`` headers (already read)."""
        now = self.server_time()
        if not told:
            # Nothing to count against (a proxy's 429, say): a plain pause, as long
            # as it asks and no longer; the budget the API told stays as it was.
            self._hold_until = max(self._hold_until, now + (retry_after or _RECHECK_SECONDS))
            self._notify()
            return
        self._ceiling = sequence if self._ceiling is None else min(self._ceiling, sequence)
        if retry_after is not None:
            self._hold_until = max(self._hold_until, now + retry_after)
            # The probe goes when the hold ends, whatever the window said before.
            self._reset_at = now + retry_after
        elif self._reset_at <= now:
            # A 429 that names no reset in the future: look again shortly.
            self._reset_at = now + _RECHECK_SECONDS
        if sequence == self._probe:
            self._probe = None
        self._notify()

    def forget(self, sequence: int) -> None:
        """Request ``sequence`` ended with nothing to learn (no answer, or cancelled
        before it was sent)."""
        self._tick()
        self._ended += 1
        if self._others is not None:
            self._others.lost(self._clock() + self._offset_high)
        if sequence == self._probe:
            self._probe = None
        # Waiters look at the clock again: the reset may have passed meanwhile.
        self._notify()

    def _without_headers(self, sequence: int) -> None:
        """An answer that says nothing of the budget."""
        was_probe = sequence == self._probe
        if was_probe:
            self._probe = None
        if self._limit is None or self._window <= 0:
            if was_probe:
                # No budget was ever told: stop holding back on it.
                self._ceiling = None
            return
        if not self._blind:
            # The headers went missing: count windows of our own from the last reset.
            self._blind = True
            self._boundary = float(self._window)
            self._tick()

    def _tick(self) -> None:
        """Note when the window's end may have passed on the server; while the
        headers are missing, move on to the next window once it surely has."""
        if not self._boundary:
            return
        now = self._clock()
        if self._at_boundary is None and now + self._offset_high >= self._boundary:
            self._at_boundary = (self._started, self._in_flight())
        if not self._blind or now + self._offset_low < self._boundary:
            return
        assert self._limit is not None
        assert self._at_boundary is not None
        started, in_flight = self._at_boundary
        # Everything in flight at the edge, and everything started since, may
        # count in the new window.
        self._ceiling = started - in_flight + self._limit
        length = self._window_seconds or _DEFAULT_WINDOW_SECONDS
        passed = math.floor((now + self._offset_low - self._boundary) / length) + 1
        self._boundary += passed * length
        self._at_boundary = None
        if now + self._offset_high >= self._boundary:
            self._at_boundary = (self._started, self._in_flight())

    def _in_flight(self) -> int:
        return max(self._started - self._ended, 0)

    def _read_date(self, value: str, sent: float, received: float) -> None:
        # Answers within one second share their Date: parse each value once.
        text, server = self._date
        if value != text:
            server = _parse_date(value)
            self._date = (value, server)
        if server is None:
            return
        low, high = server - received, server + 1 - sent
        if not self._offset_known or low > self._offset_high or high < self._offset_low:
            # The first sample, or one that contradicts the others (the server's
            # clock was set): start again from it.
            self._offset_low, self._offset_high = low, high
            self._offset_known = True
            return
        self._offset_low = max(self._offset_low, low)
        self._offset_high = min(self._offset_high, high)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def header_number(value: str | None) -> int | None:
    """A header's whole number, or ``None`` for anything else (absent, garbage,
    infinite, not a number, or too long to be believed): never raises."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_HEADER_DIGITS:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number)


def _parse_date(value: str) -> float | None:
    """An HTTP date as epoch seconds, or ``None`` if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
        stamp = when.timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return stamp if math.isfinite(stamp) else None
