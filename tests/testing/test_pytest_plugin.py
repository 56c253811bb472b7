"""The ``intercom_server`` fixture of the pytest plugin (issue 10), used as a user would.

The plugin is registered by the ``pytest11`` entry point of the installed
package, so these tests ask for the fixture without importing it.
"""

from __future__ import annotations

import pytest

from asyncfetch import AuthenticationError, IntercomClient
from asyncfetch.testing import FaultConfig, ServerThread
from asyncfetch.testing.pytest_plugin import TOKEN

from ..helpers import ids

pytestmark = pytest.mark.anyio


async def test_a_started_server_with_a_known_workspace(intercom_server: ServerThread) -> None:
    assert intercom_server.base_url.startswith("http://127.0.0.1:")
    assert intercom_server.token == TOKEN
    assert len(intercom_server.workspace.users) == 1000
    async with IntercomClient(
        token=intercom_server.token, base_url=intercom_server.base_url
    ) as client:
        got = [user async for user in client.users()]
    assert ids(got) == ids(intercom_server.workspace.users)
    assert intercom_server.stats.statuses[200] == 20  # 1,000 users, 50 a page


async def test_only_its_token_is_accepted(intercom_server: ServerThread) -> None:
    async with IntercomClient(token="another-token", base_url=intercom_server.base_url) as client:
        with pytest.raises(AuthenticationError):
            [user async for user in client.users()]


@pytest.mark.intercom_server(users=120, faults="error_rate=0.3,seed=4", rate_limit=1000)
async def test_a_marker_sets_users_faults_and_rate_limit(intercom_server: ServerThread) -> None:
    assert intercom_server.config.faults == FaultConfig(error_rate=0.3, seed=4)
    assert intercom_server.config.rate_limit == 1000
    async with IntercomClient(
        token=intercom_server.token, base_url=intercom_server.base_url
    ) as client:
        got = [user async for user in client.users()]
    assert len(got) == 120
    assert ids(got) == ids(intercom_server.workspace.users)
    assert intercom_server.stats.faults["error"] > 0  # and every record came once anyway


@pytest.mark.intercom_server(users=40, seed=1)
class TestTheClosestMarkerWins:
    def test_the_class_marker_applies(self, intercom_server: ServerThread) -> None:
        assert len(intercom_server.workspace.users) == 40
        assert intercom_server.config.seed == 1

    @pytest.mark.intercom_server(users=10)
    def test_a_method_marker_overrides_a_field(self, intercom_server: ServerThread) -> None:
        assert len(intercom_server.workspace.users) == 10
        assert intercom_server.config.seed == 1


@pytest.mark.parametrize("intercom_server", [{"users": 3}, {"users": 7}], indirect=True)
def test_an_indirect_parameter_sets_the_server(intercom_server: ServerThread) -> None:
    assert len(intercom_server.workspace.users) in {3, 7}
