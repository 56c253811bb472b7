"""What the rate-budget tests share: a server clock the test sets, and the headers."""

from __future__ import annotations

import asyncio

__all__ = ["NOW", "Clock", "rate_headers", "settle"]

NOW = 1_700_000_000.0


class Clock:
    """The time a budget reads: ``NOW`` until the test moves ``now``."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def rate_headers(remaining: int, reset: float, limit: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset)),
    }


async def settle() -> None:
    """Let every ready task run."""
    for _ in range(5):
        await asyncio.sleep(0)
