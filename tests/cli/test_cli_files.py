"""The CLI never exits 0 with a wrong file, and fails in one line (issue 9; issue 14 item 12).

Each test runs the installed console script against a server over loopback:
the bundled one, or a raw handler for lists that fail or change on demand.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web

from asyncfetch import IntercomClient
from asyncfetch._cli._run import _file_stems
from asyncfetch.testing import ListKey, ServerConfig, ServerThread

from ..helpers import RawServer, error_body, ids, users_with_tag

TOKEN = "files-token-4242"
SCRIPT = str(Path(sys.executable).with_name("asyncfetch"))
README = Path(__file__).parents[2] / "README.md"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(ServerConfig(users=1000, token=TOKEN)) as running:
        yield running


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INTERCOM_")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, env=environment(), timeout=60, check=False
    )


def fetch(server: ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--base-url", server.base_url, "--token", TOKEN)


async def fetch_raw(base: str, *args: str) -> tuple[int, str]:
    result = await anyio.run_process(
        [SCRIPT, *args, "--base-url", base, "--token", TOKEN], check=False, env=environment()
    )
    return result.returncode, result.stderr.decode()


def one_line(stderr: str) -> str:
    """The only line of ``stderr``, which holds no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def partial_of(out: Path) -> Path:
    return Path(str(out) + ".partial")


def checkpoint_of(out: Path) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(Path(str(partial_of(out)) + ".checkpoint").read_bytes())
    return data


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def tagged_page(
    request: web.Request, *, total_pages: int = 3, per_page: int = 2, name: str = "all"
) -> web.Response:
    """Page ``page`` of a list whose record ids name the request's tag (or ``name``)."""
    tag = request.query.get("tag_id", name)
    number = int(request.query.get("page", "1"))
    items = [
        {"type": "user", "id": f"{tag}#{(number - 1) * per_page + i}"} for i in range(per_page)
    ]
    nxt = str(request.url.update_query(page=str(number + 1))) if number < total_pages else None
    body = {
        "type": "user.list",
        "total_count": total_pages * per_page,
        "users": items,
        "pages": {"type": "pages", "page": number, "per_page": per_page, "next": nxt,
                  "total_pages": total_pages},
    }  # fmt: skip
    return web.Response(body=orjson.dumps(body), content_type="application/json")


# --- 9.1: per-list file names never collide; a list given twice is refused ---


@pytest.mark.anyio
async def test_out_dir_gives_lists_whose_slugs_collide_their_own_files(
    raw_server: RawServer, tmp_path: Path
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return tagged_page(request)

    base = await raw_server(handler)
    folder = tmp_path / "out"
    tags = ["acme/eu", "acme eu", "acme_eu", "ACME_EU"]
    args = [arg for tag in tags for arg in ("--tag-id", tag)]
    code, stderr = await fetch_raw(base, "users", *args, "--out-dir", str(folder), "--quiet")
    assert code == 0, stderr
    files = sorted(folder.iterdir())
    assert len(files) == 4
    # Each file holds exactly its own list; "acme_eu" needed no hash.
    got = sorted(tuple(ids(read_jsonl(f))) for f in files)
    assert got == sorted(tuple(f"{tag}#{i}" for i in range(6)) for tag in tags)
    names = {f.name for f in files}
    assert "users-tag-acme_eu.jsonl" not in names  # it differs from ACME_EU only by case
    assert all(name.startswith(("users-tag-acme_eu-", "users-tag-ACME_EU-")) for name in names)


def test_file_names_are_stable_and_the_readme_example_is_true() -> None:
    # A resume finds its partial file by name: names never depend on the run.
    assert _file_stems(["company-users-company-id-acme/eu", "users-tag-1"]) == [
        "company-users-company-id-acme_eu-7f155c7c",
        "users-tag-1",
    ]
    assert "company-users-company-id-acme_eu-7f155c7c.jsonl" in README.read_text()


@pytest.mark.parametrize("where", ["--out-dir", "--out"])
def test_a_list_given_twice_is_a_usage_error(
    server: ServerThread, tmp_path: Path, where: str
) -> None:
    tag = server.workspace.largest_tag_id
    server.stats.reset()
    out = str(tmp_path if where == "--out-dir" else tmp_path / "merged.jsonl")
    result = fetch(server, "users", "--tag-id", tag, "--tag-id", f" {tag}", where, out)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"asyncfetch: error: users tag {tag} is asked for twice; give each list once"
    )
    assert server.stats.requests == 0
    assert list(tmp_path.iterdir()) == []


