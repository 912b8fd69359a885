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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secure_train.adversarial import AdversarialAugmentationDataModule
    from secure_train.core.audit_log import AuditLog, get_audit_log
    from secure_train.data import CausalLMDataModule, TextClassificationDataModule
    from secure_train.data_security.manifest import Manifest, verify_manifest
    from secure_train.data_security.poison import PoisonSanitizer, detect_poison
    from secure_train.data_security.scan import DataScanner
    from secure_train.models import CausalLM, TextClassifier
    from secure_train.monitors import AuditTrail

from secure_train.core import moved as _moved
from secure_train.core.lazy import lazy_attribute
from secure_train.core.version import __version__

_moved.install()

_EXPORTS: dict[str, str] = {
    "AdversarialAugmentationDataModule": "secure_train.adversarial.augmentation",
    "AuditLog": "secure_train.core.audit_log",
    "AuditTrail": "secure_train.monitors.audit_trail",
    "CausalLM": "secure_train.models.causal_lm",
    "CausalLMDataModule": "secure_train.data.causal_lm",
    "DataScanner": "secure_train.data_security.scan",
    "Manifest": "secure_train.data_security.manifest",
    "PoisonSanitizer": "secure_train.data_security.poison",
    "TextClassificationDataModule": "secure_train.data.text_classification",
    "TextClassifier": "secure_train.models.text_classifier",
    "detect_poison": "secure_train.data_security.poison",
    "get_audit_log": "secure_train.core.audit_log",
    "verify_manifest": "secure_train.data_security.manifest",
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


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
