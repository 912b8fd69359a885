"""Validation and monitoring: the deployment gate, trojan scan, attestations, drift, diff-train.

- :class:`TrojanScanner`: backdoor scan without trigger knowledge (vocabulary scan + inversion).
- :class:`GateSuite` / :func:`run_gate`: validation suite on a checkpoint, signed attestation.
- :class:`ReleasePolicy`, :func:`write_approval`: export enforcement and signed approvals.
- :class:`DriftMonitor`: output-distribution drift (PSI, KS, Jensen–Shannon), callback and CLI.
- :class:`DifferentialTraining`: K varied runs, flags anomalous-influence samples and odd runs.
"""

from secure_train.gate.attestation import GateRefused, ReleasePolicy, read_signed_json, write_approval
from secure_train.gate.diff_train import DifferentialTraining
from secure_train.gate.drift import DriftMonitor, DriftReport, load_inference_log
from secure_train.gate.suite import GateSuite, run_gate
from secure_train.gate.trojan import TriggerCandidate, TrojanScanner, TrojanScanResult

__all__ = [
    "DifferentialTraining",
    "DriftMonitor",
    "DriftReport",
    "GateRefused",
    "GateSuite",
    "ReleasePolicy",
    "TriggerCandidate",
    "TrojanScanResult",
    "TrojanScanner",
    "load_inference_log",
    "read_signed_json",
    "run_gate",
    "write_approval",
]
