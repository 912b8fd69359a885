"""The benchmarks are a package: every module imports without side effects and has ``main(argv)``."""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import os
import pkgutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import benchmarks

ROOT = Path(benchmarks.__file__).resolve().parent
# opacus installs a top-level ``benchmarks`` package of its own: run pytest from the repository
# root as ``python -m pytest`` (the working directory first on sys.path) so ours is found.
assert ROOT == Path(__file__).resolve().parents[2] / "benchmarks", f"imported {ROOT}, not this repository's benchmarks"
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(ROOT)]))
SCRIPTS = [m for m in MODULES if m != "common"]


def test_every_file_is_a_module_of_the_package():
    assert sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__") == MODULES
    assert "common" in MODULES and len(SCRIPTS) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_imports_without_side_effects(name, tmp_path, monkeypatch):
    """Importing a benchmark prints nothing, writes no file, reads no argv and leaves sys.path alone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest", "--no-such-flag"])  # a module that parses argv at import fails
    results = {p: p.stat().st_mtime_ns for p in (ROOT / "results").glob("*")}
    path_before = list(sys.path)
    sys.modules.pop(f"benchmarks.{name}", None)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        module = importlib.import_module(f"benchmarks.{name}")
    assert out.getvalue() == ""
    assert sys.path == path_before
    assert list(tmp_path.iterdir()) == []
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "results").glob("*")} == results
    if name != "common":  # the entry point: main(argv=None), argv defaulting to sys.argv[1:]
        params = inspect.signature(module.main).parameters
        assert set(params) <= {"argv"} and all(p.default is None for p in params.values()), "main(argv=None)"


@pytest.mark.parametrize("name", MODULES)
def test_no_sys_path_edits_and_docstring_usage_is_a_module_run(name):
    source = (ROOT / f"{name}.py").read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys":
            pytest.fail(f"benchmarks/{name}.py uses sys.path (line {node.lineno})")
    assert f"python benchmarks/{name}.py" not in source
    if name != "common":
        assert f"python -m benchmarks.{name}" in (ast.get_docstring(tree) or ""), "usage line in the docstring"
        main_guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
        assert main_guard, "runnable as python -m"


@pytest.mark.slow
def test_a_module_run_parses_its_own_flags():
    """``python -m benchmarks.NAME --help`` from the repository root (one cheap module, in a subprocess)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.sharded_signing", "--help"],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--size-mb" in done.stdout and "python -m benchmarks.sharded_signing" in done.stdout
