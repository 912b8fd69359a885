"""Differential privacy: DP-SGD for any LightningModule (Opacus), Poisson sampling, privacy audit."""

from secure_train.privacy.canary_audit import AuditResult, canary_audit, empirical_epsilon, include_half
from secure_train.privacy.differential_privacy import DifferentialPrivacy
from secure_train.privacy.poisson import PoissonBatchSampler, poisson_loader
from secure_train.privacy.trainable import restrict_trainable

__all__ = [
    "AuditResult",
    "DifferentialPrivacy",
    "PoissonBatchSampler",
    "canary_audit",
    "empirical_epsilon",
    "include_half",
    "poisson_loader",
    "restrict_trainable",
]
