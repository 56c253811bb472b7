"""``asyncfetch fleet run --local``: every workspace in one process, no Temporal;
and FLEET.toml's checks, one line and exit 2 before any request."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncfetch.testing import ListKey, ServerConfig, ServerThread

from ..postgres_cluster import PostgresUrl
from .conftest import clean_env, fleet_command
from .helpers import assert_tables_exact, fleet_toml


def run_fleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        fleet_command(*args),
        capture_output=True,
        text=True,
        env=clean_env(**(env or {})),
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ServerThread]]:
    """Three workspaces: their own tokens; the first enforces (and advertises) a limit."""
    configs = [
        ServerConfig(users=260, seed=1, token="alpha-secret-token-000111", rate_limit=15,
                     rate_window_seconds=1),
        ServerConfig(users=140, seed=2, token="beta-secret-token-000222"),
        ServerConfig(users=90, seed=3, token="gamma-secret-token-000333"),
    ]  # fmt: skip
    threads = [ServerThread(config) for config in configs]
    for thread in threads:
        thread.__enter__()
    try:
        yield threads
    finally:
        for thread in threads:
            thread.__exit__(None, None, None)


def _pages(server: ServerThread) -> int:
    """The pages the server answered 200: the lists' pages, each once."""
    return server.stats.statuses[200]


def three_workspaces(path: Path, servers: list[ServerThread]) -> Path:
    return fleet_toml(
        path,
        [
            {"name": "alpha", "base_url": servers[0].base_url, "token_env": "ALPHA_TOKEN",
             "lists": ["users", "companies"], "per_page": 20},
            {"name": "Beta-2", "base_url": servers[1].base_url, "token_env": "BETA_TOKEN",
             "lists": ["users", f"users?tag_id={servers[1].workspace.largest_tag_id}"]},
            {"name": "gamma", "base_url": servers[2].base_url, "token_env": "GAMMA_TOKEN",
             "lists": ["users", "companies"]},
        ],
    )  # fmt: skip


TOKENS = {
    "ALPHA_TOKEN": "alpha-secret-token-000111",
    "BETA_TOKEN": "beta-secret-token-000222",
    "GAMMA_TOKEN": "a-revoked-token-999999",
}


def test_local_syncs_each_workspace_into_its_own_file_and_a_refused_token_fails_only_its_own(
    servers: list[ServerThread], tmp_path: Path
) -> None:
    for server in servers:
        server.stats.reset()
    fleet = three_workspaces(tmp_path / "FLEET.toml", servers)
    result = run_fleet("run", str(fleet), "--local", "--db", str(tmp_path / "x.db"), env=TOKENS)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "asyncfetch: error: gamma: HTTP 401 unauthorized: Access Token Invalid (page 1, "
    )
    alpha, beta, gamma = servers
    users_and_tag = len(beta.workspace.items(ListKey("users"))) + len(
        beta.workspace.items(ListKey("users", "tag_id", beta.workspace.largest_tag_id))
    )
    assert sorted(result.stdout.splitlines()) == [
        f"Beta-2: completed: {_pages(beta)} pages, {users_and_tag} records",
        f"alpha: completed: {_pages(alpha)} pages, "
        f"{len(alpha.workspace.items(ListKey('users'))) + len(alpha.workspace.companies)} records",
    ]
    # Each workspace in its own file beside the one given.
    assert_tables_exact(f"sqlite://{tmp_path / 'x-alpha.db'}", alpha, ["users", "companies"])
    assert_tables_exact(
        f"sqlite://{tmp_path / 'x-Beta-2.db'}",
        beta,
        ["users", f"users?tag_id={beta.workspace.largest_tag_id}"],
    )
    assert not (tmp_path / "x.db").exists()
    # The advertised limit was kept; the refused token was not tried again.
    assert alpha.stats.statuses[429] == 0
    assert gamma.stats.requests == gamma.stats.statuses[401] <= 2
    assert "a-revoked-token" not in result.stdout + result.stderr


