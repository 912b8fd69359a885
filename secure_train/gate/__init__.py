"""Validation: the deployment gate, trojan scan, attestations and approvals, differential training.

- :class:`TrojanScanner`: backdoor scan without trigger knowledge (vocabulary scan + inversion).
- :class:`GateSuite` / :func:`run_gate`: validation suite on a checkpoint, signed attestation.
- :class:`ReleasePolicy`, :func:`write_approval`: export enforcement and signed approvals;
  :class:`ApproverKeyring` (approver -> own key -> roles), :class:`VerdictStore` (verdicts by digest).
- :class:`DifferentialTraining`: K varied runs, flags anomalous-influence samples and odd runs.
- :class:`ClassAllowList`: the one builder of ``class_path`` objects (allow-list; file values are data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secure_train.core.lazy import lazy_attribute

if TYPE_CHECKING:
    from secure_train.gate.attestation import GateRefused, ReleasePolicy, read_signed_json, write_approval
    from secure_train.gate.differential_training import DifferentialTraining
    from secure_train.gate.instantiate import ClassAllowList
    from secure_train.gate.keyring import ApproverKeyring
    from secure_train.gate.suite import GateSuite, run_gate
    from secure_train.gate.trojan import TriggerCandidate, TrojanScanner, TrojanScanResult
    from secure_train.gate.verdicts import VerdictStore

_EXPORTS: dict[str, str] = {
    "ApproverKeyring": "secure_train.gate.keyring",
    "VerdictStore": "secure_train.gate.verdicts",
    "ClassAllowList": "secure_train.gate.instantiate",
    "DifferentialTraining": "secure_train.gate.differential_training",
    "GateRefused": "secure_train.gate.attestation",
    "GateSuite": "secure_train.gate.suite",
    "ReleasePolicy": "secure_train.gate.attestation",
    "TriggerCandidate": "secure_train.gate.trojan",
    "TrojanScanResult": "secure_train.gate.trojan",
    "TrojanScanner": "secure_train.gate.trojan",
    "read_signed_json": "secure_train.gate.attestation",
    "run_gate": "secure_train.gate.suite",
    "write_approval": "secure_train.gate.attestation",
}
"""Public name -> defining module, imported on first access (PEP 562)."""


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "ApproverKeyring",
    "ClassAllowList",
    "DifferentialTraining",
    "GateRefused",
    "GateSuite",
    "ReleasePolicy",
    "TriggerCandidate",
    "TrojanScanResult",
    "TrojanScanner",
    "VerdictStore",
    "read_signed_json",
    "run_gate",
    "write_approval",
]
