"""secure-train: PyTorch Lightning training with the defenses of the LLM lifecycle built in.

Public names are imported on first use (PEP 562), so that ``import secure_train`` and the
non-training commands (``secure-train audit verify``, ``verify``, ...) do not pay for
Lightning and torch.

Example:
    >>> import secure_train
    >>> secure_train.__version__
    '0.1.0'
    >>> "AuditLog" in secure_train.__all__
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secure_train.audit import AuditLog, get_audit_log
    from secure_train.callbacks import AuditTrail
    from secure_train.data import AdversarialAugmentationDataModule, CausalLMDataModule, TextClassificationDataModule
    from secure_train.data.poison import PoisonSanitizer, detect_poison
    from secure_train.data.provenance import Manifest, verify_manifest
    from secure_train.data.scan import DataScanner
    from secure_train.models import CausalLM, TextClassifier

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AdversarialAugmentationDataModule": "secure_train.data.adversarial",
    "AuditLog": "secure_train.audit",
    "AuditTrail": "secure_train.callbacks.audit_trail",
    "CausalLM": "secure_train.models.causal_lm",
    "CausalLMDataModule": "secure_train.data.causal_lm",
    "DataScanner": "secure_train.data.scan",
    "Manifest": "secure_train.data.provenance",
    "PoisonSanitizer": "secure_train.data.poison",
    "TextClassificationDataModule": "secure_train.data.text_classification",
    "TextClassifier": "secure_train.models.text_classifier",
    "detect_poison": "secure_train.data.poison",
    "get_audit_log": "secure_train.audit",
    "verify_manifest": "secure_train.data.provenance",
}
"""Public name -> module defining it, imported by :func:`__getattr__` on first access."""

__all__ = [
    "AdversarialAugmentationDataModule",
    "AuditLog",
    "AuditTrail",
    "CausalLM",
    "CausalLMDataModule",
    "DataScanner",
    "Manifest",
    "PoisonSanitizer",
    "TextClassificationDataModule",
    "TextClassifier",
    "__version__",
    "detect_poison",
    "get_audit_log",
    "verify_manifest",
]


def lazy_attribute(package: str, exports: dict[str, str], name: str) -> Any:
    """Import ``name`` from the module ``exports[name]`` and cache it on ``package``.

    The ``__getattr__`` of every lazy ``secure_train`` package calls this (PEP 562).

    Example:
        >>> lazy_attribute("secure_train", {"AuditLog": "secure_train.audit"}, "AuditLog").__name__
        'AuditLog'
    """
    module_name = exports.get(name)
    if module_name is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    setattr(importlib.import_module(package), name, value)
    return value


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
