"""examples/web_backend.py run as a web backend is run: a real uvicorn process.

The example's promise is the library's, seen through HTTP: every record of the
list once and in order, and a client that goes away mid-stream stops the
fetch. "Stops" is checked where it matters, at the API: the bundled server
counts the requests it receives, and after the disconnect has settled no
further request arrives and the list was not fetched to its end. The app runs
under ``-X dev -W error`` and its stderr must hold no warning (an unclosed
session or connector, a task destroyed while pending) and no traceback.
"""

from __future__ import annotations

import http.client
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from asyncfetch.testing import ServerConfig, ServerStats, ServerThread

from .helpers import error_body, ids, read_lines_until, users_with_tag

REPO = Path(__file__).resolve().parent.parent
TOKEN = "web-backend-secret-token-31"
PER_PAGE = 50  # IntercomClient's default, which the example keeps
# What must never show in the app's output: a leak of the fetch when the
# client went away (an unclosed aiohttp session or connector, a task destroyed
# while pending, a finalizer's error, writes to a socket already gone) ...
LEAKS = (
    "Task was destroyed",
    "Unclosed client session",
    "Unclosed connector",
    "Exception ignored",
    "socket.send() raised exception",
    "Warning",
    "WARNING",
)
# ... nor, unless a test makes the API fail on purpose, any failure at all.
FAILURES = ("Traceback", "Error", "ERROR")


