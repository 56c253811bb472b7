"""Shared fixtures: the asyncio backend (aiohttp and aiolimiter need it) and the bundled server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import stamina
from aiohttp import web

from .helpers import Handler, RawServer


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    """Start an app whose every path is answered by ``handler``; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(autouse=True)
def no_retry_backoff() -> Iterator[None]:
    """stamina's testing switch: retries happen, their backoff sleeps do not.

    (Pauses for a server's rate-limit window are real: tests that meet them use
    short windows.)
    """
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


# --- bundled server fixtures ---
# Owned by the bundled-server work (asyncfetch/testing/_server.py); keep edits inside this block.

from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

from asyncfetch.testing import IntercomServer, ServerConfig  # noqa: E402


@pytest.fixture
async def server() -> AsyncIterator[IntercomServer]:
    """A started bundled server with 1,000 users on 127.0.0.1 (a free port)."""
    async with IntercomServer(ServerConfig(users=1000)) as started:
        yield started


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Awaitable[IntercomServer]]]:
    """``await make_server(**ServerConfig fields)``: started servers, stopped at teardown."""
    started: list[IntercomServer] = []

    async def make(**fields: Any) -> IntercomServer:
        new = IntercomServer(ServerConfig(**fields))
        await new.start()
        started.append(new)
        return new

    try:
        yield make
    finally:
        for each in reversed(started):
            await each.stop()


# --- PostgreSQL server fixtures (issue 11): tests/postgres_server.py ---
from .postgres_server import (  # noqa: E402, F401
    postgres_database_url,
    postgres_url,
    pytest_assertrepr_compare,
)
