"""Incident response: freeze the evidence, verify it later, roll back to a known-good checkpoint.

- :class:`ForensicBundle`: ``incident open`` (signed tar of the run's evidence and
  environment; the opening is an audit event) and ``incident verify``.
- :class:`RollbackPlanner`: ``incident rollback``: the last checkpoint whose signature, audit
  trail and gate verdict all verify; ``incident.rollback`` in the same audit log.
- :class:`EnvironmentSnapshot`: packages, torch / CUDA, git, host, time.
"""

from secure_train.response.incident.bundle import BundleCheck, ForensicBundle
from secure_train.response.incident.environment import EnvironmentSnapshot
from secure_train.response.incident.rollback import RollbackPlanner

__all__ = ["BundleCheck", "EnvironmentSnapshot", "ForensicBundle", "RollbackPlanner"]
