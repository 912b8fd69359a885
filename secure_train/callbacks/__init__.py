"""Lightning callbacks: the audit trail and the training-time defenses.

``SampleLossMonitor`` (per-sample loss trajectories) was retired: it did not find poisoned
samples (``benchmarks/monitor_detection.py --parts d``); it is no longer exported.
"""

from secure_train.callbacks.activation import ActivationMonitor
from secure_train.callbacks.alerts import AnomalyMonitor, RunningStats
from secure_train.callbacks.audit_trail import AuditTrail
from secure_train.callbacks.grad_norm import GradNormMonitor
from secure_train.callbacks.loss_spike import LossSpikeMonitor
from secure_train.gate.drift import DriftMonitor

__all__ = [
    "ActivationMonitor",
    "AnomalyMonitor",
    "AuditTrail",
    "DriftMonitor",
    "GradNormMonitor",
    "LossSpikeMonitor",
    "RunningStats",
]
