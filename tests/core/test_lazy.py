"""Lazy package exports (PEP 562): every package that re-exports through core.lazy keeps its lists in step."""

from __future__ import annotations

import importlib

import pytest

LAZY_PACKAGES = ["secure_train", "secure_train.data", "secure_train.gate", "secure_train.integrity"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_all_lists_exactly_the_lazy_exports(package: str) -> None:
    """``__all__`` stays a literal (mkdocstrings and mypy read it); it must name what ``_EXPORTS`` maps."""
    module = importlib.import_module(package)
    assert sorted(set(module.__all__) - {"__version__"}) == sorted(module._EXPORTS)
    assert len(module.__all__) == len(set(module.__all__))


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_lazy_export_resolves_to_its_module(package: str) -> None:
    module = importlib.import_module(package)
    for name, source in module._EXPORTS.items():
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(source), name), (package, name)
        assert module.__dict__[name] is value  # cached on the package after the first access


def test_unknown_name_is_an_attribute_error() -> None:
    gate = importlib.import_module("secure_train.gate")
    with pytest.raises(AttributeError):
        gate.NoSuchThing  # noqa: B018
