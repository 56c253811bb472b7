"""The package's layout rules (issue 10), checked by walking every module's imports.

``asyncfetch`` holds three products in rooms that may only look one way::

    _core       the engine: imports nothing of HTTP (no _http, no aiohttp)
    _http       the transport: knows nothing of Intercom, the CLI or the test server
    _intercom   the Intercom client, over _core and _http
    _sink       the database a sync writes to: _core and top-level modules only
    _fleet      many workspaces (issue 13): the public names of asyncfetch, _core and
                _sink; not _http, _intercom, _cli or testing. ``temporalio`` (an
                optional extra) only in _fleet/_temporal*.py
    _cli        the command: only the public names of asyncfetch, asyncfetch.testing
                and asyncfetch._fleet
    testing     the bundled server: nothing of the client side at all

Every ``import`` and ``from ... import`` in every module is read with ``ast``
(relative ones resolved against the module's package; imports inside
functions count too), and a broken rule fails with the module and the import.
The checker is run on a small tree with every kind of break first, so it is
known to fail when it should.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncfetch

PACKAGE_DIR = Path(asyncfetch.__file__).parent

ROOMS = ("_core", "_http", "_intercom", "_sink", "_fleet", "_cli", "testing")
CLIENT_ROOMS = ("_core", "_http", "_intercom", "_sink", "_fleet", "_cli")
# Top-level modules any room may use: they hold no code of a product.
NEUTRAL = ("_exceptions", "_config", "_json", "_redact", "_version")
# Public packages: a module of _cli may import the names in their __all__.
PUBLIC = ("", "testing", "_fleet")


def module_name(package_dir: Path, path: Path) -> str:
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(package_dir: Path, path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` for every import in ``path``: ``module`` absolute
    (relative ones resolved), ``names`` the ``from`` names (empty for ``import``)."""
    name = module_name(package_dir, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, tuple(alias.name for alias in node.names)


def is_module(package_dir: Path, dotted: str) -> bool:
    path = package_dir.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def room_of(package: str, module: str) -> str | None:
    """The room (``_core``, ..., ``testing``) ``module`` belongs to, ``"."`` for
    a top-level module of ``package``, ``None`` for a module outside it."""
    if module != package and not module.startswith(package + "."):
        return None
    rest = module[len(package) + 1 :].split(".") if module != package else []
    return rest[0] if rest and rest[0] in ROOMS else "."


def public_names(package_dir: Path, sub: str) -> set[str]:
    init = package_dir / sub / "__init__.py" if sub else package_dir / "__init__.py"
    if not init.is_file():
        return set()
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def node_of(package: str, module: str) -> str:
    """A node of the import graph: a room, or a top-level module on its own."""
    room = room_of(package, module)
    if room in ROOMS:
        return f"{package}.{room}"
    return module


def check_layout(package_dir: Path) -> list[str]:
    """Every broken rule in the package at ``package_dir``, one line each."""
    package = package_dir.name
    problems: list[str] = []
    graph: dict[str, set[str]] = {}
    public = {sub: public_names(package_dir, sub) for sub in PUBLIC}
    for path in sorted(package_dir.rglob("*.py")):
        name = module_name(package_dir, path)
        room = room_of(package, name)
        for line, target, names in imports(package_dir, path):
            where = f"{path.relative_to(package_dir.parent)}:{line}"
            shown = f"from {target} import {', '.join(names)}" if names else f"import {target}"
            # "from pkg import _x" may name a module: judge the module itself.
            targets = [
                f"{target}.{each}"
                if (package_dir.parent / f"{target}.{each}".replace(".", "/"))
                .with_suffix(".py")
                .exists()
                or (package_dir.parent / f"{target}.{each}".replace(".", "/")).is_dir()
                else target
                for each in names
            ] or [target]
            for full in targets:
                to = room_of(package, full)
                if to is not None and node_of(package, full) != node_of(package, name):
                    graph.setdefault(node_of(package, name), set()).add(node_of(package, full))
                if room == "_core" and (to in ("_http", "_intercom", "_sink", "_cli", "testing")
                                        or full.split(".")[0] == "aiohttp"):  # fmt: skip
                    problems.append(f"{where}: _core imports HTTP or above: {shown}")
                if room == "_http" and to in ("_intercom", "_cli", "testing"):
                    problems.append(f"{where}: _http imports {to}: {shown}")
                if room == "_sink" and (to in ("_http", "_intercom", "_cli", "testing")
                                        or full.split(".")[0] == "aiohttp"):  # fmt: skip
                    problems.append(f"{where}: _sink imports {to or full}: {shown}")
                if room == "_fleet" and to in ("_http", "_intercom", "_cli", "testing"):
                    problems.append(f"{where}: _fleet imports {to}: {shown}")
                if full.split(".")[0] == "temporalio" and not (
                    room == "_fleet" and path.name.startswith("_temporal")
                ):
                    problems.append(f"{where}: temporalio outside _fleet/_temporal*.py: {shown}")
                if room == "testing" and to in CLIENT_ROOMS:
                    problems.append(f"{where}: testing imports the client ({to}): {shown}")
                if room == "testing" and to == "." and full != package:
                    leaf = full.rpartition(".")[2]
                    if leaf not in NEUTRAL:
                        problems.append(f"{where}: testing imports the client: {shown}")
                if room == "_cli" and to is not None and to != "_cli":
                    problems.extend(_cli_problem(package, public, full, names, where, shown))
    problems.extend(f"import cycle between rooms: {cycle}" for cycle in cycles(graph))
    return problems


def _cli_problem(
    package: str,
    public: dict[str, set[str]],
    full: str,
    names: tuple[str, ...],
    where: str,
    shown: str,
) -> list[str]:
    for sub in PUBLIC:
        if full == ".".join(filter(None, (package, sub))):
            hidden = [each for each in names if each not in public[sub]]
            if hidden:
                return [f"{where}: _cli imports names not in {full}.__all__ ({hidden}): {shown}"]
            return []
    if full.rpartition(".")[0] == package and full.rpartition(".")[2] in NEUTRAL:
        return []
    return [f"{where}: _cli imports a private module: {shown}"]


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each cycle of ``graph`` found by a depth-first walk, as ``a -> b -> a``."""
    found: list[str] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        if node in path:
            found.append(" -> ".join([*path[path.index(node) :], node]))
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            walk(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        walk(start, [])
    return found


def test_asyncfetch_keeps_its_layout_rules() -> None:
    assert check_layout(PACKAGE_DIR) == []


def test_every_room_is_there_and_holds_modules() -> None:
    for room in ROOMS:
        assert (PACKAGE_DIR / room / "__init__.py").is_file()
        assert len(list((PACKAGE_DIR / room).glob("_*.py"))) >= 2, room
    flat = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "_config.py", "_exceptions.py", "_json.py",
                    "_redact.py", "_version.py"]  # fmt: skip


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


GOOD = {
    "__init__.py": "from ._core._engine import run\n__all__ = ['run']\n",
    "_exceptions.py": "",
    "_core/__init__.py": "",
    "_core/_engine.py": "import anyio\nfrom .._exceptions import E\ndef run(): ...\n",
    "_http/__init__.py": "",
    "_http/_transport.py": "import aiohttp\nfrom .._core import _engine\n",
    "_intercom/__init__.py": "",
    "_intercom/_client.py": "from .._http._transport import T\nfrom ._errors import d\n",
    "_intercom/_errors.py": "",
    "_sink/__init__.py": "",
    "_sink/_base.py": "import sqlite3\nfrom .._core._engine import run\nfrom .._json import x\n",
    "_fleet/__init__.py": "from ._local import go\n__all__ = ['go']\n",
    "_fleet/_local.py": "from .. import run\nfrom .._sink._base import s\n",
    "_fleet/_temporal.py": "import temporalio\nfrom temporalio import workflow\n",
    "_cli/__init__.py": "",
    "_cli/_run.py": "from .. import run\nfrom ..testing import Server\nfrom ._other import x\n"
    "from .._fleet import go\n",
    "_cli/_other.py": "",
    "testing/__init__.py": "from ._server import Server\n__all__ = ['Server']\n",
    "testing/_server.py": "from aiohttp import web\n",
}


def test_the_checker_passes_a_tree_that_keeps_the_rules(tmp_path: Path) -> None:
    assert check_layout(write(tmp_path, GOOD)) == []


def test_the_checker_fails_each_broken_rule(tmp_path: Path) -> None:
    bad = {
        **GOOD,
        # _core: aiohttp, and the transport (absolute and relative, inside a function).
        "_core/_engine.py": """\
            import aiohttp
            def run():
                from .._http._transport import T
            """,
        # _http: Intercom, and the CLI by a bare "from .. import".
        "_http/_transport.py": "from .._intercom._client import C\nfrom .._cli import _run\n",
        # _cli: a private module, and a name the package does not make public.
        "_cli/_run.py": "from .._intercom._client import C\nfrom .. import hidden\n"
        "from .._fleet import secret\n",
        # _fleet: Intercom's client, and temporalio outside _temporal*.py.
        "_fleet/_local.py": "from .._intercom._client import C\nimport temporalio.client\n",
        # _sink: the transport, and aiohttp.
        "_sink/_base.py": "from .._http._transport import T\nimport aiohttp\n",
        # testing: the client side, absolute.
        "testing/_server.py": "from pkg._http._transport import T\n",
    }
    problems = check_layout(write(tmp_path, bad))
    assert problems[:12] == [
        "pkg/_cli/_run.py:1: _cli imports a private module: from pkg._intercom._client import C",
        "pkg/_cli/_run.py:2: _cli imports names not in pkg.__all__ (['hidden']): "
        "from pkg import hidden",
        "pkg/_cli/_run.py:3: _cli imports names not in pkg._fleet.__all__ (['secret']): "
        "from pkg._fleet import secret",
        "pkg/_core/_engine.py:1: _core imports HTTP or above: import aiohttp",
        "pkg/_core/_engine.py:3: _core imports HTTP or above: from pkg._http._transport import T",
        "pkg/_fleet/_local.py:1: _fleet imports _intercom: from pkg._intercom._client import C",
        "pkg/_fleet/_local.py:2: temporalio outside _fleet/_temporal*.py: import temporalio.client",
        "pkg/_http/_transport.py:1: _http imports _intercom: from pkg._intercom._client import C",
        "pkg/_http/_transport.py:2: _http imports _cli: from pkg._cli import _run",
        "pkg/_sink/_base.py:1: _sink imports _http: from pkg._http._transport import T",
        "pkg/_sink/_base.py:2: _sink imports aiohttp: import aiohttp",
        "pkg/testing/_server.py:1: testing imports the client (_http): "
        "from pkg._http._transport import T",
    ]
    # The bad imports close loops through the good ones (_cli -> pkg -> _core).
    assert problems[12:] == [
        "import cycle between rooms: pkg -> pkg._core -> pkg._http -> pkg._cli -> pkg",
        "import cycle between rooms: pkg._http -> pkg._cli -> pkg._fleet -> pkg._intercom "
        "-> pkg._http",
    ]


def absolute_self_imports(package_dir: Path) -> list[str]:
    """Every import of the package by its own name from inside it: the package
    imports itself relatively, so that a module's imports say which room they
    reach (``..``) and the package works under another name."""
    package = package_dir.name
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            if any(module.split(".")[0] == package for module in modules):
                found.append(f"{path.relative_to(package_dir.parent)}:{node.lineno}")
    return found


def test_the_package_imports_itself_relatively(tmp_path: Path) -> None:
    assert absolute_self_imports(PACKAGE_DIR) == []
    # The check finds both forms, also inside a function.
    tree = write(
        tmp_path,
        {
            **GOOD,
            "_cli/_other.py": "def f():\n    import pkg._core\n",
            "testing/_server.py": "from aiohttp import web\nfrom pkg import run\n",
        },
    )
    assert absolute_self_imports(tree) == ["pkg/_cli/_other.py:2", "pkg/testing/_server.py:2"]
