"""The README's shell examples, run as written against the bundled server.

Every fenced ``sh`` block of README.md is marked by the HTML comment before it:

* ``<!-- runnable: server -->``: the command that starts the bundled server;
  run here in the background, as the README says to run it in a terminal of
  its own;
* ``<!-- runnable -->``: run here, in document order, in one bash session (an
  ``export`` in one block holds in the next), each command checked;
* ``<!-- runnable: rest server -->`` and ``<!-- runnable: rest -->``: the same
  for the section on any page-numbered API, its server a REST-style one and
  its examples ``sh`` or ``python`` blocks, each run whole;
* ``<!-- runnable: sql -->`` before a ``sql`` block: a query run, after the
  shell examples, on the SQLite database they made (``intercom.db``);
* ``<!-- not run by tests/test_readme.py: REASON -->``: not run (a real token,
  minutes of benchmarks, building the virtualenv the tests run in).

A ``toml`` block marked ``<!-- runnable: file NAME -->`` is a file the examples
use (FLEET.toml): written to their folder as ``NAME`` before they run, with the
port changed as in the commands.

A ``python`` block marked ``<!-- runnable: pytest -->`` is a test file of a
user's own: written to a folder of its own and run there by pytest in a
subprocess (warnings as errors), which must find its tests and pass them all.

An unmarked shell block fails the test: a new example either runs here or says why
not. The only change made to the text is the one the README offers: another
port than 8000 (this test takes a free one).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from asyncfetch.testing import ListKey, Workspace

from .helpers import read_lines_until

README = Path(__file__).resolve().parent.parent / "README.md"
README_PORT = "8000"
BLOCK = re.compile(r"(?:<!--(?P<mark>[^>]*)-->\n)?```sh\n(?P<body>.*?)```", re.DOTALL)
# "Any page-numbered JSON API": its own server (a REST-style one), its own examples.
REST_MARKS = ("runnable: rest server", "runnable: rest")
REST_PORT = "8001"
REST_BLOCK = re.compile(
    r"<!-- (?P<mark>runnable: rest(?: server)?) -->\n```(?P<lang>sh|python)\n(?P<body>.*?)```",
    re.DOTALL,
)
SQL_BLOCK = re.compile(r"<!-- runnable: sql -->\n```sql\n(?P<body>.*?)```", re.DOTALL)
FILE_BLOCK = re.compile(
    r"<!-- runnable: file (?P<name>[\w.-]+) -->\n```toml\n(?P<body>.*?)```", re.DOTALL
)
PYTEST_BLOCK = re.compile(r"<!-- runnable: pytest -->\n```python\n(?P<body>.*?)```", re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    """``(mark, body)`` of every ``sh`` block, in order; mark is "" when missing."""
    text = README.read_text()
    return [(m["mark"].strip() if m["mark"] else "", m["body"]) for m in BLOCK.finditer(text)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_shell_block_says_whether_it_runs() -> None:
    found = blocks()
    assert found, "no ```sh blocks found: has the README's format changed?"
    for mark, body in found:
        assert mark in ("runnable", "runnable: server", *REST_MARKS) or mark.startswith(
            "not run by tests/test_readme.py: "
        ), f"unmarked shell block in README.md:\n{body}"
    marks = [mark for mark, _ in found]
    assert marks.count("runnable: server") == 1
    assert marks.count("runnable") >= 2
    # The blocks that need Intercom itself stay out, explicitly.
    for mark, body in found:
        if "INTERCOM_ACCESS_TOKEN=..." in body:
            assert mark.startswith("not run"), body


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder to run the examples in, with ``.venv`` being the virtualenv of these tests."""
    venv = Path(sys.prefix)
    assert (venv / "bin" / "asyncfetch").exists(), "run the tests from the project's .venv"
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    return tmp_path


