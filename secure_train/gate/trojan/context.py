"""Everything one trojan scan learns while it runs, kept out of the scanner.

:class:`ScanContext` is created by each :meth:`~secure_train.gate.trojan.TrojanScanner.scan`
call and passed to every stage (probe inputs, clean support, the per-label search, the
result), so a :class:`~secure_train.gate.trojan.TrojanScanner` holds only its settings: one
instance can scan several models, one after the other, and each scan starts from nothing.

Example:
    >>> import random
    >>> ctx = ScanContext(probe=None, records=[], rng=random.Random(0))  # the probe: a ProbeContext
    >>> ctx.candidates, ctx.baseline, ctx.per_label
    ([], [], {})
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from secure_train.core.records import TextRecord
from secure_train.gate.trojan.inputs import ProbeInputs
from secure_train.gate.trojan.probe import ProbeContext
from secure_train.gate.trojan.result import TriggerCandidate

__all__ = ["ScanContext"]


@dataclass
class ScanContext:
    """The state of one scan.

    Attributes:
        probe: the model under scan and the measurements on it.
        records: the labeled clean records.
        rng: the scan's random stream (inputs, insertion positions), seeded per scan.
        inputs: the probe inputs (search / held-out halves per target label), once built.
        support: ``(labels, vocabulary)`` clean support of each token, once computed.
        common: per token, how common it is in the clean records, in [0, 1] (1: in at least
            ``phrase_max_count`` records), once computed.
        candidates: trigger candidates found so far, over all target labels.
        baseline: flip rates of random vocabulary tokens (the benign baseline).
        per_label: best candidate's discounted held-out flip rate per target label searched so far.
    """

    probe: ProbeContext
    records: Sequence[TextRecord]
    rng: random.Random
    inputs: ProbeInputs = field(default_factory=ProbeInputs)
    support: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    common: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    candidates: list[TriggerCandidate] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    per_label: dict[int, float] = field(default_factory=dict)
