"""FLEET.toml: the workspaces a fleet syncs, read and checked before any request.

One ``[[workspace]]`` table per workspace::

    [[workspace]]
    name = "acme"                      # letters, digits, - and _
    base_url = "https://api.intercom.io"
    token_env = "ACME_INTERCOM_TOKEN"  # read on the worker, never stored anywhere else
    lists = ["users", "users?tag_id=100", "companies"]

The file holds the NAME of the environment variable that holds a token, never
the token: it is given to Temporal as the workflow's input, and whatever is
there is in Temporal's history for good. Strict on purpose: an unknown key (a
typo of ``lists``) is refused rather than ignored, and every problem is one
line naming the file and the workspace (``FleetConfigError``), found before
any request is sent.

A list is written as the database names it (the ``list_name`` of the CLI's
``--db`` runs): ``users``, ``users?tag_id=ID``, ``users?segment_id=ID``,
``companies`` (``?tag_id=`` / ``?segment_id=``), ``contacts``,
``company_users?id=ID`` (``?company_id=``). ``ListSpec`` is such a list,
parsed, and knows how to make its listing from a client.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .. import DEFAULT_BASE_URL, IntercomClient, Item, Listing
from .._exceptions import FleetConfigError

__all__ = ["FleetSpec", "ListSpec", "WorkspaceSpec", "load_fleet", "parse_fleet", "parse_list"]

NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALUE: Final = re.compile(r"[A-Za-z0-9_.:-]+")
# Longest workspace name: a PostgreSQL identifier holds 63 bytes.
_LONGEST_NAME: Final = 63

# Each list and the filters it takes (at most one at a time).
_FILTERS: Final = {
    "users": ("tag_id", "segment_id"),
    "companies": ("tag_id", "segment_id"),
    "contacts": (),
    "company_users": ("id", "company_id"),
}
_KEYS: Final = {"name", "base_url", "token_env", "lists", "per_page"}
_REQUIRED: Final = ("name", "token_env", "lists")


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One list of a workspace: ``what`` (``users``...), its filter (``key``,
    ``value``) or none; ``name`` is how the database knows it."""

    what: str
    key: str | None = None
    value: str | None = None

    @property
    def name(self) -> str:
        return self.what if self.key is None else f"{self.what}?{self.key}={self.value}"

    @property
    def kind(self) -> str:
        """The table its records go to."""
        return "users" if self.what in ("users", "company_users") else self.what

    @property
    def whole(self) -> bool:
        """A whole collection: a complete pass marks the records not seen as deleted."""
        return self.what != "company_users" and self.key is None

    def make(self, client: IntercomClient) -> Listing[Item]:
        """The listing of this list from ``client``."""
        tag_id = self.value if self.key == "tag_id" else None
        segment_id = self.value if self.key == "segment_id" else None
        if self.what == "users":
            return client.users(tag_id=tag_id, segment_id=segment_id)
        if self.what == "companies":
            return client.companies(tag_id=tag_id, segment_id=segment_id)
        if self.what == "contacts":
            return client.contacts()
        if self.key == "id":
            return client.company_users(id=self.value)
        return client.company_users(company_id=self.value)


@dataclass(frozen=True, slots=True)
class WorkspaceSpec:
    """One workspace of the fleet: no token, only where to read it on the worker."""

    name: str
    base_url: str
    token_env: str
    lists: tuple[ListSpec, ...]
    per_page: int = 50


@dataclass(frozen=True, slots=True)
class FleetSpec:
    path: str
    workspaces: tuple[WorkspaceSpec, ...]


def parse_list(text: object) -> ListSpec:
    """``users?tag_id=100`` as a ``ListSpec``; ``ValueError`` (one line) if not one."""
    if not isinstance(text, str):
        raise ValueError(  # noqa: TRY004 - one kind of error for every bad list
            f"a list is a string such as 'users?tag_id=100', got {text!r}"
        )
    what, question, query = text.partition("?")
    if what not in _FILTERS:
        raise ValueError(f"unknown list {what!r} in {text!r}: one of {', '.join(_FILTERS)}")
    allowed = _FILTERS[what]
    if not question:
        if what == "company_users":
            raise ValueError(f"{text!r}: company_users needs ?id=... or ?company_id=...")
        return ListSpec(what)
    key, equals, value = query.partition("=")
    if not equals or key not in allowed:
        takes = " or ".join(f"?{each}=..." for each in allowed) or "no filter"
        raise ValueError(f"{text!r}: {what} takes {takes}")
    if not _VALUE.fullmatch(value):
        raise ValueError(f"{text!r}: the {key} must be letters, digits, '_', '.', ':' or '-'")
    return ListSpec(what, key, value)


