"""The ``intercom_server`` pytest fixture: the bundled server, started for one test.

Registered with pytest's ``pytest11`` entry point, so installing asyncfetch
is enough: any test can ask for ``intercom_server`` and gets a started
`ServerThread` on 127.0.0.1 (a free port) with a known workspace (the
`ServerConfig` defaults: 1,000 users from seed 0), its ``base_url``, the
``token`` it accepts (every other token gets a 401), its ``workspace`` to
compare against and its ``stats`` (what it was asked and answered). The server
runs on its own event loop in a thread, so the fixture serves synchronous
tests and async ones alike, whatever runs their loop (anyio, pytest-asyncio).

A test (or its class or module) sets the server up with a marker whose
keywords are `ServerConfig` fields, the closest marker winning a field::

    @pytest.mark.intercom_server(users=120, faults="error_rate=0.2,seed=3", rate_limit=50)
    def test_my_sync(intercom_server): ...

``faults`` takes a `FaultConfig` or its ``"key=value,..."`` text (as in
``asyncfetch serve --faults``). The same fields can come from an indirect
parameter instead, ``@pytest.mark.parametrize("intercom_server", [{...}],
indirect=True)``, to run one test against several servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import pytest

from ._faults import FaultConfig
from ._server import ServerConfig, ServerThread

__all__ = ["TOKEN", "intercom_server"]

TOKEN: Final = "test-token"
"""The token the fixture's server accepts (unless a marker sets ``token``)."""

_MARKER: Final = "intercom_server"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**fields): asyncfetch.testing.ServerConfig fields for the "
        "intercom_server fixture ('faults' may be a FaultConfig or its 'key=value,...' text)",
    )


@pytest.fixture
def intercom_server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """A started bundled Intercom server for this test (see the module's docstring)."""
    fields: dict[str, Any] = {"token": TOKEN}
    # iter_markers gives the closest first (function, class, module): applied last.
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        if marker.args:
            pytest.fail(f"@pytest.mark.{_MARKER} takes keywords only", pytrace=False)
        fields.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, dict):
            pytest.fail(f"an indirect {_MARKER} parameter must be a dict", pytrace=False)
        fields.update(param)
    try:
        if isinstance(fields.get("faults"), str):
            fields["faults"] = FaultConfig.parse(fields["faults"])
        config = ServerConfig(**fields)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"{_MARKER}: {exc}", pytrace=False)
    with ServerThread(config) as server:
        yield server
