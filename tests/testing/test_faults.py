"""Seeded fault injection and list growth in the bundled server, over real sockets.

Clients are tested for retries, rate limiting and exactly-once output against
these faults, so this pins what each fault looks like on the wire, that the
faults are reproducible from the seed, and that every URL is eventually
answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from asyncfetch.testing._faults import ERROR_CODES, FAULT_KINDS, FaultConfig, FaultInjector
from asyncfetch.testing._server import IntercomServer, ServerConfig
from asyncfetch.testing._workspace import ListKey

pytestmark = pytest.mark.anyio

MakeServer = Callable[..., Awaitable[IntercomServer]]
BEARER = {"Authorization": "Bearer tok"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@dataclass(frozen=True)
class Answer:
    """What a client saw for one request: a response, or the connection dropped (status 0)."""

    status: int
    content_type: str = ""
    body: bytes = b""
    headers: Mapping[str, str] | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@asynccontextmanager
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that sends each request exactly once.

    aiohttp retries an idempotent request once, silently, when the connection
    fails; its own test client turns that off the same way, and so do we, so
    that server counts match client requests.
    """
    async with aiohttp.ClientSession(headers=BEARER) as client:
        client._retry_connection = False
        yield client


async def fetch(server: IntercomServer, path: str) -> Answer:
    """GET ``path`` once; a reset or disconnect gives ``Answer(0)``."""
    async with session() as client:
        try:
            async with client.get(server.base_url + path) as resp:
                body = await resp.read()
        except aiohttp.ClientConnectionError:
            return Answer(0)
        return Answer(resp.status, resp.headers.get("Content-Type", ""), body, resp.headers)


