"""Small frozen option objects, and the checks every option goes through.

Options are keyword-only, frozen and checked when made, so a wrong value
fails at once with a ``ValueError`` naming what is allowed, before any
request is sent, rather than as a confusing failure mid-fetch; frozen,
because a client shares them with every request it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Retries", "check_positive", "check_whole"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Retries:
    """How a failed request is retried.

    Retried: 429, 500, 502, 503, 504, a connection that failed or dropped, a
    timeout, and a 2xx whose body is not the list page expected. Anything else
    (400, 401, 403, 404, 422…) fails at once.

    - ``attempts``: tries per request, the first included; 1 turns retries
      off. Default 5.
    - ``max_wait``: seconds one request may spend between its first try and
      its last retry, backoff and rate-limit pauses included; ``None`` for no
      bound. Default 120. A wait longer than what is left of it is never
      started: the request fails at once (a ``RateLimitError`` saying how
      long the server asked to wait, when that is what it was).
    - ``wait_initial``, ``wait_max``: the exponential backoff between tries
      (with jitter) starts at ``wait_initial`` seconds and doubles up to
      ``wait_max``. Defaults 0.5 and 10. A server's ``Retry-After`` longer
      than the backoff lengthens the wait, never shortens it (it is a
      minimum); 429s wait for the rate window instead (see ``RateBudget``).

    Retries use stamina, so ``stamina.set_testing(True)`` turns backoff off in
    your tests.
    """

    attempts: int = 5
    max_wait: float | None = 120.0
    wait_initial: float = 0.5
    wait_max: float = 10.0

    def __post_init__(self) -> None:
        check_whole("attempts", self.attempts)
        check_positive("max_wait", self.max_wait, unit="seconds")
        check_positive("wait_initial", self.wait_initial, unit="seconds", optional=False)
        check_positive("wait_max", self.wait_max, unit="seconds", optional=False)
        if self.wait_max < self.wait_initial:
            raise ValueError(
                f"wait_max ({self.wait_max!r}) must be at least "
                f"wait_initial ({self.wait_initial!r})"
            )


def check_whole(name: str, value: object) -> None:
    """``ValueError`` unless ``value`` is a whole number of at least 1 (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")


def check_positive(name: str, value: object, *, unit: str, optional: bool = True) -> None:
    """``ValueError`` unless ``value`` is a finite number above 0 (or ``None``, if optional)."""
    if value is None and optional:
        return
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        allowed = f"a positive number of {unit}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
