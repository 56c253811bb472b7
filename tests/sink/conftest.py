"""The ``sink_url`` fixture: a fresh, empty database per test, once per backend.

Every sink test runs against each backend in ``BACKENDS``: a backend is added
by naming it there and saying, in ``sink_url``, where its fresh database is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# One line per backend the sink tests run on.
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def sink_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty database of one backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'sync.db'}"  # sqlite:///tmp/...: absolute
    if request.param == "postgresql":
        # A new database on the test run's server (tests/postgres_server.py), dropped after.
        url: str = request.getfixturevalue("postgres_database_url")
        return url
    raise AssertionError(f"no database for backend {request.param!r}")
