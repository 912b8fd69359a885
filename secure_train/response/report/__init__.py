"""Per-run security report: what was defended, what was not, and whether the evidence holds.

``secure-train report RUN_DIR [RUN_B] [--public-key PUB]`` writes ``report.html``
(self-contained), ``report.md`` and ``report.json``.

- :class:`RunEvidence`: the run directory's evidence, verified (audit chain and signed head,
  checkpoint signatures, audit trail per checkpoint, gate verdicts by digest).
- :class:`SecurityReport`: controls present and absent, framework mapping, anomalies, plots.
- :class:`ReportRenderer`: HTML and Markdown for one run or two side by side.
- :class:`ControlCatalog`: the OWASP / MITRE ATLAS / NIST AI RMF mapping (``frameworks.json``).
"""

from secure_train.response.report.builder import SecurityReport
from secure_train.response.report.catalog import ControlCatalog
from secure_train.response.report.checkpoints import CheckpointStatus
from secure_train.response.report.evidence import RunEvidence
from secure_train.response.report.metrics import MetricLog
from secure_train.response.report.render import ReportRenderer
from secure_train.response.report.svg import SvgChart

__all__ = [
    "CheckpointStatus",
    "ControlCatalog",
    "MetricLog",
    "ReportRenderer",
    "RunEvidence",
    "SecurityReport",
    "SvgChart",
]
