"""Notice other spenders of the same token from the headers alone, and pace.

Processes on different machines (or programs that are not asyncfetch) share
nothing with this one but the server's answers. Those say enough: every
answer carries the window's ``X-RateLimit-Reset`` (which window it was
counted in) and its ``X-RateLimit-Remaining``, so ``Limit - Remaining`` is at
most what the server had counted in that window by then, from everyone.
This process's own requests counted in the window are at most those it got
an answer for from that window, plus those still in flight, plus those lost
without an answer or answered without the headers (a proxy's error page)
since the window can have begun. When the first number is larger than the
second, someone else spent the difference: no reordering of requests on the
wire, no ``Remaining`` model (with or without the request answered) can make
that happen to a process alone, so a single process's behaviour never changes.

Once others are seen (in this window or the last), ``RateBudget`` no longer
spends its ceiling in a burst, where every spender's requests in flight
together overshoot the window's last few places. It paces: with ``left``
places under its ceiling, ``reset`` the window's end, and ``n`` the spenders
it reckons share the window (what the server counted over what it can have
counted of ours, at least 2), it starts the next request no sooner than
``(reset - now) * n / left`` after the last. Every spender doing that spreads
the window's budget over the window instead of racing for its end, so
``Remaining`` decays to about ``n`` at the reset, and each answer lowers every
ceiling in time; with ``left <= n`` it waits for the reset. Those few places,
and the first window in which the others are noticed, are what the mode
costs. Answers without the headers, or with ``Remaining: 0`` (a 429 says 0
whatever was counted), tell nothing here.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["OtherSpenders"]

_MOST_SPENDERS = 16
"""Past this many spenders, pacing by the count is as good as waiting for the reset."""

_MOST_LOSSES = 4096
"""The losses kept: a new window's answer drops those from before it, and this
bounds the memory when none comes (a server that sends no rate headers at all, or
stops). Fewer kept can only make others look busier: more pacing, never more
requests."""


class OtherSpenders:
    """What the headers say about other spenders of the budget, per window."""

    __slots__ = ("_answered", "_last_start", "_losses", "_previous", "_spenders", "_window")

    def __init__(self) -> None:
        self._window = 0  # the X-RateLimit-Reset of the window counted
        self._answered = 0  # our answers from that window
        # Server time (upper bound) of each of our requests that ended without
        # an answer naming its window: counted, maybe, in any window begun by then.
        self._losses: deque[float] = deque(maxlen=_MOST_LOSSES)
        self._spenders = 0  # spenders reckoned in this window: 0 while none but us seen
        self._previous = 0  # the same for the window before
        self._last_start = -math.inf  # server time our last request started

    def answered(
        self, reset: int, remaining: int, limit: int | None, in_flight: int, length: int | None
    ) -> None:
        """One of our answers, from the window ending at ``reset`` (``length``
        seconds long, ``None`` while unknown); ``in_flight`` of ours are still
        out after it."""
        if reset > self._window:
            self._previous = self._spenders
            self._window, self._answered, self._spenders = reset, 0, 0
            if length:
                # A request lost before this window began was counted before it.
                losses, begun = self._losses, reset - length
                while losses and losses[0] < begun:
                    losses.popleft()
        elif reset < self._window:
            return  # an older window's straggler
        self._answered += 1
        if limit is None or remaining <= 0:
            return
        counted = limit - remaining  # at most what the server counted, from everyone
        # At least what it counted of ours.
        ours = self._answered + in_flight + len(self._losses)
        if counted > ours:
            # The latest reckoning: the later in the window, the more it has counted.
            self._spenders = min(max(2, math.ceil(counted / ours)), _MOST_SPENDERS)

    def lost(self, now: float) -> None:
        """One of our requests ended, at server time ``now`` at the latest,
        without an answer or with one that names no window (no rate headers: a
        proxy's page): it may have been counted."""
        self._losses.append(now)

    def started(self, now: float) -> None:
        self._last_start = now

    def start_at(self, now: float, reset: float, left: int) -> float:
        """Server time before which our next request should not start (``<= now``:
        at once); ``left`` places are under our ceiling of the window ending at ``reset``."""
        spenders = self._spenders or self._previous
        if not spenders or now >= reset or left <= 0:
            return now
        if left <= spenders:
            return reset
        return min(self._last_start + (reset - now) * spenders / left, reset)