@pytest.fixture
def served(folder: Path) -> Iterator[tuple[int, str]]:
    """The README's server command, on a free port instead of 8000; yields (port, its banner)."""
    (command,) = [body for mark, body in blocks() if mark == "runnable: server"]
    port = free_port()
    line = command.strip().replace(README_PORT, str(port))
    assert "\n" not in line
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    process = subprocess.Popen(
        shlex.split(line),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stdout is not None
    banner = read_lines_until(process.stdout, "export INTERCOM_BASE_URL")
    try:
        assert f"http://127.0.0.1:{port}" in banner.partition("\n")[0], banner
        yield port, banner
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr


def test_the_readme_examples_run_against_the_bundled_server(
    folder: Path, served: tuple[int, str]
) -> None:
    port, banner = served
    files = list(FILE_BLOCK.finditer(README.read_text()))
    assert files, "no <!-- runnable: file NAME --> block found"
    for block in files:
        (folder / block["name"]).write_text(block["body"].replace(README_PORT, str(port)))
    script = ["set -euo pipefail"]
    commands = []
    for mark, body in blocks():
        if mark != "runnable":
            continue
        for line in body.strip().splitlines():
            line = line.replace(README_PORT, str(port))
            commands.append(line)
            # Each command's output goes to a file of its own, to check below
            # (in braces, so a trailing comment ends at the newline).
            n = len(commands)
            script.append(f"{{ {line}\n}} > out-{n}.txt 2> err-{n}.txt")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}
    environment.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    failed = len(list(folder.glob("out-*.txt")))
    assert result.returncode == 0, (
        f"README command failed: {commands[failed - 1]!r}: "
        + (folder / f"err-{failed}.txt").read_text()
    )
    for n, command in enumerate(commands, 1):
        stderr = (folder / f"err-{n}.txt").read_text()
        assert "Traceback" not in stderr, command
        assert "error" not in stderr.lower(), (command, stderr)

    # Sensible output: what the README says each command gives.
    ws = Workspace.generate(users=1000)  # the server's defaults: 1,000 users, seed 0
    assert "100003 newsletter" in banner  # the ids the README uses are the ones serve shows

    def output_of(command: str) -> list[object]:
        (n,) = [n for n, c in enumerate(commands, 1) if c.split("#")[0].strip() == command]
        return [orjson.loads(line) for line in (folder / f"out-{n}.txt").read_bytes().splitlines()]

    assert output_of("asyncfetch tags") == list(ws.tags)
    assert output_of("asyncfetch segments") == list(ws.segments)

    def users(filter_name: str, value: str) -> list[str]:
        return [u["id"] for u in ws.items(ListKey("users", filter_name, value))]

    newsletter = users("tag_id", "100003")
    assert len(newsletter) == 625  # as the README says: 500 users, 125 leads
    tagged = ws.items(ListKey("users", "tag_id", "100003"))
    assert sum(u["type"] == "contact" for u in tagged) == 125
    assert jsonl_ids(folder / "newsletter.jsonl") == newsletter
    assert jsonl_ids(folder / "users.jsonl") == newsletter
    assert not (folder / "users.jsonl.checkpoint").exists()
    assert not (folder / "users.jsonl.partial.checkpoint").exists()
    exported = {tuple(jsonl_ids(path)) for path in (folder / "export").glob("*.jsonl")}
    assert exported == {tuple(newsletter), tuple(users("tag_id", "100013"))}
    rows = (folder / "s.csv").read_text().splitlines()
    assert rows[0] == "id,email,custom_attributes.plan"
    paying = users("segment_id", "5c26b900d82c07cd04000002")
    assert paying
    assert [row.split(",")[0] for row in rows[1:]] == paying
    assert all(row.split(",")[2] not in ("", "free") for row in rows[1:])
    check_sql_examples(folder / "intercom.db", ws)
    # "Many workspaces": each workspace in its own file beside fleet.db.
    acme = sqlite3.connect(folder / "fleet-acme.db")
    globex = sqlite3.connect(folder / "fleet-globex.db")
    try:
        members = "SELECT id FROM list_members WHERE list = ? ORDER BY position"
        assert [r[0] for r in acme.execute(members, ("users?tag_id=100003",))] == newsletter
        assert [r[0] for r in globex.execute(members, ("users?tag_id=100013",))] == users(
            "tag_id", "100013"
        )
    finally:
        acme.close()
        globex.close()


