"""Small frozen option objects, checked when made."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Retries"]


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
      bound. Default 120.
    - ``wait_initial``, ``wait_max``: the exponential backoff between tries
      (with jitter) starts at ``wait_initial`` seconds and doubles up to
      ``wait_max``. Defaults 0.5 and 10. A server's ``Retry-After`` or
      ``X-RateLimit-Reset`` overrides them.

    Retries use stamina, so ``stamina.set_testing(True)`` turns backoff off in
    your tests.
    """

    attempts: int = 5
    max_wait: float | None = 120.0
    wait_initial: float = 0.5
    wait_max: float = 10.0

    def __post_init__(self) -> None:
        if (
            not isinstance(self.attempts, int)
            or isinstance(self.attempts, bool)
            or self.attempts < 1
        ):
            raise ValueError(
                f"attempts must be a whole number of at least 1, got {self.attempts!r}"
            )
        if self.max_wait is not None and not _positive(self.max_wait):
            raise ValueError(
                f"max_wait must be a positive number of seconds or None, got {self.max_wait!r}"
            )
        for name in ("wait_initial", "wait_max"):
            if not _positive(getattr(self, name)):
                raise ValueError(
                    f"{name} must be a positive number of seconds, got {getattr(self, name)!r}"
                )
        if self.wait_max < self.wait_initial:
            raise ValueError(
                f"wait_max ({self.wait_max!r}) must be at least "
                f"wait_initial ({self.wait_initial!r})"
            )


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
