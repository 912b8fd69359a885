"""Lightning callbacks: the audit trail and the training-time defenses."""

from secure_train.callbacks.audit_trail import AuditTrail

__all__ = ["AuditTrail"]
