"""The package is layered by lifecycle phase: a module imports only its own layer or lower ones.

The layers are those of ``CHANGELOG.md`` (and the README's lifecycle map). Imports inside
functions count too (a lazy import is still a dependency); the root package ``secure_train``
is the public facade and may import any layer.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "secure_train"

LAYERS = {
    "core": 0,
    "attacks": 1,
    "models": 1,
    "data_security": 2,
    "data": 3,
    "adversarial": 4,
    "monitors": 4,
    "privacy": 4,
    "integrity": 5,
    "gate": 6,
    "monitoring": 7,
    "response": 8,
    "commands": 9,
    "cli": 9,
    "__main__": 9,
}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "secure_train" or len(parts) == 1:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # ``from secure_train.core import keys`` imports the submodule secure_train.core.keys
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = _package_of(module)
        if own is None or own == "__init__":
            continue  # the root facade
        seen = set()
        for lineno, target in _imports(path):
            if lineno in seen:
                continue
            other = _package_of(target)
            if other is None or other not in LAYERS:
                continue
            if LAYERS[other] > LAYERS[own]:
                seen.add(lineno)
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {own} (layer {LAYERS[own]}) imports {target}")
    return bad


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert packages | modules <= set(LAYERS), sorted((packages | modules) - set(LAYERS))


def test_imports_only_run_downward():
    assert _violations() == []


def test_the_check_finds_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a core module importing the gate is reported."""
    fake = tmp_path / "secure_train"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "bad.py").write_text("from secure_train.gate.suite import GateSuite\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert _violations() == ["secure_train/core/bad.py:1: core (layer 0) imports secure_train.gate.suite"]


@pytest.mark.parametrize("old", ["secure_train.callbacks", "secure_train.data.scan", "secure_train.audit"])
def test_old_paths_still_import_with_a_warning(old):
    import importlib
    import warnings

    from secure_train.core.moved import new_path

    sys.modules.pop(old, None)  # an earlier test may have imported the alias already
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module.__name__ == new_path(old) != old
    assert [w for w in caught if issubclass(w.category, FutureWarning) and old in str(w.message)]
