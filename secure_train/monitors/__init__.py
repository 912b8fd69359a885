"""Training monitors: Lightning callbacks for the audit trail and the training-time anomaly defenses.

:class:`~secure_train.monitors.base.AnomalyMonitor` is the base of every monitor (robust statistics,
the anomaly policy: warn / stop / rollback).

``SampleLossMonitor`` (per-sample loss trajectories) was retired: it did not find poisoned
samples (``benchmarks/monitor_detection.py --parts d``); it is no longer exported.
"""

from typing import Any

from secure_train.monitors.activation import ActivationMonitor
from secure_train.monitors.audit_trail import AuditTrail
from secure_train.monitors.base import AnomalyMonitor, RunningStats
from secure_train.monitors.grad_norm import GradNormMonitor
from secure_train.monitors.loss_spike import LossSpikeMonitor

__all__ = [
    "ActivationMonitor",
    "AnomalyMonitor",
    "AuditTrail",
    "GradNormMonitor",
    "LossSpikeMonitor",
    "RunningStats",
]


def __getattr__(name: str) -> Any:
    from secure_train.core.moved import moved_name

    return moved_name(__name__, name)
