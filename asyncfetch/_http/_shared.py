"""One rate budget for every process on this machine that uses the same token.

A rate limit belongs to the token, not to a process: two cron jobs, or two
``asyncfetch`` runs for different lists, each reading ``X-RateLimit-Remaining``
on their own, overshoot together. ``SharedRateBudget`` lifts ``RateBudget``'s
rule (see ``_ratelimit.py``) from one process's requests to all of them, through
a small file every process of the same token and base URL opens:

* Every request takes a *global* sequence number from the file (a counter
  every process increments), as well as its process-local one.
* A response to global request ``k`` saying ``Remaining: r`` lowers the
  window's global ceiling to ``k + r - 1``, exactly as the local budget does
  with its own numbers; a grant is taken only below the ceiling. So the file
  counts every process's requests in flight against what the server said is
  left, whoever asked.
* Once the window's ``X-RateLimit-Reset`` has passed (by the server's clock
  as this process knows it), one process, whichever asks first, sends the
  probe; the others wait until its answer opens the new window in the file.
  The same goes for the very first request, before anything is known. A
  probe's hold expires after one window (10 s until a window's length was
  seen), so a process that died with its probe out holds nobody back longer.

The file holds numbers only (64 bytes: a format tag, the counter, the
window's reset, its ceiling, the limit, the probe's sequence and hold, the
window's length); its name is a salted SHA-256 of the base URL and the token,
so it never holds the token, and a token cannot be read back from its name.
It is read and written under ``fcntl.flock`` with ``pread``/``pwrite``, the
lock held for those few system calls only, never across a request or an
``await``: the event loop blocks for microseconds, and a waiting process polls
(every ``_POLL_SECONDS``) rather than holding the lock.

Nothing is reserved for good: the counter only grows, a ceiling is only ever
learnt from a server's answer, and a new window is learnt afresh from its
probe, so what a crashed process left behind stops mattering at the next
window. State that names a window ending further ahead than one window's
length (a different server on the same URL, a test's clock) is dropped.

Where ``fcntl`` is missing (Windows), the budget is the process's own, as
without this option, and a warning says so once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

from ._ratelimit import RateBudget, check_max_wait, header_number

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl
    _fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("asyncfetch")

__all__ = ["SharedBudgetOption", "SharedRateBudget", "default_state_dir", "shared_budget_path"]

_SALT = b"asyncfetch shared rate budget v1\0"
"""Salts the file's name: the same token gives another name than a plain sha256."""
_FORMAT = struct.Struct("<8sqqqqqdd")
_TAG = b"afbudg01"
_POLL_SECONDS = 0.02
"""How often a request waiting for another process's probe looks at the file again."""
_RECHECK_SECONDS = 0.5
"""A probe that still hit the old window: look again this much later."""
_DEFAULT_WINDOW_SECONDS = 10.0
"""Intercom's window: how long a probe holds the others until a window's length is seen."""
_MAX_AHEAD_SECONDS = 86_400.0
"""A reset further from the server's clock than this is not believed (as ``RateBudget``)."""

SharedBudgetOption = bool | str | os.PathLike[str] | None


def default_state_dir() -> Path:
    """Where budget files live: ``$ASYNCFETCH_STATE_DIR``, else
    ``$XDG_RUNTIME_DIR/asyncfetch`` (per user, in memory, emptied at logout),
    else ``$XDG_CACHE_HOME/asyncfetch`` (``~/.cache/asyncfetch``)."""
    given = os.environ.get("ASYNCFETCH_STATE_DIR")
    if given:
        return Path(given)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "asyncfetch"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "asyncfetch"


def shared_budget_path(option: SharedBudgetOption, *, secret: str, base_url: str) -> Path | None:
    """The budget file for ``option`` (``shared_budget=``): ``None`` when off,
    else a file in the default folder (``True``) or in the folder given, named
    by a salted SHA-256 of ``base_url`` and ``secret`` (never the secret itself)."""
    if option is None or option is False:
        return None
    if option is True:
        folder = default_state_dir()
    elif isinstance(option, str | os.PathLike) and str(option):
        folder = Path(option)
    else:
        raise ValueError(
            f"shared_budget must be True, False or a folder for the budget file, got {option!r}"
        )
    digest = hashlib.sha256(
        _SALT + base_url.rstrip("/").encode() + b"\0" + secret.encode()
    ).hexdigest()
    return folder / f"budget-{digest[:32]}"


class _State:
    """The file's numbers (see the module docstring)."""

    __slots__ = ("ceiling", "limit", "probe", "probe_until", "seq", "window", "window_seconds")

    def __init__(self, data: bytes) -> None:
        if len(data) == _FORMAT.size and data[:8] == _TAG:
            (_, self.seq, self.window, self.ceiling, self.limit, self.probe,
             self.probe_until, self.window_seconds) = _FORMAT.unpack(data)  # fmt: skip
        else:  # a new (or foreign) file: nothing known
            self.seq = self.window = self.ceiling = self.limit = self.probe = 0
            self.probe_until = self.window_seconds = 0.0

    def pack(self) -> bytes:
        return _FORMAT.pack(
            _TAG, self.seq, self.window, self.ceiling, self.limit, self.probe,
            self.probe_until, self.window_seconds,
        )  # fmt: skip


