"""Old import paths of the 0.1 layout, kept working for one release with a ``FutureWarning``.

The package was reorganised by lifecycle phase (see ``CHANGELOG.md``). Importing a module by
its old path (``secure_train.callbacks.loss_spike``) returns the module at its new path
(``secure_train.monitors.loss_spike``); a class path in an old recipe
(``secure_train.callbacks.LossSpikeMonitor``) still resolves. Names that left a package that
still exists (``secure_train.gate.DriftMonitor``) are looked up in :data:`MOVED_NAMES`.

Example:
    >>> import importlib, warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     old = importlib.import_module("secure_train.errors")
    >>> old.__name__, caught[0].category.__name__
    ('secure_train.core.errors', 'FutureWarning')
    >>> new_path("secure_train.callbacks.alerts")
    'secure_train.monitors.base'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "install", "moved_name", "new_path"]

MOVED_MODULES: dict[str, str] = {
    "secure_train.audit": "secure_train.core.audit_log",
    "secure_train.callbacks": "secure_train.monitors",
    "secure_train.callbacks.alerts": "secure_train.monitors.base",
    "secure_train.data._scanners": "secure_train.data_security.scanners",
    "secure_train.data.arrow": "secure_train.core.arrow_records",
    "secure_train.data.adversarial": "secure_train.adversarial.augmentation",
    "secure_train.data.parallel": "secure_train.data_security.parallel",
    "secure_train.data.poison": "secure_train.data_security.poison",
    "secure_train.data.poison_lift": "secure_train.data_security.poison_lift",
    "secure_train.data.provenance": "secure_train.data_security.manifest",
    "secure_train.data.records": "secure_train.core.records",
    "secure_train.data.scan": "secure_train.data_security.scan",
    "secure_train.detector": "secure_train.data_security.detector",
    "secure_train.distributed": "secure_train.core.distributed",
    "secure_train.errors": "secure_train.core.errors",
    "secure_train.gate._cli_approve": "secure_train.commands.approve",
    "secure_train.gate._cli_diff_train": "secure_train.commands.diff_train",
    "secure_train.gate._cli_drift": "secure_train.commands.drift",
    "secure_train.gate.diff_train": "secure_train.gate.differential_training",
    "secure_train.gate.drift": "secure_train.monitoring.drift",
    "secure_train.incident": "secure_train.response.incident",
    "secure_train.integrity.audit_head": "secure_train.core.audit_head",
    "secure_train.integrity.errors": "secure_train.core.errors",
    "secure_train.integrity.export": "secure_train.integrity.safetensors_export",
    "secure_train.integrity.keys": "secure_train.core.keys",
    "secure_train.integrity.provenance": "secure_train.integrity.run_record",
    "secure_train.integrity.signed_file": "secure_train.core.signed_file",
    "secure_train.integrity.signing": "secure_train.core.signing",
    "secure_train.integrity.sigstore": "secure_train.core.sigstore",
    "secure_train.lightning_cli": "secure_train.commands.lightning_cli",
    "secure_train.metrics": "secure_train.attacks.metrics",
    "secure_train.privacy.audit": "secure_train.privacy.canary_audit",
    "secure_train.report": "secure_train.response.report",
    "secure_train.safe_io": "secure_train.core.safe_io",
}
"""Old module path -> new module path (a package maps its submodules too)."""

MOVED_NAMES: dict[str, dict[str, str]] = {
    "secure_train.data": {"AdversarialAugmentationDataModule": "secure_train.adversarial.augmentation"},
    "secure_train.gate": {
        "DriftMonitor": "secure_train.monitoring.drift",
        "DriftReport": "secure_train.monitoring.drift",
        "load_inference_log": "secure_train.monitoring.drift",
    },
    "secure_train.monitors": {"DriftMonitor": "secure_train.monitoring.drift"},
}
"""Package -> {name that left it -> module defining it now}."""


def new_path(module: str) -> str:
    """The current path of ``module`` (unchanged when it did not move)."""
    parts = module.split(".")
    for i in range(len(parts), 1, -1):
        target = MOVED_MODULES.get(".".join(parts[:i]))
        if target is not None:
            return ".".join([target, *parts[i:]])
    return module


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; the old path is removed in the next release (see CHANGELOG.md)",
        FutureWarning,
        stacklevel=3,
    )


def moved_name(package: str, name: str) -> Any:
    """The object ``name`` that moved out of ``package``, with a ``FutureWarning``; ``AttributeError`` else."""
    module = MOVED_NAMES.get(package, {}).get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{module}.{name}")
    return getattr(importlib.import_module(module), name)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, self.target)
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module was executed when it was imported."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("secure_train."):
            return None
        current = new_path(fullname)
        if current == fullname:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(current))


def install() -> None:
    """Put the old-path finder first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
