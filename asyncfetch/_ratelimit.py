"""Spend the server's advertised rate budget fully without tripping it.

Intercom meters requests in fixed windows and says so on every response:
``X-RateLimit-Limit`` (requests per window), ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (epoch seconds when the window ends). ``RateBudget``
turns those headers into a ceiling on the requests the client starts.

Every request gets a sequence number when it starts. A response to request
``k`` saying ``remaining = r`` means the server had counted request ``k`` and
everything before it, and had ``r`` left; requests started after ``k`` may not
be counted yet. So the window is spent once we have started request
``k + r``: the ceiling is ``min(k + r)`` over this window's responses. That
counts the requests still in flight, so the client never has more on the wire
than the window has left.

When the ceiling is reached, every request waits for the window's reset (one
coordinated pause, not a herd of retries), then a single probe request goes
out and its response opens the new window for the others: the probe is what
learns the new budget, so client and server clocks need not agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import anyio

logger = logging.getLogger("asyncfetch")

__all__ = ["RateBudget"]

_RECHECK_SECONDS = 0.5
"""How long to wait before probing again when a probe still hit the old window."""


class RateBudget:
    """The current window's budget, learnt from ``X-RateLimit-*`` headers.

    ``clock`` gives epoch seconds (the unit of ``X-RateLimit-Reset``).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._started = 0
        self._ceiling: int | None = None  # None: no budget known, nothing to hold back
        self._window = 0  # the server's X-RateLimit-Reset of the current window: its identity
        self._reset_at = 0.0  # when, by our clock, to look for a new window
        self._hold_until = 0.0  # a Retry-After: nothing starts before it
        self._probe: int | None = None  # the request sent to learn the new window
        self._changed = asyncio.Event()
        self._paused_until = 0.0
        self.pauses = 0
        """How many times the client paused for a window's reset or a Retry-After."""

    async def acquire(self) -> int:
        """Wait until the budget allows one more request; return its sequence number."""
        while True:
            now = self._clock()
            if now >= self._hold_until:
                if self._ceiling is None or self._started < self._ceiling:
                    self._started += 1
                    return self._started
                if now >= self._reset_at and self._probe is None:
                    self._started += 1
                    self._probe = self._started
                    return self._probe
            changed = self._changed
            if self._probe is not None:
                await changed.wait()  # the probe's answer will say what is left
                continue
            wake_at = max(self._hold_until, self._reset_at)
            if self._paused_until != wake_at:
                self._paused_until = wake_at
                self.pauses += 1
                logger.info(
                    "rate limit: pausing every request for %.1f s",
                    wake_at - now,
                    # For the CLI's progress bar (see _progress.py): what, and how long.
                    extra={"asyncfetch_wait": ("the rate-limit window to reset", wake_at - now)},
                )
            # Sleep until then, or until a response moves the ceiling.
            with anyio.move_on_after(wake_at - now):
                await changed.wait()

    def update(self, sequence: int, headers: Mapping[str, str]) -> None:
        """Read the ``X-RateLimit-*`` headers of the response to request ``sequence``."""
        remaining = _header_int(headers, "X-RateLimit-Remaining")
        reset = _header_int(headers, "X-RateLimit-Reset")
        if remaining is None or reset is None:
            if sequence == self._probe:
                # The server says nothing of its budget: stop holding back on it.
                self._ceiling = None
            self.forget(sequence)
            return
        ceiling = sequence + remaining
        # Windows are told apart by the server's own reset values, never by our
        # clock, so a client clock ahead of or behind the server's only shifts
        # when we look, not what we count.
        if reset > self._window:  # the first response of a new window
            self._window = reset
            self._reset_at = float(reset)
            self._ceiling = ceiling
        elif reset == self._window and self._ceiling is not None:
            self._ceiling = min(self._ceiling, ceiling)
        if sequence == self._probe:
            self._end_probe()
            if self._ceiling is not None and self._started >= self._ceiling:
                # The probe still landed in the spent window (our clock runs ahead
                # of the server's): look again a little later.
                self._reset_at = max(self._reset_at, self._clock() + _RECHECK_SECONDS)
        self._notify()

    def throttled(self, sequence: int, retry_after: float | None, *, told: bool) -> None:
        """Request ``sequence`` got a 429: start nothing new until ``retry_after``
        seconds from now or, without it, until the window's reset; then probe.
        ``told``: the 429 carried ``X-RateLimit-*`` headers (already read)."""
        now = self._clock()
        if not told:
            # Nothing to count against (a proxy's 429, say): a plain pause.
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
            self._end_probe()
        self._notify()

    def forget(self, sequence: int) -> None:
        """Request ``sequence`` ended with nothing to learn (no answer, no headers)."""
        if sequence == self._probe:
            self._end_probe()
        # Waiters look at the clock again: the reset may have passed meanwhile.
        self._notify()

    def _end_probe(self) -> None:
        self._probe = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