def check_sql_examples(path: Path, ws: Workspace) -> None:
    """The README's queries, on the database its ``--db`` commands made."""
    members, recent = [m["body"] for m in SQL_BLOCK.finditer(README.read_text())]
    db = sqlite3.connect(path)
    try:
        tagged = ws.items(ListKey("users", "tag_id", "100003"))
        assert db.execute(members).fetchall() == [
            (position, person["id"], person["email"])
            for position, person in enumerate(tagged, start=1)
        ]
        # The bundled workspace was last updated on 2024-01-01: nothing in the
        # last day of today; the day before its own "now", its users of that day.
        assert db.execute(recent).fetchall() == []
        day_before = recent.replace("datetime('now', '-1 day')", "'2023-12-31 00:00:00'")
        assert day_before != recent
        expected = [u for u in ws.users if u["updated_at"] >= 1_704_067_200 - 86_400]
        got = db.execute(day_before).fetchall()
        assert sorted((key, email) for key, email, _ in got) == sorted(
            (u["id"], u["email"]) for u in expected
        )
        assert [when for _, _, when in got] == sorted((when for _, _, when in got), reverse=True)
        assert expected
        assert db.execute("SELECT count(*) FROM companies").fetchone() == (len(ws.companies),)
    finally:
        db.close()


def jsonl_ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_the_readme_pages_examples_run_against_a_rest_server(folder: Path) -> None:
    found = [(m["mark"], m["lang"], m["body"]) for m in REST_BLOCK.finditer(README.read_text())]
    servers = [body for mark, _, body in found if mark == "runnable: rest server"]
    examples = [(lang, body) for mark, lang, body in found if mark == "runnable: rest"]
    assert len(servers) == 1
    assert [lang for lang, _ in examples] == ["python", "sh"]
    port = str(free_port())
    process = subprocess.Popen(
        shlex.split(servers[0].strip().replace(REST_PORT, port)),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        banner = read_lines_until(process.stdout, "wp/v2/posts")
        assert f"http://127.0.0.1:{port}/wp/v2/posts" in banner, banner
        results = []
        for lang, body in examples:
            command = ["bash", "-euo", "pipefail", "-c"] if lang == "sh" else [sys.executable, "-c"]
            results.append(
                subprocess.run(
                    [*command, body.replace(REST_PORT, port)],
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            )
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    # The server's 250 posts, newest first, as its docstring says it lists them.
    printed = results[0].stdout.splitlines()
    assert printed == [f"{n} Post {n}" for n in range(250, 0, -1)]
    assert [
        post["id"] for post in map(orjson.loads, (folder / "posts.jsonl").read_bytes().splitlines())
    ] == list(range(250, 0, -1))


def test_the_readmes_pytest_examples_pass(tmp_path: Path) -> None:
    examples = [m["body"] for m in PYTEST_BLOCK.finditer(README.read_text())]
    assert examples, "no <!-- runnable: pytest --> block: has the README's format changed?"
    for n, example in enumerate(examples, 1):
        folder = tmp_path / f"example-{n}"
        folder.mkdir()
        (folder / "test_example.py").write_text(example)
        tests = example.count("\ndef test_") + example.count("\nasync def test_")
        assert tests >= 1
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("INTERCOM_", "PYTEST_"))
        }
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider",
             "test_example.py"],
            cwd=folder, env=environment, capture_output=True, text=True, timeout=100, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        # The fixture came from the installed plugin: the file neither defines nor imports it.
        assert "intercom_server" in example
        assert "pytest_plugin" not in example
        assert f"{tests} passed" in result.stdout, result.stdout
