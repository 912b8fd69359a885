"""What a trojan scan found: the recovered trigger candidates and the verdict.

Example:
    >>> c = TriggerCandidate("cf", ("cf",), target_label=1, flip_rate=0.97, clean_support=0.0, words=1)
    >>> r = TrojanScanResult(0.97, 1, {0: 0.1, 1: 0.97}, 0.0, 0.05, [c], threshold=0.8, seconds=1.0)
    >>> r.backdoored, r.to_dict()["per_label"]
    (True, {'0': 0.1, '1': 0.97})
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TriggerCandidate", "TrojanScanResult"]


@dataclass(frozen=True)
class TriggerCandidate:
    """A recovered trigger: its text, tokens, the label it drives inputs to, and its flip rate."""

    text: str
    tokens: tuple[str, ...]
    target_label: int
    flip_rate: float
    clean_support: float
    words: int


@dataclass
class TrojanScanResult:
    """Outcome of :meth:`TrojanScanner.scan`.

    Attributes:
        backdoor_score: max of the best candidate's discounted held-out flip rate and the flip
            rate of a benign probe construction; 1.0 when the scan could not measure (fail closed).
        target_label: the suspected target label (the one with the highest score).
        per_label: best candidate's discounted held-out flip rate per label.
        baseline_median / baseline_p95: benign baseline: flip rates of the measured vocabulary.
        candidates: best candidates, highest flip rate first (single words and phrases).
        threshold: the decision threshold used for :attr:`backdoored`.
        seconds: wall time of the scan.
        measured: False when the scan could not measure; then ``problem`` says why.
        score_source: ``word``, ``construction:<name>`` or ``unmeasured``.
        construction_accuracy: clean accuracy of the model under each probe construction.
        construction_flip: per construction, share of correctly classified records flipped by it.
        construction: the construction the search used.
        evaluations: sequence evaluations the scan used (a gradient pass counts 3).
        stage_evaluations: evaluations per stage (inputs, vocabulary, word-growth,
            phrase-growth, inversion, measure).
        cut_stages: stages the evaluation budget cut short (their search is incomplete).
    """

    backdoor_score: float
    target_label: int
    per_label: dict[int, float]
    baseline_median: float
    baseline_p95: float
    candidates: list[TriggerCandidate]
    threshold: float
    seconds: float
    n_inputs: dict[int, int] = field(default_factory=dict)
    measured: bool = True
    problem: str = ""
    score_source: str = "word"
    construction_accuracy: dict[str, float] = field(default_factory=dict)
    construction_flip: dict[str, float] = field(default_factory=dict)
    construction: str = ""
    evaluations: int = 0
    stage_evaluations: dict[str, int] = field(default_factory=dict)
    cut_stages: list[str] = field(default_factory=list)

    @property
    def backdoored(self) -> bool:
        """True when the score reaches the threshold, or the scan could not measure."""
        return not self.measured or self.backdoor_score >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["backdoored"] = self.backdoored
        out["per_label"] = {str(k): v for k, v in self.per_label.items()}
        out["n_inputs"] = {str(k): v for k, v in self.n_inputs.items()}
        return out