@pytest.fixture(scope="module")
def api() -> Iterator[ServerThread]:
    """The bundled server, slow enough (20 ms a request) that a stream takes a while."""
    with ServerThread(ServerConfig(users=5000, latency_ms=20, token=TOKEN)) as running:
        yield running


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class App:
    """The example under uvicorn: its port, and its output once stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stdout = ""
        self.stderr = ""

    def get(self, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = SmallWindowConnection("127.0.0.1", self.port, timeout=30)
        connection.request("GET", path)
        return connection, connection.getresponse()


class SmallWindowConnection(http.client.HTTPConnection):
    """A client whose socket takes at most 64 KiB ahead of the reader (about a page),
    so what the app has sent is close to what the test has read, however loaded the
    machine (a loopback socket's buffers otherwise grow to megabytes: most of a list)."""

    def connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        self.sock = sock


@contextmanager
def web_backend(
    api: ServerThread | str, *, concurrency: int = 2, token: str = TOKEN, failing: bool = False
) -> Iterator[App]:
    """Run ``uvicorn examples.web_backend:app`` against ``api`` (or a base URL); on
    leaving, stop it with SIGINT (Ctrl-C) and check that it exits cleanly, with
    nothing to warn about (and no failure logged, unless ``failing``)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    environment.update(
        INTERCOM_BASE_URL=api if isinstance(api, str) else api.base_url,
        INTERCOM_ACCESS_TOKEN=token,
        INTERCOM_CONCURRENCY=str(concurrency),
    )
    process = subprocess.Popen(
        [
            sys.executable, "-X", "dev", "-W", "error",
            "-m", "uvicorn", "examples.web_backend:app", "--host", "127.0.0.1", "--port", str(port),
        ],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stderr is not None
    app = App(port)
    started = ""
    try:
        started = read_lines_until(process.stderr, "Uvicorn running on")
        assert "Application startup complete" in started, started
        yield app
    finally:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # fails the exit code check below
            process.kill()
            stdout, stderr = process.communicate()
        app.stdout, app.stderr = stdout, started + stderr
    assert process.returncode == 0, app.stderr
    assert "Application shutdown complete" in app.stderr, app.stderr
    for output in (app.stdout, app.stderr):
        for word in LEAKS if failing else LEAKS + FAILURES:
            assert word not in output, output
        assert token not in output


def settled(stats: ServerStats, *, quiet: float = 0.3, limit: float = 20.0) -> int:
    """Wait (at most ``limit`` seconds) until the API has no request in flight and has
    received no new one for ``quiet`` seconds; return how many it has received."""
    deadline = time.monotonic() + limit
    seen = (stats.requests, stats.in_flight)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = (stats.requests, stats.in_flight)
        if now != seen:
            seen, since = now, time.monotonic()
        elif now[1] == 0 and time.monotonic() - since >= quiet:
            return now[0]
    raise AssertionError(f"the API was still being called {limit} s after the disconnect: {seen}")


def test_the_whole_list_streams_once_in_order(api: ServerThread) -> None:
    tag_id = api.workspace.largest_tag_id
    expected = ids(users_with_tag(api.workspace, tag_id))
    with web_backend(api) as app:
        api.stats.reset()
        connection, response = app.get(f"/users?tag_id={tag_id}")
        assert response.status == 200
        assert response.getheader("content-type") == "application/x-ndjson"
        assert response.getheader("transfer-encoding") == "chunked"
        body = response.read()  # raises IncompleteRead if the stream broke off
        connection.close()
        assert ids(orjson.loads(line) for line in body.splitlines()) == expected
        assert body.endswith(b"}\n")
        assert settled(api.stats) == math.ceil(len(expected) / PER_PAGE)


def test_an_unknown_tag_is_a_404_before_any_line(api: ServerThread) -> None:
    with web_backend(api) as app:
        connection, response = app.get("/users?tag_id=no-such-tag")
        assert response.status == 404
        error = orjson.loads(response.read())["error"]
        connection.close()
        assert "Tag Not Found" in error
        assert TOKEN not in error


def test_a_refused_token_is_a_502_that_does_not_show_it(api: ServerThread) -> None:
    wrong = "web-backend-wrong-token-77"
    with web_backend(api, token=wrong) as app:
        connection, response = app.get("/users")
        assert response.status == 502
        error = orjson.loads(response.read())["error"]
        connection.close()
        assert "401" in error
        assert wrong not in error


class BreaksAfterPageOne(BaseHTTPRequestHandler):
    """A list of three pages whose pages 2 and 3 are gone (404) when asked for."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if query.get("page", ["1"]) != ["1"]:
            self.answer(404, error_body("not_found", "User Not Found"))
            return
        host, port = self.server.server_address[:2]
        pages = {"type": "pages", "page": 1, "per_page": PER_PAGE, "total_pages": 3}
        pages["next"] = f"http://{host}:{port}/users?per_page={PER_PAGE}&page=2"
        users = [{"type": "user", "id": f"u{n}"} for n in range(PER_PAGE)]
        body = {"type": "user.list", "total_count": 3 * PER_PAGE, "users": users, "pages": pages}
        self.answer(200, orjson.dumps(body))

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_failure_after_the_first_line_breaks_the_response_off() -> None:
    api = ThreadingHTTPServer(("127.0.0.1", 0), BreaksAfterPageOne)
    serving = threading.Thread(target=api.serve_forever, daemon=True)
    serving.start()
    try:
        host, port = api.server_address[:2]
        with web_backend(f"http://{host}:{port}", failing=True) as app:
            connection, response = app.get("/users")
            assert response.status == 200
            lines = [response.readline() for _ in range(PER_PAGE)]
            assert ids(orjson.loads(line) for line in lines) == [f"u{n}" for n in range(PER_PAGE)]
            # No clean end after page 1: the chunked body breaks off.
            with pytest.raises(http.client.IncompleteRead):
                response.read()
            connection.close()
    finally:
        api.shutdown()
        api.server_close()
    assert "Exception in ASGI application" in app.stderr
    assert "NotFoundError" in app.stderr


def test_a_client_that_goes_away_stops_the_fetch(api: ServerThread) -> None:
    # The API is slower than the client: the app waits for a page when the
    # client leaves.
    tag_id = api.workspace.largest_tag_id
    expected = ids(users_with_tag(api.workspace, tag_id))
    pages = math.ceil(len(expected) / PER_PAGE)
    assert pages > 50  # long enough to stop in the middle
    with web_backend(api) as app:
        api.stats.reset()
        requests = read_part_then_leave(app, f"/users?tag_id={tag_id}", expected, api.stats)
        assert requests < pages  # the fetch stopped early, not after the whole list
    # Shutting the app down (the lifespan closes the client) sends nothing either.
    assert api.stats.requests == requests
    assert api.stats.in_flight == 0


def test_a_client_that_goes_away_while_pages_wait_to_be_sent() -> None:
    # The API is faster than the client: pages already fetched wait to be sent
    # when the client leaves, and the app must notice between two of them.
    with ServerThread(ServerConfig(users=5000, token=TOKEN)) as fast:
        expected = ids(fast.workspace.users)
        pages = math.ceil(len(expected) / PER_PAGE)
        with web_backend(fast, concurrency=16) as app:
            fast.stats.reset()
            requests = read_part_then_leave(app, "/users", expected, fast.stats)
            # At most the pages sent or held (the window: 32) ahead of the
            # disconnect, never the whole list.
            assert requests < pages
        assert fast.stats.requests == requests


def read_part_then_leave(app: App, path: str, expected: list[str], stats: ServerStats) -> int:
    """Read three pages and a bit of ``path``'s stream, check them, close the connection
    with the rest unread; once the API has settled, check that it stays quiet and return
    the number of requests it received."""
    connection, response = app.get(path)
    assert response.status == 200
    read = [orjson.loads(response.readline()) for _ in range(3 * PER_PAGE + 7)]
    assert ids(read) == expected[: len(read)]  # so far, in order
    response.close()
    connection.close()
    requests = settled(stats)
    # Nothing reaches the API once the disconnect has settled.
    time.sleep(0.3)
    assert stats.requests == requests
    assert stats.in_flight == 0
    return requests


def test_the_readme_shows_the_example_as_it_is() -> None:
    """The README's excerpt of the example: its lines, in order, are the file's
    (``...`` stands for lines left out)."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## In an async web backend") :]
    excerpt = section[section.index("```python\n") : section.index("\n```\n")]
    shown = [line for line in excerpt.splitlines()[1:] if line.strip() not in ("", "...")]
    assert len(shown) > 20
    lines = iter((REPO / "examples" / "web_backend.py").read_text().splitlines())
    for line in shown:
        assert any(line == each for each in lines), f"not in the example (in this order): {line}"
