"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from typing import Any


class TaskWatch:
    """Remembers the tasks alive when made; ``started()`` lists the ones begun since that are still alive."""

    def __init__(self) -> None:
        self._before = asyncio.all_tasks()

    def started(self) -> set[asyncio.Task[Any]]:
        return asyncio.all_tasks() - self._before - {asyncio.current_task()}  # type: ignore[operator]