class SharedRateBudget(RateBudget):
    """A ``RateBudget`` whose grants also come from the budget file at ``path``,
    shared by every process of the same token and base URL (see the module
    docstring). The process's own budget still applies first."""

    _warned = False

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self._path = path
        self._fd: int | None = None
        self._global: dict[int, int] = {}  # local sequence -> the file's
        self._open()  # here, so that a folder that cannot hold it fails the setup

    @property
    def path(self) -> Path:
        return self._path

    async def acquire(self, *, max_wait: float | None = None) -> int:
        started_waiting = time.monotonic()
        sequence = await super().acquire(max_wait=max_wait)
        if _fcntl is None:  # pragma: no cover - Windows
            self._warn_once()
            return sequence
        try:
            self._global[sequence] = await self._grant(started_waiting, max_wait)
        except BaseException:
            super().forget(sequence)
            raise
        return sequence

    async def _grant(self, started_waiting: float, max_wait: float | None) -> int:
        """Wait until the file grants one request; return its global sequence."""
        while True:
            granted, wait = self._try_grant()
            if granted:
                return granted
            check_max_wait(
                wait,
                max_wait,
                started_waiting,
                limit="the server's rate limit (shared with other processes)",
            )
            await anyio.sleep(wait)

    def update(
        self,
        sequence: int,
        headers: Mapping[str, str],
        *,
        sent: float | None = None,
        received: float | None = None,
    ) -> None:
        super().update(sequence, headers, sent=sent, received=received)
        granted = self._global.pop(sequence, None)
        if granted is None:
            return
        remaining = header_number(headers.get("X-RateLimit-Remaining"))
        reset = header_number(headers.get("X-RateLimit-Reset"))
        limit = header_number(headers.get("X-RateLimit-Limit"))
        with self._locked() as state:
            now = self.server_time()
            if remaining is None or reset is None or abs(reset - now) > _MAX_AHEAD_SECONDS:
                if state.probe == granted:
                    state.probe, state.probe_until = 0, 0.0
                    if not state.window:
                        state.window = -1  # the server tells no budget: nothing to share
                return
            ceiling = granted + remaining - 1
            if reset > state.window:  # the first answer of a new window
                if state.window > 0:
                    gap = float(reset - state.window)
                    state.window_seconds = min(state.window_seconds or gap, gap)
                state.window, state.ceiling = reset, ceiling
            elif reset == state.window:
                state.ceiling = min(state.ceiling, ceiling)
            if limit is not None and limit >= 1:
                state.limit = limit
            if state.probe == granted:
                state.probe = 0
                # Still the old window (the server's clock is behind ours): look again soon.
                spent = reset == state.window and state.seq >= state.ceiling and reset <= now
                state.probe_until = now + _RECHECK_SECONDS if spent else 0.0

    def forget(self, sequence: int) -> None:
        super().forget(sequence)
        granted = self._global.pop(sequence, None)
        if granted is None:
            return
        with self._locked() as state:
            if state.probe == granted:
                state.probe, state.probe_until = 0, 0.0

    def _try_grant(self) -> tuple[int, float]:
        """``(global sequence, 0)`` when the file grants a request now, else
        ``(0, seconds to wait before asking again)``."""
        with self._locked() as state:
            now = self.server_time()
            # A window ends at most one window's length from now (a second more for
            # the rounding of Date): one further ahead was another server's.
            if state.window > now + (state.window_seconds or _MAX_AHEAD_SECONDS) + 1:
                state.window = state.ceiling = 0
            if state.window < 0:  # a server that tells no budget
                state.seq += 1
                return state.seq, 0.0
            if state.window and now < state.window:
                if state.seq < state.ceiling:
                    state.seq += 1
                    return state.seq, 0.0
                return 0, state.window - now
            # Nothing known yet, or the window has reset: one probe for everyone.
            if state.probe_until > now:
                return 0, min(_POLL_SECONDS, state.probe_until - now)
            state.seq += 1
            state.probe = state.seq
            state.probe_until = now + (state.window_seconds or _DEFAULT_WINDOW_SECONDS)
            return state.seq, 0.0

    def _locked(self) -> _Locked:
        return _Locked(self._open())

    def _open(self) -> int:
        if self._fd is None:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd = fd
            weakref.finalize(self, os.close, fd)
        return self._fd

    def _warn_once(self) -> None:  # pragma: no cover - Windows
        if not SharedRateBudget._warned:
            SharedRateBudget._warned = True
            logger.warning(
                "shared rate budget: file locks are not available on this platform; "
                "this process keeps a rate budget of its own"
            )


class _Locked:
    """``with _Locked(fd) as state``: the file's state under an exclusive lock,
    written back on the way out (unless an exception leaves it)."""

    __slots__ = ("_fd", "_state")

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> _State:
        assert _fcntl is not None
        _fcntl.flock(self._fd, _fcntl.LOCK_EX)
        try:
            self._state = _State(os.pread(self._fd, _FORMAT.size, 0))
        except BaseException:
            _fcntl.flock(self._fd, _fcntl.LOCK_UN)
            raise
        return self._state

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        assert _fcntl is not None
        try:
            if kind is None:
                os.pwrite(self._fd, self._state.pack(), 0)
        finally:
            _fcntl.flock(self._fd, _fcntl.LOCK_UN)
