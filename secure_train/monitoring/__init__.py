"""Monitoring after deployment: output-distribution drift (:class:`~secure_train.monitoring.drift.DriftMonitor`)."""

from secure_train.monitoring.drift import DriftMonitor, DriftReport, load_inference_log

__all__ = ["DriftMonitor", "DriftReport", "load_inference_log"]