def test_local_puts_each_workspace_in_its_own_postgresql_schema(
    servers: list[ServerThread], postgres_database_url: PostgresUrl, tmp_path: Path
) -> None:
    fleet = three_workspaces(tmp_path / "FLEET.toml", servers)
    tokens = {**TOKENS, "GAMMA_TOKEN": "gamma-secret-token-000333"}
    first = run_fleet("run", str(fleet), "--local", "--db", postgres_database_url, env=tokens)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    alpha, beta, gamma = servers
    # Side by side in one database: one writer lock per schema, not per database.
    assert_tables_exact(postgres_database_url, alpha, ["users", "companies"], schema="alpha")
    beta_lists = ["users", f"users?tag_id={beta.workspace.largest_tag_id}"]
    assert_tables_exact(postgres_database_url, beta, beta_lists, schema="Beta-2")
    assert_tables_exact(postgres_database_url, gamma, ["users", "companies"], schema="gamma")
    # A second run syncs again into the same tables: nothing doubled.
    again = run_fleet("run", str(fleet), "--local", "--db", postgres_database_url, env=tokens)
    assert again.returncode == 0, again.stderr
    assert_tables_exact(postgres_database_url, beta, beta_lists, schema="Beta-2")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[workspace]\nname = 1", "FLEET.toml: not valid TOML: "),
        (
            "title = 'x'\n",
            "FLEET.toml: unknown key 'title': the file holds [[workspace]] tables only",
        ),
        ("", "FLEET.toml: no [[workspace]] table: nothing to sync"),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\nlist=['users']\n",
            "FLEET.toml: workspace 'a': unknown key 'list' (the keys are base_url, lists, name, "
            "per_page, token_env)",
        ),
        (
            "[[workspace]]\nname='a b'\ntoken_env='A_TOKEN'\nlists=['users']\n",
            "FLEET.toml: workspace 1: name 'a b': letters, digits, '-' and '_' only (at most 63): "
            "it names a schema or a file",
        ),
        (
            "[[workspace]]\nname='Public'\ntoken_env='A_TOKEN'\nlists=['users']\n",
            "FLEET.toml: workspace 'Public': name 'Public' is PostgreSQL's own schema: "
            "pick another",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\nlists=['users']\n"
            "[[workspace]]\nname='A'\ntoken_env='B_TOKEN'\nlists=['users']\n",
            "FLEET.toml: workspace 2: the name 'A' is taken by an earlier workspace ('a'): "
            "each needs its own",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='dG9rOjEyMzQ='\nlists=['users']\n",
            "FLEET.toml: workspace 'a': token_env must be the NAME of an environment variable "
            "(such as ACME_INTERCOM_TOKEN), never the token",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\nlists=['user']\n",
            "FLEET.toml: workspace 'a': unknown list 'user' in 'user': one of users, companies, "
            "contacts, company_users",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\nlists=['users?company_id=3']\n",
            "FLEET.toml: workspace 'a': 'users?company_id=3': users takes ?tag_id=... or "
            "?segment_id=...",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\nlists=['users', 'users']\n",
            "FLEET.toml: workspace 'a': the list 'users' is given twice",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\nlists=[]\n",
            "FLEET.toml: workspace 'a': lists must be a non-empty array of strings",
        ),
        (
            "[[workspace]]\nname='a'\ntoken_env='A_TOKEN'\n",
            "FLEET.toml: workspace 'a': lists is missing",
        ),
        (
            "[[workspace]]\nname='a'\nbase_url='ftp://x'\ntoken_env='A_TOKEN'\nlists=['users']\n",
            "FLEET.toml: workspace 'a': base_url must be an http:// or https:// URL with a host, "
            "got 'ftp://x'",
        ),
    ],
)
def test_a_bad_fleet_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("FLEET.toml").write_text(toml)
    for args in (("--local", "--db", "x.db"), ("--temporal", "127.0.0.1:1", "--wait")):
        result = run_fleet("run", "FLEET.toml", *args, env={"A_TOKEN": "t", "B_TOKEN": "t"})
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"asyncfetch: error: {message}")
        assert result.stderr.count("\n") == 1
        assert result.stdout == ""
    assert not Path("x.db").exists()


def test_usage_errors_are_one_line_and_exit_2_before_any_request(
    servers: list[ServerThread], tmp_path: Path
) -> None:
    fleet = three_workspaces(tmp_path / "FLEET.toml", servers)
    for server in servers:
        server.stats.reset()
    db = str(tmp_path / "x.db")
    cases = [
        (("run", str(fleet), "--db", db), TOKENS,
         "give --local (this process) or --temporal HOST:PORT (the workers)"),
        (("run", str(fleet), "--local"), TOKENS,
         "--local needs --db URL (the workers' --db, with --temporal)"),
        (("run", str(fleet), "--local", "--db", "mysql://x/y"), TOKENS,
         "database URL 'mysql://x/y': unknown kind"),
        (("run", str(fleet), "--local", "--db", db), {"ALPHA_TOKEN": "x"},
         f"BETA_TOKEN is not set: it holds a workspace's token ({fleet})"),
        (("run", str(tmp_path / "missing.toml"), "--local", "--db", db), TOKENS,
         f"{tmp_path / 'missing.toml'}: cannot read it: No such file or directory"),
        (("run", str(fleet), "--temporal", "127.0.0.1:1", "--db", db), {},
         "--db is the workers' (fleet worker --db): fleet run --temporal takes none"),
        (("worker", "--db", db), {}, "fleet worker needs --temporal HOST:PORT"),
    ]  # fmt: skip
    for args, env, message in cases:
        result = run_fleet(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(f"asyncfetch: error: {message}"), result.stderr
        assert result.stderr.count("\n") == 1
    assert sum(server.stats.requests for server in servers) == 0
    assert list(tmp_path.glob("*.db")) == []


def test_local_runs_without_the_temporal_extra_which_temporal_asks_for(
    servers: list[ServerThread], tmp_path: Path
) -> None:
    fleet = three_workspaces(tmp_path / "FLEET.toml", servers)
    tokens = {**TOKENS, "GAMMA_TOKEN": "gamma-secret-token-000333"}
    # temporalio made unimportable, as on a machine without the extra.
    without = (
        "import sys; sys.modules['temporalio'] = None; sys.argv[0] = 'asyncfetch'; "
        "from asyncfetch._cli import main; main()"
    )
    local = subprocess.run(
        [sys.executable, "-c", without, "fleet", "run", str(fleet), "--local", "--db",
         str(tmp_path / "x.db")],
        capture_output=True, text=True, env=clean_env(**tokens), timeout=90, check=False,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    assert len(local.stdout.splitlines()) == 3
    temporal = subprocess.run(
        [sys.executable, "-c", without, "fleet", "run", str(fleet), "--temporal", "127.0.0.1:1"],
        capture_output=True, text=True, env=clean_env(), timeout=90, check=False,
    )  # fmt: skip
    assert temporal.returncode == 2
    assert temporal.stderr == (
        "asyncfetch: error: --temporal needs the Temporal SDK: pip install "
        "'asyncfetch[temporal]' (or run the fleet in this process: fleet run --local)\n"
    )