class FakeClock:
    """A settable stand-in for time.time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a plain counter: no event to wait on) for up to 5 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


# -- each fault on the wire -----------------------------------------------------


async def test_error_fault_is_5xx_error_list_with_rate_headers(make_server: MakeServer) -> None:
    server = await make_server(users=100, faults=FaultConfig(error_rate=1.0))
    statuses = set()
    for page in range(1, 21):
        answer = await fetch(server, f"/users?per_page=5&page={page}")
        assert answer.status in ERROR_CODES
        assert answer.content_type.startswith("application/json")
        body = answer.json()
        assert body["type"] == "error.list"
        assert body["errors"][0]["code"] == ERROR_CODES[answer.status][0]
        assert body["errors"][0]["code"] in ("server_error", "service_unavailable")
        assert answer.headers is not None
        assert all(name in answer.headers for name in RATE_HEADERS)
        statuses.add(answer.status)
    assert len(statuses) > 1  # the draw picks among 500/502/503/504
    assert server.stats.faults == {"error": 20}


async def test_html_error_fault_is_a_proxy_page(make_server: MakeServer) -> None:
    server = await make_server(users=100, faults=FaultConfig(html_error_rate=1.0))
    statuses = set()
    for page in range(1, 21):
        answer = await fetch(server, f"/contacts?per_page=1&page={page}")
        assert answer.status in (502, 503)
        assert answer.content_type.startswith("text/html")
        assert answer.body.startswith(b"<html>")
        reason = b"Bad Gateway" if answer.status == 502 else b"Service Temporarily Unavailable"
        assert reason in answer.body
        # Made by the proxy, not the API: no rate-limit headers.
        assert answer.headers is not None
        assert "X-RateLimit-Limit" not in answer.headers
        statuses.add(answer.status)
    assert statuses == {502, 503}
    assert server.stats.faults == {"html_error": 20}


async def test_bad_body_fault_is_200_with_html_or_truncated_json(make_server: MakeServer) -> None:
    # One fault in a row per URL: the second request shows the page the first cut.
    server = await make_server(
        users=100, faults=FaultConfig(bad_body_rate=1.0, max_consecutive_faults=1)
    )
    variants = set()
    for page in range(1, 11):
        path = f"/users?per_page=10&page={page}"
        bad, good = await fetch(server, path), await fetch(server, path)
        assert bad.status == good.status == 200
        assert good.json()["users"]
        with pytest.raises(json.JSONDecodeError):
            bad.json()
        if bad.content_type.startswith("text/html"):
            assert b"<html>" in bad.body
            variants.add("html")
        else:
            assert bad.content_type.startswith("application/json")
            assert bad.body == good.body[: len(good.body) // 2]
            variants.add("truncated")
    assert variants == {"html", "truncated"}
    assert server.stats.faults == {"bad_body": 10}
    assert server.stats.statuses == {200: 20}


def _first_requests_drawing(config: FaultConfig, kind: str | None, paths: list[str]) -> list[str]:
    """The paths whose first request gets ``kind`` from a fresh injector with ``config``."""
    return [path for path in paths if FaultInjector(config).decide(path).kind == kind]


async def test_throttle_fault_starts_a_burst_of_429s(make_server: MakeServer) -> None:
    config = FaultConfig(seed=5, throttle_rate=0.3, throttle_burst=3, retry_after_share=1.0)
    paths = [f"/users?per_page=5&page={page}" for page in range(1, 41)]
    # Which first requests draw a throttle of their own, and which draw nothing.
    starter = _first_requests_drawing(config, "throttle", paths)[0]
    calm = _first_requests_drawing(config, None, paths)[:4]
    assert len(calm) == 4

    clock = FakeClock(1_700_000_004.2)
    server = await make_server(users=100, faults=config, clock=clock)
    answers = [await fetch(server, path) for path in (starter, *calm)]
    # The starter and the next 3 list requests, whatever their own draw.
    assert [a.status for a in answers] == [429, 429, 429, 429, 200]
    for answer in answers[:4]:
        body = answer.json()
        assert body["errors"][0]["code"] == "rate_limit_exceeded"
        assert answer.headers is not None
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        assert answer.headers["X-RateLimit-Limit"] == "1666"
        assert answer.headers["X-RateLimit-Reset"] == "1700000010"
    assert server.stats.faults == {"throttle": 4}


async def test_throttle_retry_after_share(make_server: MakeServer) -> None:
    server = await make_server(
        users=100,
        faults=FaultConfig(throttle_rate=1.0, throttle_burst=0, retry_after_seconds=7),
    )
    values = []
    for page in range(1, 41):
        answer = await fetch(server, f"/users?per_page=2&page={page}")
        assert answer.status == 429
        assert answer.headers is not None
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        values.append(answer.headers.get("Retry-After"))
    # The default share is one half: some carry Retry-After, the rest only X-RateLimit-Reset.
    assert set(values) == {"7", None}

    never = await make_server(users=10, faults=FaultConfig(throttle_rate=1.0, retry_after_share=0))
    answer = await fetch(never, "/users")
    assert answer.status == 429
    assert answer.headers is not None
    assert "Retry-After" not in answer.headers


async def test_reset_fault_drops_the_connection(make_server: MakeServer) -> None:
    server = await make_server(users=10, faults=FaultConfig(reset_rate=1.0))
    assert await fetch(server, "/users") == Answer(0)
    await _until(lambda: server.stats.in_flight == 0)
    assert server.stats.requests == 1
    assert server.stats.statuses == {}  # never answered
    assert server.stats.faults == {"reset": 1}


async def test_hang_fault_never_answers(make_server: MakeServer) -> None:
    server = await make_server(users=10, faults=FaultConfig(hang_rate=1.0))  # hangs 30 s
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await fetch(server, "/users")
    # The client gave up and disconnected: the handler is cancelled, not left sleeping.
    await _until(lambda: server.stats.in_flight == 0)
    assert server.stats.faults == {"hang": 1}
    assert server.stats.statuses == {}

    short = await make_server(users=10, faults=FaultConfig(hang_rate=1.0, hang_seconds=0.05))
    assert await fetch(short, "/users") == Answer(0)  # closed, still unanswered


async def test_slow_fault_answers_late(make_server: MakeServer) -> None:
    server = await make_server(users=10, faults=FaultConfig(slow_rate=1.0, slow_ms=150))
    started = time.monotonic()
    answer = await fetch(server, "/users")
    assert time.monotonic() - started >= 0.15
    assert answer.status == 200
    assert answer.json()["total_count"] == 10
    assert server.stats.faults == {"slow": 1}


def test_jitter_delays_every_request_within_its_bound() -> None:
    injector = FaultInjector(FaultConfig(jitter_ms=40, error_rate=0.5))
    decisions = [injector.decide(f"/users?page={page}") for page in range(1, 101)]
    delays = [d.delay_s for d in decisions]
    assert all(0 <= delay <= 0.04 for delay in delays)
    assert len(set(delays)) == len(delays)  # drawn, not fixed
    assert {d.kind for d in decisions} == {"error", None}  # faulty or not, all delayed


async def test_faults_only_hit_authenticated_list_requests(make_server: MakeServer) -> None:
    server = await make_server(users=100, faults=FaultConfig(error_rate=1.0))
    for path in ("/tags", "/segments", "/admins"):
        assert (await fetch(server, path)).status == 200
    assert (await fetch(server, "/no/such/path")).status == 404
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(server.base_url + "/users") as resp,
    ):
        assert resp.status == 401
    assert server.stats.faults == {}
    ws = server.workspace
    for path in (
        "/users",
        f"/users?tag_id={ws.largest_tag_id}",
        f"/companies/{ws.largest_company_id}/users",
        "/companies?company_id=company-0&type=user",
        "/companies",
        "/contacts",
    ):
        assert (await fetch(server, path)).status >= 500
    assert server.stats.faults == {"error": 6}


async def test_inactive_fault_config_changes_nothing(make_server: MakeServer) -> None:
    server = await make_server(users=100, faults=FaultConfig(seed=9, max_consecutive_faults=0))
    plain = await make_server(users=100)
    for path in ("/users?page=2", "/contacts"):
        assert (await fetch(server, path)).body == (await fetch(plain, path)).body
    assert server.stats.faults == {}


# -- determinism and liveness ---------------------------------------------------

MIXED = FaultConfig(
    seed=11,
    error_rate=0.2,
    html_error_rate=0.1,
    bad_body_rate=0.1,
    throttle_rate=0.1,
    throttle_burst=0,  # bursts depend on arrival order; the rest must not
    reset_rate=0.1,
    max_consecutive_faults=1,
)


async def _outcomes(server: IntercomServer, paths: list[str]) -> dict[tuple[str, int], Any]:
    """Request each path in ``paths`` order; map (path, n-th time) -> what came back."""
    seen: dict[str, int] = {}
    got: dict[tuple[str, int], Any] = {}
    for path in paths:
        answer = await fetch(server, path)
        got[path, seen.get(path, 0)] = (answer.status, answer.content_type, len(answer.body))
        seen[path] = seen.get(path, 0) + 1
    return got


async def test_same_seed_same_faults_in_any_order(make_server: MakeServer) -> None:
    paths = [f"/users?per_page=5&page={page}" for page in range(1, 16)] * 3
    shuffled = paths.copy()
    random.Random(1).shuffle(shuffled)
    assert shuffled != paths

    first = await make_server(users=100, faults=MIXED)
    second = await make_server(users=100, faults=MIXED)
    in_order = await _outcomes(first, paths)
    out_of_order = await _outcomes(second, shuffled)
    assert in_order == out_of_order
    assert first.stats.faults == second.stats.faults
    assert len(first.stats.faults) >= 4  # a real mix, not all clean

    # Concurrent requests too: the order they reach the server does not matter.
    third = await make_server(users=100, faults=MIXED)
    rounds = [paths[:15], paths[15:30], paths[30:]]
    concurrent: dict[tuple[str, int], Any] = {}
    for n, batch in enumerate(rounds):
        answers = await asyncio.gather(*(fetch(third, path) for path in batch))
        for path, answer in zip(batch, answers, strict=True):
            concurrent[path, n] = (answer.status, answer.content_type, len(answer.body))
    assert concurrent == in_order

    other = await make_server(users=100, faults=dataclasses.replace(MIXED, seed=12))
    assert await _outcomes(other, paths) != in_order


@pytest.mark.parametrize("limit", [0, 1, 3])
async def test_no_url_gets_more_than_max_consecutive_faults(
    make_server: MakeServer, limit: int
) -> None:
    server = await make_server(
        users=10, faults=FaultConfig(error_rate=1.0, max_consecutive_faults=limit)
    )
    statuses = [(await fetch(server, "/users")).status for _ in range(2 * (limit + 1))]
    # Every URL is answered after `limit` faults; then its streak starts again.
    assert [s == 200 for s in statuses] == ([False] * limit + [True]) * 2
    # Another URL has a streak of its own.
    assert ((await fetch(server, "/users?page=1")).status == 200) == (limit == 0)


async def test_burst_429s_respect_max_consecutive_faults(make_server: MakeServer) -> None:
    server = await make_server(
        users=10,
        faults=FaultConfig(throttle_rate=1.0, throttle_burst=100, max_consecutive_faults=2),
    )
    statuses = [(await fetch(server, "/users")).status for _ in range(3)]
    assert statuses == [429, 429, 200]


async def test_a_client_with_enough_attempts_always_finishes(make_server: MakeServer) -> None:
    config = FaultConfig(
        seed=3,
        error_rate=0.3,
        html_error_rate=0.1,
        bad_body_rate=0.1,
        throttle_rate=0.1,
        reset_rate=0.1,
        hang_rate=0.1,
        hang_seconds=0.01,
    )
    server = await make_server(users=200, faults=config)
    want = [u["id"] for u in server.workspace.items(ListKey("users"))]
    got: list[str] = []
    for page in range(1, 5):
        for _attempt in range(config.max_consecutive_faults + 1):
            answer = await fetch(server, f"/users?per_page=50&page={page}")
            if answer.status == 200 and answer.content_type.startswith("application/json"):
                try:
                    got.extend(u["id"] for u in answer.json()["users"])
                    break
                except ValueError:
                    continue
        else:
            raise AssertionError(f"page {page} never answered")
    assert got == want
    assert sum(server.stats.faults.values()) > 0


# -- rate-limit windows ---------------------------------------------------------


async def test_one_second_rate_windows(make_server: MakeServer) -> None:
    clock = FakeClock(1_700_000_000.5)
    server = await make_server(users=10, rate_limit=2, rate_window_seconds=1, clock=clock)
    answers = [await fetch(server, "/users") for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers if a.headers] == ["1", "0", "0"]
    assert {a.headers["X-RateLimit-Reset"] for a in answers if a.headers} == {"1700000001"}
    assert {a.headers["X-RateLimit-Limit"] for a in answers if a.headers} == {"2"}
    assert answers[2].json()["errors"][0] == {
        "code": "rate_limit_exceeded",
        "message": "Exceeded rate limit of 2 in 1_seconds",
    }

    clock.now = 1_700_000_001.0  # the next 1-second window
    answer = await fetch(server, "/users")
    assert answer.status == 200
    assert answer.headers is not None
    assert answer.headers["X-RateLimit-Remaining"] == "1"
    assert answer.headers["X-RateLimit-Reset"] == "1700000002"


async def test_windows_align_to_multiples_of_their_length(make_server: MakeServer) -> None:
    clock = FakeClock(1_700_000_007.9)
    server = await make_server(users=10, rate_window_seconds=3, clock=clock)
    answer = await fetch(server, "/users")
    assert answer.headers is not None
    assert answer.headers["X-RateLimit-Reset"] == "1700000010"  # 1_700_000_007 is 3 * k + 1


# -- growing lists --------------------------------------------------------------


async def _page(server: IntercomServer, path: str) -> dict[str, Any]:
    answer = await fetch(server, path)
    assert answer.status == 200, answer
    body: dict[str, Any] = answer.json()
    return body


async def test_inserted_users_shift_later_pages(make_server: MakeServer) -> None:
    server = await make_server(users=100, insert_users_every=2)
    ws = server.workspace
    old = [u["id"] for u in ws.items(ListKey("users"))]
    first = await _page(server, "/users?per_page=10&page=1")
    second = await _page(server, "/users?per_page=10&page=2")  # the 2nd: a user signs up now
    assert [u["id"] for u in first["users"]] == old[:10]
    assert [u["id"] for u in second["users"]] == old[10:20]
    assert second["total_count"] == 100
    assert second["pages"]["total_pages"] == 10

    again = await _page(server, "/users?per_page=10&page=2")
    assert again["total_count"] == 101
    assert again["pages"]["total_pages"] == 11  # 101 users no longer fit in 10 pages
    # Everything moved one place on: page 2 now starts with page 1's last user.
    assert [u["id"] for u in again["users"]] == old[9:19]

    # Page 1 was cached before the sign-up; the cache must not serve it stale.
    front = await _page(server, "/users?per_page=10&page=1")  # the 4th: another sign-up
    new = front["users"][0]
    assert [u["id"] for u in front["users"][1:]] == old[:9]
    assert new["id"] not in old
    assert new == ws.users[100]  # users stays in creation order: newcomers at its end
    assert set(new) == set(ws.users[0])  # shaped like the others
    assert [t["id"] for t in new["tags"]["tags"]] == [ws.largest_tag_id]
    assert new["created_at"] > max(u["created_at"] for u in ws.users[:100])
    assert new["id"] > max(old)  # ids still sort by creation time

    assert len(ws.users) == 102
    newest = ws.users[101]
    tagged = await _page(server, f"/users?tag_id={ws.largest_tag_id}&per_page=60")
    # 50 even-index users, 13 even-index leads and both newcomers.
    assert tagged["total_count"] == 65
    assert tagged["users"][:2] == [newest, new]  # newest first
    assert len({u["id"] for u in ws.users}) == 102


async def test_other_lists_do_not_grow_or_count(make_server: MakeServer) -> None:
    server = await make_server(users=100, insert_users_every=1)
    for path in ("/contacts", "/companies", "/tags", "/users?page=x"):
        await fetch(server, path)
    assert len(server.workspace.users) == 100
    company = await _page(server, f"/companies/{server.workspace.largest_company_id}/users")
    assert len(server.workspace.users) == 101  # company user lists are user lists
    again = await _page(server, f"/companies/{server.workspace.largest_company_id}/users")
    assert again["total_count"] == company["total_count"]  # the newcomer joined no company


async def test_inserted_users_are_deterministic(make_server: MakeServer) -> None:
    one = await make_server(users=50, seed=4, insert_users_every=1)
    two = await make_server(users=50, seed=4, insert_users_every=1)
    for server in (one, two):
        for page in (1, 2, 3):
            await fetch(server, f"/users?page={page}")
    assert one.workspace.users == two.workspace.users
    assert len(one.workspace.users) == 53


# -- configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seed": 1.5}, "seed must be an int"),
        ({"seed": True}, "seed must be an int"),
        ({"throttle_burst": True}, "throttle_burst must be an int >= 0"),
        ({"error_rate": -0.1}, "error_rate must be a probability from 0 to 1"),
        ({"html_error_rate": 1.5}, "html_error_rate must be a probability"),
        ({"bad_body_rate": float("nan")}, "bad_body_rate must be a probability"),
        ({"throttle_rate": True}, "throttle_rate must be a probability"),
        ({"reset_rate": "0.1"}, "reset_rate must be a probability"),
        ({"hang_rate": 2}, "hang_rate must be a probability"),
        ({"slow_rate": -1}, "slow_rate must be a probability"),
        ({"retry_after_share": 1.1}, "retry_after_share must be a probability"),
        ({"error_rate": 0.6, "reset_rate": 0.5}, "must add up to 1 at most"),
        ({"hang_seconds": -1}, "hang_seconds must be a finite number >= 0"),
        ({"jitter_ms": float("inf")}, "jitter_ms must be a finite number >= 0"),
        ({"slow_ms": -0.5}, "slow_ms must be a finite number >= 0"),
        ({"throttle_burst": -1}, "throttle_burst must be an int >= 0"),
        ({"retry_after_seconds": 1.5}, "retry_after_seconds must be an int >= 0"),
        ({"max_consecutive_faults": -1}, "max_consecutive_faults must be an int >= 0"),
    ],
)
def test_fault_config_rejects_bad_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultConfig(**fields)


def test_fault_rates_may_add_up_to_one() -> None:
    config = FaultConfig(error_rate=0.1, html_error_rate=0.2, slow_rate=0.7)
    assert config.active
    kinds = {FaultInjector(config).decide(f"/users?page={p}").kind for p in range(1, 200)}
    assert kinds == {"error", "html_error", "slow"}  # never a normal answer


def test_active() -> None:
    assert not FaultConfig().active
    assert not FaultConfig(seed=3, slow_ms=10, hang_seconds=1, throttle_burst=9).active
    assert FaultConfig(jitter_ms=1).active
    for kind in FAULT_KINDS:
        rate: dict[str, Any] = {f"{kind}_rate": 0.01}
        assert FaultConfig(**rate).active


def test_parse() -> None:
    assert FaultConfig.parse("") == FaultConfig()
    assert FaultConfig.parse("  ") == FaultConfig()
    assert FaultConfig.parse("error_rate=0.05,throttle_rate=0.01,seed=3") == FaultConfig(
        error_rate=0.05, throttle_rate=0.01, seed=3
    )
    assert FaultConfig.parse(" hang_rate = 1 , hang_seconds=0.5, jitter_ms=20,") == FaultConfig(
        hang_rate=1.0, hang_seconds=0.5, jitter_ms=20.0
    )
    parsed = FaultConfig.parse("max_consecutive_faults=5,throttle_burst=0,retry_after_seconds=2")
    assert (parsed.max_consecutive_faults, parsed.throttle_burst, parsed.retry_after_seconds) == (
        5,
        0,
        2,
    )
    assert isinstance(parsed.max_consecutive_faults, int)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("error=0.1", "unknown fault setting 'error'.*known: seed, error_rate"),
        ("error_rate", "'error_rate' needs a value"),
        ("error_rate=", "'error_rate' needs a value"),
        ("error_rate=abc", "error_rate must be a number, got 'abc'"),
        ("seed=1.5", "seed must be an int, got '1.5'"),
        ("max_consecutive_faults=x", "max_consecutive_faults must be an int"),
        ("error_rate=2", "error_rate must be a probability from 0 to 1"),
        ("error_rate=nan", "error_rate must be a probability"),
        ("seed=1,seed=2", "'seed' is given twice"),
        ("error_rate=0.7,reset_rate=0.7", "must add up to 1 at most"),
    ],
)
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultConfig.parse(spec)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"faults": "error_rate=1"}, "faults must be None or a FaultConfig"),
        ({"rate_window_seconds": 0}, "rate_window_seconds must be an int >= 1"),
        ({"rate_window_seconds": 2.5}, "rate_window_seconds must be an int >= 1"),
        ({"insert_users_every": 0}, "insert_users_every must be None"),
        ({"insert_users_every": True}, "insert_users_every must be None"),
    ],
)
def test_server_config_rejects_bad_new_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**fields)
