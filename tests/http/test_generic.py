"""``PagesClient`` and ``asyncfetch pages`` against APIs that are not Intercom.

Over loopback against the WordPress-style and GitHub-style servers of
``asyncfetch.testing`` (which share no code with the client), and,
for what those APIs never do (a body-path page count, a server that lies),
against small handlers of the ``raw_server`` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from asyncfetch import (
    APIError,
    IncompleteListError,
    PageNumbered,
    PagesClient,
    ResponseFormatError,
    Retries,
    UnsafeURLError,
)
from asyncfetch.testing import GitHubServer, RestServerThread, WordPressServer

from ..helpers import RawServer

TOKEN = "generic-secret-token-4711"
WP = PageNumbered(
    total_pages_header="X-WP-TotalPages", total_count_header="X-WP-Total", per_page=10
)
GH = PageNumbered(link_last=True, per_page=10)


async def fetch_all(client: PagesClient, path: str, paging: PageNumbered) -> list[Any]:
    async with client.list(path, paging=paging) as listing:
        return [item async for item in listing]


# --- every item once, in order ---


@pytest.mark.anyio
@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 95, 250])
async def test_wordpress_every_post_once_in_order(size: int) -> None:
    async with WordPressServer(items=size, token=TOKEN) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with PagesClient(base_url=server.base_url, headers=headers, concurrency=4) as client:
            listing = client.list(server.path, paging=WP)
            got = [item async for item in listing]
    assert [post["id"] for post in got] == list(range(size, 0, -1))
    assert got == server.items
    pages = max(-(-size // 10), 1)
    assert sorted(server.stats.pages) == list(range(1, pages + 1))  # each page once
    assert set(server.stats.statuses) == {200}
    assert listing.changes.count_check == "passed"


@pytest.mark.anyio
@pytest.mark.parametrize("size", [0, 1, 10, 11, 95, 250])
async def test_github_every_issue_once_in_order(size: int) -> None:
    async with GitHubServer(items=size, token=TOKEN) as server:
        headers = {"Authorization": f"token {TOKEN}"}
        async with PagesClient(base_url=server.base_url, headers=headers, concurrency=4) as client:
            got = await fetch_all(client, server.path, GH)
    assert [issue["number"] for issue in got] == list(range(size, 0, -1))
    pages = max(-(-size // 10), 1)
    assert sorted(server.stats.pages) == list(range(1, pages + 1))


@pytest.mark.anyio
async def test_github_default_page_size_and_its_cap() -> None:
    async with (
        GitHubServer(items=250) as server,
        PagesClient(base_url=server.base_url) as client,
    ):
        default = await fetch_all(client, server.path, PageNumbered(link_last=True))
        capped = await fetch_all(client, server.path, PageNumbered(link_last=True, per_page=500))
    assert default == capped == server.items
    assert sorted(server.stats.pages) == sorted([*range(1, 10), *range(1, 4)])


@pytest.mark.anyio
@pytest.mark.parametrize("size", [0, 7, 30, 31])
async def test_page_count_and_items_at_paths_in_the_body(raw_server: RawServer, size: int) -> None:
    records = [{"id": n} for n in range(size)]

    async def handler(request: web.Request) -> web.Response:
        page, per = int(request.query["pg"]), int(request.query["limit"])
        body = {
            "data": {"items": records[(page - 1) * per : page * per]},
            "meta": {"total_pages": -(-size // per), "total": size},
        }
        return web.json_response(body)

    base = await raw_server(handler)
    paging = PageNumbered(
        items="data.items",
        total_pages="meta.total_pages",
        total_count="meta.total",
        page_param="pg",
        per_page_param="limit",
        per_page=3,
    )
    async with PagesClient(base_url=base) as client:
        assert await fetch_all(client, "api/records", paging) == records


@pytest.mark.anyio
async def test_peak_in_flight_is_the_concurrency_cap() -> None:
    async with (
        WordPressServer(items=300, latency_ms=20) as server,
        PagesClient(base_url=server.base_url, concurrency=4) as client,
    ):
        got = await fetch_all(client, server.path, WP)
    assert got == server.items
    assert server.stats.max_in_flight == 4


@pytest.mark.anyio
async def test_query_params_are_sent_with_every_page() -> None:
    async with (
        GitHubServer(items=35) as server,
        PagesClient(base_url=server.base_url) as client,
    ):
        listing = client.list(server.path, paging=GH, params={"state": "open"})
        got = [item async for item in listing]
    assert got == server.items


# --- the checks: a count short, a page number ignored, a link elsewhere ---


@pytest.mark.anyio
async def test_a_list_that_ends_short_of_its_count_raises(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        items = [{"id": page * 100 + n} for n in range(10)]
        return web.json_response(items, headers={"X-WP-Total": "25", "X-WP-TotalPages": "2"})

    base = await raw_server(handler)
    async with PagesClient(base_url=base) as client:
        listing = client.list(paging=WP)
        got = []
        with pytest.raises(IncompleteListError, match="ended after 20 records") as caught:
            async for item in listing:
                got.append(item)
    assert len(got) == 20
    assert (caught.value.expected, caught.value.delivered) == (25, 20)


@pytest.mark.anyio
async def test_without_a_count_the_check_says_it_was_not_made() -> None:
    async with (
        WordPressServer(items=25) as server,
        PagesClient(base_url=server.base_url) as client,
    ):
        paging = PageNumbered(total_pages_header="X-WP-TotalPages", per_page=10)
        listing = client.list(server.path, paging=paging)
        assert len([item async for item in listing]) == 25
    assert listing.changes.count_check == "not made: no total count was configured"


@pytest.mark.anyio
async def test_an_ignored_page_parameter_fails_instead_of_repeating_page_1() -> None:
    async with (
        WordPressServer(items=30) as server,
        PagesClient(base_url=server.base_url) as client,
    ):
        paging = PageNumbered(total_pages_header="X-WP-TotalPages", page_param="p", per_page=10)
        with pytest.raises(ResponseFormatError, match="holds the same records as page 1"):
            await fetch_all(client, server.path, paging)
    async with GitHubServer(items=30) as server, PagesClient(base_url=server.base_url) as client:
        gh = PageNumbered(link_last=True, page_param="p", per_page=10)
        with pytest.raises(ResponseFormatError, match="next link is page 1, not 2"):
            await fetch_all(client, server.path, gh)


@pytest.mark.anyio
async def test_a_misplaced_items_path_fails_at_once_without_retries() -> None:
    async with (
        WordPressServer(items=30) as server,
        PagesClient(base_url=server.base_url) as client,
    ):
        paging = PageNumbered(items="data", total_pages_header="X-WP-TotalPages")
        with pytest.raises(ResponseFormatError, match="expected a list of JSON objects at"):
            await fetch_all(client, server.path, paging)
        paging = PageNumbered(total_pages_header="X-Total-Pages")
        with pytest.raises(ResponseFormatError, match="X-Total-Pages header"):
            await fetch_all(client, server.path, paging)
    assert server.stats.requests == 2


@pytest.mark.anyio
async def test_a_next_link_to_another_host_is_refused(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        link = '<http://198.51.100.7/issues?page=2>; rel="next"'
        return web.json_response([{"id": 1}], headers={"Link": link})

    base = await raw_server(handler)
    async with PagesClient(base_url=base, headers={"Authorization": f"token {TOKEN}"}) as client:
        with pytest.raises(UnsafeURLError, match="refusing to send the headers"):
            await fetch_all(client, "issues", GH)


@pytest.mark.anyio
async def test_the_wordpress_error_body_is_read(raw_server: RawServer) -> None:
    async with (
        WordPressServer(items=30, token=TOKEN) as server,
        PagesClient(
            base_url=server.base_url, headers={"Authorization": "Bearer wrong-token-value"}
        ) as client,
    ):
        with pytest.raises(APIError) as caught:
            await fetch_all(client, server.path, WP)
    assert (caught.value.status, caught.value.code) == (401, "rest_not_logged_in")
    assert caught.value.message == "You are not currently logged in."
    assert "wrong-token-value" not in str(caught.value)


# --- the headers are secrets ---


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"token {TOKEN}"}, {"X-Api-Key": TOKEN}, {"PRIVATE-TOKEN": TOKEN}],
)
async def test_the_auth_header_is_never_in_errors_or_reprs(
    raw_server: RawServer, headers: dict[str, str]
) -> None:
    async def echo(request: web.Request) -> web.Response:
        # A server that echoes what it was sent, in its body and its error.
        sent = dict(request.headers)
        return web.json_response({"code": str(sent), "message": f"bad: {sent}"}, status=500)

    base = await raw_server(echo)
    client = PagesClient(base_url=base, headers=headers, retries=Retries(attempts=2))
    assert TOKEN not in repr(client)
    async with client:
        with pytest.raises(APIError) as caught:
            await fetch_all(client, "x", WP)
    error = caught.value
    assert error.status == 500
    assert error.attempts == 2
    for shown in (str(error), repr(error), error.message, str(error.code), str(error.url)):
        assert TOKEN not in shown
    assert "[token]" in error.message


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of total_pages"):
        PageNumbered()
    with pytest.raises(ValueError, match="got 2: total_pages, link_last"):
        PageNumbered(total_pages="meta.pages", link_last=True)
    with pytest.raises(ValueError, match="not both"):
        PageNumbered(link_last=True, total_count="total", total_count_header="X-Total")
    with pytest.raises(ValueError, match="dotted path"):
        PageNumbered(link_last=True, items="data..items")
    with pytest.raises(ValueError, match="HTTP header name"):
        PageNumbered(total_pages_header="X Pages")
    with pytest.raises(ValueError, match="per_page must be a whole number"):
        PageNumbered(link_last=True, per_page=0)
    with pytest.raises(ValueError, match="must be printable") as caught:
        PagesClient(base_url="https://example.org", headers={"Authorization": f"{TOKEN}\n"})
    assert TOKEN not in str(caught.value)
    with pytest.raises(ValueError, match="unencrypted"):
        PagesClient(base_url="http://example.org")
    client = PagesClient(base_url="https://example.org")
    with pytest.raises(ValueError, match="must not set 'page'"):
        client.list(paging=WP, params={"page": "2"})
    with pytest.raises(ValueError, match="plain path segments"):
        client.list("a/../b", paging=WP)


# --- the command line ---


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncfetch", "pages", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def wordpress() -> Iterator[WordPressServer]:
    with RestServerThread(WordPressServer(items=95, token=TOKEN, latency_ms=5)) as server:
        assert isinstance(server, WordPressServer)
        yield server


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubServer]:
    with RestServerThread(GitHubServer(items=95, token=TOKEN)) as server:
        assert isinstance(server, GitHubServer)
        yield server


WP_FLAGS = ("--items", "", "--total-pages-header", "X-WP-TotalPages",
            "--total-count-header", "X-WP-Total", "--per-page", "10")  # fmt: skip


def test_cli_wordpress_to_a_file(wordpress: WordPressServer, tmp_path: Path) -> None:
    out = tmp_path / "posts.jsonl"
    result = run_cli(wordpress.url, *WP_FLAGS, "--header", f"Authorization: Bearer {TOKEN}",
                     "--concurrency", "3", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == wordpress.items
    assert result.stdout == ""
    assert "95 items, 10 pages" in result.stderr
    assert TOKEN not in result.stderr


def test_cli_github_to_stdout_as_json(github: GitHubServer) -> None:
    header = f"Authorization: token {TOKEN}"
    result = run_cli(github.url, "--items", "", "--link-last", "--per-page", "20",
                     "--header", header, "--format", "json", "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == github.items
    assert result.stderr == ""


def test_cli_resumes_after_a_failure_mid_run(wordpress: WordPressServer, tmp_path: Path) -> None:
    out = tmp_path / "posts.jsonl"
    header = f"Authorization: Bearer {TOKEN}"
    wordpress.fail_page = 5
    try:
        failed = run_cli(wordpress.url, *WP_FLAGS, "--header", header, "--retries", "1",
                         "--concurrency", "2", "--out", str(out))  # fmt: skip
    finally:
        wordpress.fail_page = None
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith("asyncfetch: error: HTTP 500: Server Error (page 5,")
    assert line.endswith(f"--header 'Authorization: ***' --retries 1 --concurrency 2 "
                         f"--out {out} --resume")  # fmt: skip
    assert TOKEN not in failed.stderr
    assert not out.exists()
    partial = tmp_path / "posts.jsonl.partial"
    written = [orjson.loads(line) for line in partial.read_bytes().splitlines()]
    assert written == wordpress.items[:40]  # pages 1-4, whole

    before = len(wordpress.stats.pages)
    resumed = run_cli(wordpress.url, *WP_FLAGS, "--header", header, "--retries", "1",
                      "--concurrency", "2", "--out", str(out), "--resume")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == wordpress.items
    assert sorted(wordpress.stats.pages[before:]) == list(range(5, 11))
    assert not partial.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--items", "", "--total-pages-header", "X-WP-TotalPages", "--link-last"),
         "exactly one of --total-pages PATH, --total-pages-header NAME or --link-last "
         "(got --total-pages-header and --link-last)"),
        (("--items", ""), "exactly one of --total-pages PATH"),
        (("--items", "", "--link-last", "--header", TOKEN),
         "--header #1 must be 'Name: value'"),
        (("--items", "", "--link-last", "--header", f"Authorization {TOKEN}: x"),
         "--header #1: the part before the colon is not a header name"),
        (("--items", "", "--link-last", "--per-page-param", "page"),
         "--page-param and --per-page-param are both 'page'"),
        (("--items", "a..b", "--link-last"), "items must be a dotted path"),
    ],
)  # fmt: skip
def test_cli_usage_errors_exit_2_in_one_line_before_any_request(
    wordpress: WordPressServer, args: tuple[str, ...], message: str
) -> None:
    before = wordpress.stats.requests
    result = run_cli(wordpress.url, *args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("asyncfetch: error: "), line
    assert message in line, line
    assert TOKEN not in result.stderr
    assert wordpress.stats.requests == before


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/x", "URL must be an http:// or https:// URL with a host"),
        ("http://127.0.0.1:1/x?page=2", "the URL sets 'page'"),
        ("http://example.org/x", "unencrypted"),
    ],
)
def test_cli_url_errors_exit_2(url: str, message: str) -> None:
    result = run_cli(url, "--items", "", "--link-last")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert message in line, line


@pytest.mark.anyio
async def test_githubs_rate_budget_is_kept_and_its_403_waited_out() -> None:
    # 12 pages, 10 requests per 1-second window: the first request finds the
    # window spent by another client of the token, then the budget runs out.
    async with (
        GitHubServer(items=120, rate_limit=10, rate_window=1) as server,
        PagesClient(base_url=server.base_url, concurrency=4) as client,
    ):
        server.spent_by_others = 1
        got = await fetch_all(client, server.path, GH)
        stats = client.stats
    assert got == server.items
    assert sorted(set(server.stats.pages)) == list(range(1, 13))
    assert stats.rate_limit_pauses >= 2
    # The 403 it met was waited out and sent again, never raised.
    assert server.stats.rate_limited >= 1
    assert server.stats.statuses[403] == server.stats.rate_limited
    assert server.stats.requests == 12 + server.stats.rate_limited


def test_cli_a_refused_header_exits_1_in_one_line_and_is_never_shown(
    wordpress: WordPressServer,
) -> None:
    wrong = f"{TOKEN}-but-wrong"
    result = run_cli(wordpress.url, *WP_FLAGS, "--header", f"Authorization: Bearer {wrong}", "-vv")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        "asyncfetch: error: HTTP 401 rest_not_logged_in: You are not currently logged in. "
        f"(page 1, {wordpress.url}?per_page=10&page=1)"
    ]
    assert "GET " in result.stderr  # -vv logged the request, without the header
    assert TOKEN not in result.stderr
    assert f"Bearer {wrong}" in wordpress.stats.authorizations  # it was sent, though


@pytest.mark.anyio
async def test_a_link_header_with_next_but_no_last_is_followed_page_by_page(
    raw_server: RawServer,
) -> None:
    records = [{"id": n} for n in range(25)]

    async def handler(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        headers = {}
        if page < 3:
            headers["Link"] = f'</items?page={page + 1}&per_page=10>; rel="next"'
        return web.json_response(records[(page - 1) * 10 : page * 10], headers=headers)

    base = await raw_server(handler)
    async with PagesClient(base_url=base) as client:
        listing = client.list("items", paging=GH)
        assert [item async for item in listing] == records


# --- the servers answer as the APIs they model ---


@pytest.mark.anyio
async def test_the_wordpress_server_answers_as_the_handbook_says() -> None:
    async with WordPressServer(items=25) as server, aiohttp.ClientSession() as session:
        async with session.get(server.url, params={"per_page": "10", "page": "3"}) as last:
            assert last.status == 200
            assert (last.headers["X-WP-Total"], last.headers["X-WP-TotalPages"]) == ("25", "3")
            assert [post["id"] for post in await last.json()] == [5, 4, 3, 2, 1]
        async with session.get(server.url, params={"page": "4", "per_page": "10"}) as past:
            assert past.status == 400
            assert (await past.json())["code"] == "rest_post_invalid_page_number"
        async with session.get(server.url, params={"per_page": "101"}) as too_many:
            assert too_many.status == 400
            assert (await too_many.json())["code"] == "rest_invalid_param"
        async with session.get(server.url) as default:
            assert len(await default.json()) == 10  # WordPress's default page size


@pytest.mark.anyio
async def test_the_github_server_answers_as_the_docs_say() -> None:
    async with GitHubServer(items=95) as server, aiohttp.ClientSession() as session:
        async with session.get(server.url, params={"per_page": "10", "page": "5"}) as middle:
            links = middle.headers["Link"].split(", ")
        rels = [link.rpartition("; ")[2] for link in links]
        assert rels == ['rel="prev"', 'rel="next"', 'rel="last"', 'rel="first"']
        assert links[2].startswith(f"<{server.url}?per_page=10&page=10>")
        async with session.get(server.url, params={"per_page": "10", "page": "10"}) as last:
            assert [r.rpartition("; ")[2] for r in last.headers["Link"].split(", ")] == [
                'rel="prev"',
                'rel="first"',
            ]
            assert len(await last.json()) == 5
        async with session.get(server.url, params={"per_page": "100"}) as one_page:
            assert "Link" not in one_page.headers  # no Link when one page holds the list
            assert len(await one_page.json()) == 95
        async with session.get(server.url, params={"page": "11", "per_page": "10"}) as past:
            assert past.status == 200
            assert await past.json() == []


@pytest.mark.anyio
@pytest.mark.parametrize("start", [11, 12])
async def test_a_resume_past_the_last_page_ends_the_list(start: int) -> None:
    # Stopped after writing the last page, before the file was put in place:
    # the resume asks for a page WordPress refuses (400), and the list is done.
    async with (
        WordPressServer(items=100) as server,
        PagesClient(base_url=server.base_url) as client,
    ):
        listing = client.list(server.path, paging=WP)
        pages = [page async for page in listing.pages(start=start)]
    assert [(page.number, page.items, page.total_pages) for page in pages] == [(start, [], 10)]
    assert server.stats.pages == [start, 1]
    assert server.stats.statuses == {400: 1, 200: 1}


@pytest.mark.anyio
async def test_a_refused_page_within_the_list_still_fails(raw_server: RawServer) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.query["page"] == "3":
            return web.json_response({"code": "nope", "message": "no"}, status=400)
        return web.json_response([{"id": request.query["page"]}], headers={"X-WP-TotalPages": "5"})

    base = await raw_server(handler)
    async with PagesClient(base_url=base) as client:
        paging = PageNumbered(total_pages_header="X-WP-TotalPages")
        with pytest.raises(APIError, match="HTTP 400 nope: no"):
            await fetch_all(client, "x", paging)
        with pytest.raises(APIError, match="HTTP 400 nope: no"):
            async with client.list("x", paging=paging) as listing:
                async for _ in listing.pages(start=3):
                    pass