# --- 9.2: two paths of one run that are one file ---


@pytest.mark.parametrize("how", ["same", "dot-slash", "symlink", "stats-on-checkpoint"])
def test_two_paths_that_are_one_file_are_a_usage_error(
    server: ServerThread, tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "x.jsonl"
    out.write_bytes(b'{"id": "earlier export"}\n')
    stats = {
        "same": str(out),
        "dot-slash": "./x.jsonl",
        "symlink": str(tmp_path / "link.json"),
        "stats-on-checkpoint": "x.jsonl.partial.checkpoint",
    }[how]
    if how == "symlink":
        (tmp_path / "link.json").symlink_to(out)
    server.stats.reset()
    result = subprocess.run(
        [SCRIPT, "users", "--out", "x.jsonl", "--stats", stats, "--base-url", server.base_url,
         "--token", TOKEN],
        capture_output=True, text=True, env=environment(), timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("asyncfetch: error: ")
    assert line.endswith("are the same file")
    assert server.stats.requests == 0
    assert out.read_bytes() == b'{"id": "earlier export"}\n'


# --- 9.3: an id that a URL would read as a path step ---


@pytest.mark.parametrize("bad", [".", "..", " .. "])
def test_a_path_step_as_company_id_is_refused_before_any_request(
    server: ServerThread, bad: str
) -> None:
    server.stats.reset()
    result = fetch(server, "company-users", "--id", bad)
    assert result.returncode == 2
    assert one_line(result.stderr).endswith("(a URL would read it as a path step)")
    assert result.stdout == ""
    assert server.stats.requests == 0


@pytest.mark.parametrize("bad", [".", ".."])
def test_the_library_refuses_a_path_step_id_too(bad: str) -> None:
    client = IntercomClient(token=TOKEN, base_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="a URL would read it as a path step"):
        client.company_users(id=bad)


# --- 9.4: CSV fields trimmed, unknown ones named ---


def test_csv_fields_are_trimmed_and_unknown_ones_warned_about(
    server: ServerThread, tmp_path: Path
) -> None:
    out, stats = tmp_path / "u.csv", tmp_path / "stats.json"
    tag = server.workspace.largest_tag_id
    result = fetch(
        server, "users", "--tag-id", tag, "--format", "csv", "--fields", "id, email ,emial",
        "--out", str(out), "--stats", str(stats), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert one_line(result.stderr) == (
        "asyncfetch: warning: --fields 'emial': no record of the first page has it "
        "(did you mean 'email'?)"
    )
    expected = users_with_tag(server.workspace, tag)
    lines = out.read_text().splitlines()
    assert lines[0] == "id,email,emial"
    assert lines[1:] == [f"{u['id']},{u.get('email') or ''}," for u in expected]
    report = orjson.loads(stats.read_bytes())
    assert report["fields_never_found"] == ["emial"]
    assert report["lists"][0]["fields_never_found"] == ["emial"]


# --- 9.5: repeated filters of companies ---


def test_each_list_warns_about_its_own_missing_fields(server: ServerThread, tmp_path: Path) -> None:
    ws = server.workspace
    tags = [str(t["id"]) for t in ws.tags[:2]]
    result = fetch(
        server, "users", "--tag-id", tags[0], "--tag-id", tags[1], "--format", "csv",
        "--fields", "id,nmae", "--out-dir", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == sorted(
        f"asyncfetch: warning: users tag {tag}: --fields 'nmae': no record of the first page "
        "has it (did you mean 'name'?)"
        for tag in tags
    )


def test_companies_takes_each_repeated_tag(server: ServerThread, tmp_path: Path) -> None:
    ws = server.workspace
    tags = [str(t["id"]) for t in ws.tags[:2]]
    lists = [ws.items(ListKey("companies", "tag_id", tag)) for tag in tags]
    assert all(lists)
    assert lists[0] != lists[1]
    folder = tmp_path / "out"
    result = fetch(
        server, "companies", "--tag-id", tags[0], "--tag-id", tags[1], "--out-dir", str(folder)
    )
    assert result.returncode == 0, result.stderr
    for tag, expected in zip(tags, lists, strict=True):
        assert ids(read_jsonl(folder / f"companies-tag-{tag}.jsonl")) == ids(expected)
    merged = tmp_path / "merged.jsonl"
    result = fetch(
        server, "companies", "--tag-id", tags[0], "--tag-id", tags[1], "--out", str(merged)
    )
    assert result.returncode == 0, result.stderr
    first = ids(lists[0])
    assert ids(read_jsonl(merged)) == first + [i for i in ids(lists[1]) if i not in first]


# --- 9.6: a temporary file, renamed on success; one writer at a time ---


@pytest.mark.anyio
async def test_a_failed_run_keeps_the_earlier_export_and_resumes_from_its_partial_file(
    raw_server: RawServer, tmp_path: Path
) -> None:
    failing = True

    async def handler(request: web.Request) -> web.Response:
        if failing and request.query["page"] == "3":
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return tagged_page(request, total_pages=5)

    base = await raw_server(handler)
    out = tmp_path / "users.jsonl"
    earlier = b"".join(orjson.dumps({"id": f"old{i}"}) + b"\n" for i in range(90))
    out.write_bytes(earlier)
    code, stderr = await fetch_raw(base, "users", "--retries", "1", "--out", str(out))
    assert code == 1
    assert out.read_bytes() == earlier  # the good export is not replaced by a partial one
    assert ids(read_jsonl(partial_of(out))) == [f"all#{i}" for i in range(4)]
    assert checkpoint_of(out)["pages"] == 2

    failing = False
    code, stderr = await fetch_raw(base, "users", "--retries", "1", "--out", str(out), "--resume")
    assert code == 0, stderr
    assert ids(read_jsonl(out)) == [f"all#{i}" for i in range(10)]
    assert names_in(tmp_path) == ["users.jsonl"]


def test_a_second_run_writing_the_same_file_stops_with_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "users.jsonl"
    with ServerThread(ServerConfig(users=600, latency_ms=30)) as slow:
        args = [SCRIPT, "users", "--base-url", slow.base_url, "--token", TOKEN, "--per-page",
                "10", "--concurrency", "1", "--out", str(out)]  # fmt: skip
        first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=environment())
        deadline = time.monotonic() + 30
        while not partial_of(out).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        second = subprocess.run(
            args, capture_output=True, text=True, env=environment(), timeout=60, check=False
        )
        _, first_stderr = first.communicate(timeout=60)
        expected = ids(slow.workspace.users)
    assert second.returncode == 2
    assert one_line(second.stderr) == (
        f"asyncfetch: error: another asyncfetch run is writing {out} "
        f"(it holds {out}.lock); wait for it to end"
    )
    assert first.returncode == 0, first_stderr
    assert ids(read_jsonl(out)) == expected  # whole, once, in order: no interleaving
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.jsonl"]


def test_a_named_pipe_is_written_in_place_and_stays_a_pipe(
    server: ServerThread, tmp_path: Path
) -> None:
    # Not a regular file (a pipe, /dev/null): written directly. A partial file
    # renamed over it would replace it, and over /dev/null, for every program.
    fifo = tmp_path / "users.pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read_all() -> None:
        with open(fifo, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    result = fetch(server, "users", "--out", str(fifo))
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert ids([orjson.loads(line) for line in received[0].splitlines()]) == ids(
        server.workspace.users
    )
    assert names_in(tmp_path) == ["users.pipe"]  # no partial, lock or checkpoint beside it
    resumed = fetch(server, "users", "--out", str(fifo), "--resume")
    assert resumed.returncode == 2
    assert "--resume needs a regular file" in one_line(resumed.stderr)


# --- 9.7: the list changed a lot between a stop and the resume ---


@pytest.mark.anyio
@pytest.mark.parametrize("restart", [False, True], ids=["warn", "restart-on-change"])
async def test_a_resume_after_the_list_changed_warns_or_starts_over(
    raw_server: RawServer, tmp_path: Path, restart: bool
) -> None:
    state = {"pages": 6, "fail_at": "4", "name": "old"}

    async def handler(request: web.Request) -> web.Response:
        if request.query["page"] == state["fail_at"]:
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return tagged_page(request, total_pages=int(state["pages"]), name=state["name"])

    base = await raw_server(handler)
    out = tmp_path / "users.jsonl"
    code, _ = await fetch_raw(base, "users", "--retries", "1", "--out", str(out))
    assert code == 1
    checkpoint = checkpoint_of(out)
    assert (checkpoint["pages"], checkpoint["total_count"]) == (3, 12)

    state.update(pages="4", fail_at="none", name="new")  # it shrank from 12 records to 8
    extra = ["--restart-on-change"] if restart else []
    code, stderr = await fetch_raw(
        base, "users", "--retries", "1", "--out", str(out), "--resume", "--quiet", *extra
    )
    assert code == 0, stderr
    if restart:
        assert one_line(stderr) == (
            "asyncfetch: warning: users: the list changed since the interrupted run "
            "(total_count 12 -> 8); starting over (--restart-on-change)"
        )
        assert ids(read_jsonl(out)) == [f"new#{i}" for i in range(8)]
    else:
        assert one_line(stderr) == (
            "asyncfetch: warning: users: the list changed since the interrupted run "
            "(total_count 12 -> 8); the 3 pages already written may be stale "
            "(--restart-on-change starts over)"
        )
        # Pages 1-3 as they were, then page 4 of the list as it is now.
        assert ids(read_jsonl(out)) == [f"old#{i}" for i in range(6)] + ["new#6", "new#7"]


@pytest.mark.anyio
async def test_restart_on_change_starts_over_a_list_that_grew_past_the_cap(
    raw_server: RawServer, tmp_path: Path
) -> None:
    # The checkpoint was written while the list held 12 records; it now holds
    # 10,050, past the cap, and can only go on by the scroll. That is a change:
    # --restart-on-change starts over (by the scroll), where a plain --resume
    # refuses.
    state = {"pages": 6, "fail_at": "4", "name": "old"}
    grown = 10_050

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/users/scroll":
            batch = int(request.query.get("scroll_param", "0"))
            users = [
                {"type": "user", "id": f"new#{i}"}
                for i in range(batch * 5000, min((batch + 1) * 5000, grown))
            ]
            body = {"type": "user.list", "users": users, "scroll_param": str(batch + 1)}
            return web.Response(body=orjson.dumps(body), content_type="application/json")
        if request.query["page"] == state["fail_at"]:
            return web.Response(status=503, body=error_body("service_unavailable", "down"))
        return tagged_page(request, total_pages=int(state["pages"]), name=state["name"])

    base = await raw_server(handler)
    out = tmp_path / "users.jsonl"
    code, _ = await fetch_raw(base, "users", "--retries", "1", "--out", str(out))
    assert code == 1
    assert checkpoint_of(out)["pages"] == 3

    state.update(pages=str(grown // 2), fail_at="none", name="new")
    args = ("users", "--retries", "1", "--out", str(out), "--resume", "--quiet")
    code, stderr = await fetch_raw(base, *args)
    assert code == 1  # a plain resume refuses, in one line
    assert "cannot resume after page 3" in one_line(stderr)
    code, stderr = await fetch_raw(base, *args, "--restart-on-change")
    assert code == 0, stderr
    assert one_line(stderr) == (
        "asyncfetch: warning: users: the list is now past the 10,000-record cap "
        "(total_count 12 -> 10050); starting over (--restart-on-change)"
    )
    assert ids(read_jsonl(out)) == [f"new#{i}" for i in range(grown)]
    assert names_in(tmp_path) == ["users.jsonl"]


# --- Tracebacks instead of one line ---


def test_an_out_dir_that_cannot_be_made_is_one_line(server: ServerThread, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    server.stats.reset()
    result = fetch(server, "users", "--out-dir", str(tmp_path / "file" / "out"))
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"asyncfetch: error: --out-dir: cannot make the folder '{tmp_path}/file/out': "
    )
    assert server.stats.requests == 0


@pytest.mark.parametrize("where", ["missing-folder", "file-as-folder"])
def test_stats_into_a_place_that_cannot_hold_it_fails_before_any_request(
    server: ServerThread, tmp_path: Path, where: str
) -> None:
    (tmp_path / "file").write_bytes(b"")
    folder = tmp_path / ("missing" if where == "missing-folder" else "file")
    server.stats.reset()
    result = fetch(server, "users", "--out", str(tmp_path / "u.jsonl"),
                   "--stats", str(folder / "stats.json"))  # fmt: skip
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"asyncfetch: error: --stats: cannot write '{folder}/stats.json': "
        f"'{folder}' is not a writable folder"
    )
    assert server.stats.requests == 0
    assert not (tmp_path / "u.jsonl").exists()


def test_an_out_that_is_a_pipe_or_a_device_is_written_in_place_not_replaced(
    server: ServerThread, tmp_path: Path
) -> None:
    # The export is written beside the target and renamed over it: over a
    # named pipe that replaced the pipe with a regular file (its reader got
    # nothing, the run exited 0), and run as root over /dev/null or /dev/full
    # it replaced the device node. A pipe or a device is written where it is.
    fifo = tmp_path / "users.jsonl"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = fetch(server, "users", "--out", str(fifo), "--quiet")
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert ids(orjson.loads(line) for line in read[0].splitlines()) == ids(server.workspace.users)
    assert fifo.is_fifo()
    assert names_in(tmp_path) == ["users.jsonl"]  # no partial file, checkpoint or lock
    # A device: the writes reach it (a full one fails in one line, exit 1).
    full = fetch(server, "users", "--out", "/dev/full", "--quiet")
    assert full.returncode == 1
    assert "No space left on device" in one_line(full.stderr)
    assert Path("/dev/full").is_char_device()
    assert not Path("/dev/full.partial").exists()
    # /dev/fd/1, /dev/stdout: the kernel's names of an open file, here a regular one.
    target = tmp_path / "through-fd.jsonl"
    with target.open("wb") as stdout:
        through = subprocess.run(
            [SCRIPT, "users", "--out", "/dev/fd/1", "--quiet", "--base-url", server.base_url,
             "--token", TOKEN],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env=environment(), timeout=60,
            check=False,
        )  # fmt: skip
    assert through.returncode == 0, through.stderr
    assert ids(read_jsonl(target)) == ids(server.workspace.users)


def test_serve_on_a_busy_port_or_a_foreign_address_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("serve", "--port", str(port), "--users", "10")
    assert busy.returncode == 2
    assert one_line(busy.stderr).startswith(f"asyncfetch: error: cannot listen on 127.0.0.1:{port}")
    foreign = run_cli("serve", "--host", "192.0.2.1", "--port", "0", "--users", "10")
    assert foreign.returncode == 2
    assert one_line(foreign.stderr).startswith("asyncfetch: error: cannot listen on 192.0.2.1:0")


def test_a_reader_that_goes_away_is_a_normal_end(server: ServerThread) -> None:
    process = subprocess.Popen(
        [SCRIPT, "users", "--base-url", server.base_url, "--token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()  # what `| head -1` reads
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    process.wait(timeout=60)
    assert orjson.loads(first)["id"] == server.workspace.users[0]["id"]
    assert process.returncode == 0, stderr
    assert stderr == ""


# --- Resume wording: the command to resume; a complete file is left alone ---


def test_ctrl_c_names_the_command_that_resumes_and_that_command_works(tmp_path: Path) -> None:
    out = tmp_path / "users.jsonl"
    with ServerThread(ServerConfig(users=400, latency_ms=30)) as slow:
        env = {**environment(), "INTERCOM_ACCESS_TOKEN": TOKEN}
        args = [SCRIPT, "users", "--base-url", slow.base_url, "--per-page", "10",
                "--concurrency", "1", "--out", str(out)]  # fmt: skip
        process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 30
        while not partial_of(out).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 130
        command = (
            f"asyncfetch users --base-url {slow.base_url} --per-page 10 --concurrency 1 "
            f"--out {out} --resume"
        )
        assert one_line(stderr) == f"asyncfetch: interrupted; to resume: {command}"
        again = subprocess.run(
            [SCRIPT, *command.split()[1:]], capture_output=True, text=True, env=env,
            timeout=60, check=False,
        )  # fmt: skip
        expected = ids(slow.workspace.users)
    assert again.returncode == 0, again.stderr
    assert ids(read_jsonl(out)) == expected


def test_resume_of_a_complete_file_fetches_nothing_unless_restart(
    server: ServerThread, tmp_path: Path
) -> None:
    out = tmp_path / "users.jsonl"
    tag = server.workspace.largest_tag_id
    assert fetch(server, "users", "--tag-id", tag, "--out", str(out)).returncode == 0
    out.write_bytes(out.read_bytes() + b'{"id": "marker"}\n')
    server.stats.reset()
    result = fetch(server, "users", "--tag-id", tag, "--out", str(out), "--resume")
    assert result.returncode == 0
    assert one_line(result.stderr) == (
        f"asyncfetch: {out} is complete; nothing fetched for it (--restart fetches it again)"
    )
    assert server.stats.requests == 0
    assert read_jsonl(out)[-1] == {"id": "marker"}
    result = fetch(server, "users", "--tag-id", tag, "--out", str(out), "--resume", "--restart")
    assert result.returncode == 0, result.stderr
    assert ids(read_jsonl(out)) == ids(users_with_tag(server.workspace, tag))
    assert server.stats.requests > 0


# --- issue 14 item 12: a partial file or checkpoint changed by hand ---


@pytest.fixture
def interrupted(tmp_path: Path) -> Iterator[tuple[ServerThread, Path]]:
    """A run stopped after page 2 of 4 (page 3 failed): its partial file and checkpoint."""
    with ServerThread(ServerConfig(users=40)) as small:
        out = tmp_path / "users.jsonl"
        result = subprocess.run(
            [SCRIPT, "users", "--base-url", small.base_url, "--token", TOKEN, "--per-page", "10",
             "--out", str(out)],
            capture_output=True, text=True, env=environment(), timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        # Make it the state a stop after page 2 leaves: 20 lines and a checkpoint for them.
        data = out.read_bytes()
        two_pages = data[: sum(len(line) for line in data.splitlines(keepends=True)[:20])]
        out.rename(partial_of(out))
        partial_of(out).write_bytes(two_pages + data[len(two_pages) :][:35])  # a torn line
        checkpoint = {
            "version": 1, "pages": 2, "items": 20, "offset": len(two_pages),
            "total_count": len(small.workspace.users),
            "fingerprint": {"list": "users", "scroll": False, "base_url": small.base_url,
                            "per_page": 10, "format": "jsonl", "fields": None,
                            "keep_duplicates": False},
        }  # fmt: skip
        Path(str(partial_of(out)) + ".checkpoint").write_bytes(orjson.dumps(checkpoint))
        yield small, out


def resume(small: ServerThread, out: Path) -> subprocess.CompletedProcess[str]:
    small.stats.reset()
    return run_cli("users", "--base-url", small.base_url, "--token", TOKEN, "--per-page", "10",
                   "--out", str(out), "--resume")  # fmt: skip


def test_the_interrupted_fixture_resumes(interrupted: tuple[ServerThread, Path]) -> None:
    small, out = interrupted
    result = resume(small, out)
    assert result.returncode == 0, result.stderr
    assert ids(read_jsonl(out)) == ids(small.workspace.users)
    assert small.stats.requests == 2


def test_a_run_interrupted_under_the_earlier_layout_resumes(
    interrupted: tuple[ServerThread, Path],
) -> None:
    # Earlier versions wrote users.jsonl in place, users.jsonl.checkpoint beside it:
    # such a file must not pass for complete.
    small, out = interrupted
    partial_of(out).rename(out)
    Path(str(partial_of(out)) + ".checkpoint").rename(Path(str(out) + ".checkpoint"))
    result = resume(small, out)
    assert result.returncode == 0, result.stderr
    assert ids(read_jsonl(out)) == ids(small.workspace.users)
    assert small.stats.requests == 2
    assert names_in(out.parent) == ["users.jsonl"]


def test_a_fresh_run_removes_a_checkpoint_of_the_earlier_layout(
    interrupted: tuple[ServerThread, Path],
) -> None:
    small, out = interrupted
    partial_of(out).rename(out)
    Path(str(partial_of(out)) + ".checkpoint").rename(Path(str(out) + ".checkpoint"))
    args = ("users", "--base-url", small.base_url, "--token", TOKEN, "--per-page", "10")
    assert run_cli(*args, "--out", str(out)).returncode == 0
    assert names_in(out.parent) == ["users.jsonl"]
    result = run_cli(*args, "--out", str(out), "--resume")
    assert result.returncode == 0
    assert "is complete; nothing fetched" in result.stderr
    assert ids(read_jsonl(out)) == ids(small.workspace.users)


def test_a_partial_file_whose_line_endings_were_converted_is_refused(
    interrupted: tuple[ServerThread, Path],
) -> None:
    small, out = interrupted
    converted = partial_of(out).read_bytes().replace(b"\n", b"\r\n")
    partial_of(out).write_bytes(converted)
    result = resume(small, out)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"asyncfetch: error: {partial_of(out)} does not end a record at byte ")
    assert line.endswith("the file was changed; drop --resume (or add --restart) to start afresh")
    assert small.stats.requests == 0
    assert partial_of(out).read_bytes() == converted
    assert not out.exists()


def test_a_partial_file_with_a_line_removed_is_refused(
    interrupted: tuple[ServerThread, Path],
) -> None:
    small, out = interrupted
    lines = partial_of(out).read_bytes().splitlines(keepends=True)
    # The same length up to the checkpoint's offset, one line fewer: two lines joined.
    partial_of(out).write_bytes(lines[0].rstrip(b"\n") + b" " + b"".join(lines[1:]))
    result = resume(small, out)
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"asyncfetch: error: {partial_of(out)} holds 19 records in its first "
        f"{orjson.loads(Path(str(partial_of(out)) + '.checkpoint').read_bytes())['offset']} "
        "bytes where its checkpoint says 20: the file was changed; drop --resume "
        "(or add --restart) to start afresh"
    )
    assert small.stats.requests == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"offset": None}, "offset: None, not a whole number of at least 0"),
        ({"pages": -1}, "pages: -1, not a whole number of at least 0"),
        ({"items": "20"}, "items: '20', not a whole number of at least 0"),
        ({"fingerprint": ["users"]}, "is not a valid checkpoint (no fingerprint)"),
    ],
)
def test_a_hand_edited_checkpoint_is_one_line(
    interrupted: tuple[ServerThread, Path], edit: dict[str, object], message: str
) -> None:
    small, out = interrupted
    path = Path(str(partial_of(out)) + ".checkpoint")
    checkpoint = orjson.loads(path.read_bytes())
    for key, value in edit.items():
        if value is None:
            del checkpoint[key]
        else:
            checkpoint[key] = value
    path.write_bytes(orjson.dumps(checkpoint))
    result = resume(small, out)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"asyncfetch: error: {path} ")
    assert message in line
    assert small.stats.requests == 0
