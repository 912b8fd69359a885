"""secure-train: PyTorch Lightning training with the defenses of the LLM lifecycle built in."""

from secure_train.audit import AuditLog, get_audit_log
from secure_train.callbacks import AuditTrail
from secure_train.data import AdversarialAugmentationDataModule, CausalLMDataModule, TextClassificationDataModule
from secure_train.data.poison import PoisonSanitizer, detect_poison
from secure_train.data.provenance import Manifest, verify_manifest
from secure_train.data.scan import DataScanner
from secure_train.models import CausalLM, TextClassifier

__version__ = "0.1.0"

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
