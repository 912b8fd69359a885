"""secure-train: PyTorch Lightning training with the defenses of the LLM lifecycle built in."""

from secure_train.audit import AuditLog, get_audit_log
from secure_train.callbacks import AuditTrail
from secure_train.data import CausalLMDataModule, TextClassificationDataModule
from secure_train.models import CausalLM, TextClassifier

__version__ = "0.1.0"

__all__ = [
    "AuditLog",
    "AuditTrail",
    "CausalLM",
    "CausalLMDataModule",
    "TextClassificationDataModule",
    "TextClassifier",
    "__version__",
    "get_audit_log",
]
