"""A local Intercom-compatible server for testing code that calls the API.

The same server the test suite, the benchmarks, ``asyncfetch serve`` and
``asyncfetch demo`` run against: page-numbered lists with Intercom's envelopes,
``error.list`` bodies, rate-limit headers, the 10,000-record cap and the Scroll
API past it, over real loopback sockets, plus seeded faults (`FaultConfig`)
and lists that grow during a fetch. It models what the real API does, with its
sources named in ``_server.py``, not what any one client expects.

Use it from async code (``async with IntercomServer(ServerConfig(users=500))``),
from synchronous code (``with ServerThread(...)``), or in pytest through the
``intercom_server`` fixture of the plugin this package registers
(``asyncfetch.testing.pytest_plugin``).

Beside it, two small servers shaped like page-numbered APIs that are not
Intercom, for the generic source (``PagesClient``): a WordPress-REST-style one
(``X-WP-Total``, ``X-WP-TotalPages``) and a GitHub-style one (``Link``
headers); ``python -m asyncfetch.testing wordpress|github`` serves one.

Nothing here imports the client side of asyncfetch (``_core``, ``_http``,
``_intercom``, ``_cli``): a test double that shared code with what it checks
could share its mistakes too.
"""

from __future__ import annotations

from ._faults import Fault, FaultConfig
from ._rest_servers import GitHubServer, RestServer, RestServerThread, RestStats, WordPressServer
from ._server import (
    CAP_MESSAGE,
    CONTACTS_CAP_MESSAGE,
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    IntercomServer,
    ServerConfig,
    ServerStats,
    ServerThread,
    run_server,
    startup_text,
)
from ._workspace import ListKey, Workspace

__all__ = [
    "CAP_MESSAGE",
    "CONTACTS_CAP_MESSAGE",
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "Fault",
    "FaultConfig",
    "GitHubServer",
    "IntercomServer",
    "ListKey",
    "RestServer",
    "RestServerThread",
    "RestStats",
    "ServerConfig",
    "ServerStats",
    "ServerThread",
    "WordPressServer",
    "Workspace",
    "run_server",
    "startup_text",
]
