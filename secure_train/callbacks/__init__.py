"""Lightning callbacks: the audit trail and the training-time defenses."""

from secure_train.callbacks.activation import ActivationMonitor
from secure_train.callbacks.alerts import AnomalyMonitor, RunningStats
from secure_train.callbacks.audit_trail import AuditTrail
from secure_train.callbacks.grad_norm import GradNormMonitor
from secure_train.callbacks.loss_spike import LossSpikeMonitor
from secure_train.callbacks.sample_loss import SampleLossMonitor
from secure_train.gate.drift import DriftMonitor

__all__ = [
    "ActivationMonitor",
    "AnomalyMonitor",
    "AuditTrail",
    "DriftMonitor",
    "GradNormMonitor",
    "LossSpikeMonitor",
    "RunningStats",
    "SampleLossMonitor",
]