def load_fleet(path: str) -> FleetSpec:
    """Read and check the FLEET.toml at ``path``; ``FleetConfigError`` (one line) if bad."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise FleetConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetConfigError(f"{path}: not valid TOML: {_one_line(exc)}") from None
    except UnicodeDecodeError:
        raise FleetConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    return parse_fleet(data, path=path)


def parse_fleet(data: Mapping[str, Any], *, path: str = "FLEET.toml") -> FleetSpec:
    """The fleet of an already parsed TOML document (see `load_fleet`)."""
    unknown = sorted(set(data) - {"workspace"})
    if unknown:
        raise FleetConfigError(
            f"{path}: unknown key {unknown[0]!r}: the file holds [[workspace]] tables only"
        )
    tables = data.get("workspace")
    if not isinstance(tables, list) or not tables:
        raise FleetConfigError(f"{path}: no [[workspace]] table: nothing to sync")
    workspaces: list[WorkspaceSpec] = []
    seen: dict[str, str] = {}
    for number, table in enumerate(tables, 1):
        workspace = _workspace(table, f"{path}: workspace {number}")
        # Two names one case apart would share a file on a case-insensitive disk.
        folded = workspace.name.casefold()
        if folded in seen:
            raise FleetConfigError(
                f"{path}: workspace {number}: the name {workspace.name!r} is taken by an "
                f"earlier workspace ({seen[folded]!r}): each needs its own"
            )
        seen[folded] = workspace.name
        workspaces.append(workspace)
    return FleetSpec(path=path, workspaces=tuple(workspaces))


def _workspace(table: object, where: str) -> WorkspaceSpec:
    if not isinstance(table, dict):
        raise FleetConfigError(f"{where}: not a table")
    name = table.get("name")
    if isinstance(name, str) and NAME.fullmatch(name):
        where = f"{where.rpartition(': workspace')[0]}: workspace {name!r}"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise FleetConfigError(
            f"{where}: unknown key {unknown[0]!r} (the keys are {', '.join(sorted(_KEYS))})"
        )
    for key in _REQUIRED:
        if key not in table:
            raise FleetConfigError(f"{where}: {key} is missing")
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > _LONGEST_NAME:
        raise FleetConfigError(
            f"{where}: name {name!r}: letters, digits, '-' and '_' only "
            f"(at most {_LONGEST_NAME}): it names a schema or a file"
        )
    if name.casefold() in ("public", "information_schema") or name.casefold().startswith("pg_"):
        # PostgreSQL's own schemas (and the one a plain --db run writes).
        raise FleetConfigError(f"{where}: name {name!r} is PostgreSQL's own schema: pick another")
    token_env = table["token_env"]
    if not isinstance(token_env, str) or not _ENV_NAME.fullmatch(token_env):
        raise FleetConfigError(
            f"{where}: token_env must be the NAME of an environment variable (such as "
            "ACME_INTERCOM_TOKEN), never the token"
        )
    base_url = table.get("base_url", DEFAULT_BASE_URL)
    if not isinstance(base_url, str):
        raise FleetConfigError(f"{where}: base_url must be a string")
    per_page = table.get("per_page", 50)
    if isinstance(per_page, bool) or not isinstance(per_page, int):
        raise FleetConfigError(f"{where}: per_page must be a whole number (1 to 60)")
    try:
        # The client checks the URL and per_page's range as it does for every
        # command (no request is sent).
        IntercomClient(token="checking-the-url", base_url=base_url, per_page=per_page)
    except ValueError as exc:
        raise FleetConfigError(f"{where}: {_one_line(exc)}") from None
    return WorkspaceSpec(
        name=name,
        base_url=base_url,
        token_env=token_env,
        lists=_lists(table["lists"], where),
        per_page=per_page,
    )


def _lists(lists: object, where: str) -> tuple[ListSpec, ...]:
    if not isinstance(lists, list) or not lists:
        raise FleetConfigError(f"{where}: lists must be a non-empty array of strings")
    specs: list[ListSpec] = []
    for text in lists:
        try:
            spec = parse_list(text)
        except ValueError as exc:
            raise FleetConfigError(f"{where}: {exc}") from None
        if spec in specs:
            raise FleetConfigError(f"{where}: the list {spec.name!r} is given twice")
        specs.append(spec)
    return tuple(specs)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
