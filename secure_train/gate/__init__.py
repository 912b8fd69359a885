"""Validation and monitoring: the deployment gate, trojan scan, attestations, drift, diff-train.

- :class:`TrojanScanner`: backdoor scan without trigger knowledge (vocabulary scan + inversion).
- :class:`GateSuite` / :func:`run_gate`: validation suite on a checkpoint, signed attestation.
- :class:`ReleasePolicy`, :func:`write_approval`: export enforcement and signed approvals;
  :class:`ApproverKeyring` (approver -> own key -> roles), :class:`VerdictStore` (verdicts by digest).
- :class:`DriftMonitor`: output-distribution drift (PSI, KS, Jensen–Shannon), callback and CLI.
- :class:`DifferentialTraining`: K varied runs, flags anomalous-influence samples and odd runs.
- :class:`ClassAllowList`: the one builder of ``class_path`` objects (allow-list; file values are data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from secure_train import lazy_attribute

if TYPE_CHECKING:
    from secure_train.gate.attestation import GateRefused, ReleasePolicy, read_signed_json, write_approval
    from secure_train.gate.diff_train import DifferentialTraining
    from secure_train.gate.drift import DriftMonitor, DriftReport, load_inference_log
    from secure_train.gate.instantiate import ClassAllowList
    from secure_train.gate.keyring import ApproverKeyring
    from secure_train.gate.suite import GateSuite, run_gate
    from secure_train.gate.trojan import TriggerCandidate, TrojanScanner, TrojanScanResult
    from secure_train.gate.verdicts import VerdictStore

_EXPORTS: dict[str, str] = {
    "ApproverKeyring": "secure_train.gate.keyring",
    "VerdictStore": "secure_train.gate.verdicts",
    "ClassAllowList": "secure_train.gate.instantiate",
    "DifferentialTraining": "secure_train.gate.diff_train",
    "DriftMonitor": "secure_train.gate.drift",
    "DriftReport": "secure_train.gate.drift",
    "GateRefused": "secure_train.gate.attestation",
    "GateSuite": "secure_train.gate.suite",
    "ReleasePolicy": "secure_train.gate.attestation",
    "TriggerCandidate": "secure_train.gate.trojan",
    "TrojanScanResult": "secure_train.gate.trojan",
    "TrojanScanner": "secure_train.gate.trojan",
    "load_inference_log": "secure_train.gate.drift",
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
    "DriftMonitor",
    "DriftReport",
    "GateRefused",
    "GateSuite",
    "ReleasePolicy",
    "TriggerCandidate",
    "TrojanScanResult",
    "TrojanScanner",
    "VerdictStore",
    "load_inference_log",
    "read_signed_json",
    "run_gate",
    "write_approval",
]
