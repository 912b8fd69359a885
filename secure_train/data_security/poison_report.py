"""What :func:`~secure_train.data_security.poison_detect.detect_poison` found, per record and per detector.

Example:
    >>> import torch
    >>> report = PoisonReport([7, 8, 9], torch.zeros(3), torch.tensor([False, True, False]))
    >>> report.flagged_ids, report.to_dict()["n_flagged"]
    ([8], 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["PoisonReport"]


@dataclass
class PoisonReport:
    """What :func:`detect_poison` found.

    Attributes:
        sample_ids: the records' ids, in input order.
        scores: combined suspicion per record (max over detectors of their normalized score).
        flags: combined decision per record (``combine`` rule over the detectors' flags).
        detectors: per detector ``{"scores": Tensor, "flags": Tensor, ...details}``.
        ngrams: the flagged n-grams of the ``ngram`` detector.
        lift_words: the flagged words of the ``lift`` detector.
    """

    sample_ids: list[int]
    scores: torch.Tensor
    flags: torch.Tensor
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    ngrams: list[dict[str, Any]] = field(default_factory=list)
    combine: str = "any"
    lift_words: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flagged_ids(self) -> list[int]:
        return [sid for sid, f in zip(self.sample_ids, self.flags.tolist(), strict=True) if f]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (flagged ids, n-grams, per-detector counts; no per-record scores)."""
        return {
            "n_records": len(self.sample_ids),
            "n_flagged": int(self.flags.sum()),
            "flagged_ids": self.flagged_ids,
            "combine": self.combine,
            "ngrams": self.ngrams,
            "lift_words": self.lift_words,
            "detectors": {
                name: {
                    "n_flagged": int(d["flags"].sum()),
                    **{k: v for k, v in d.items() if k not in ("scores", "flags", "deferred")},
                }
                for name, d in self.detectors.items()
            },
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Poisoned-sample detection: {int(self.flags.sum())} of {len(self.sample_ids)} records flagged",
            "",
        ]
        lines += ["| detector | flagged |", "|---|---|"]
        lines += [f"| {n} | {int(d['flags'].sum())} |" for n, d in self.detectors.items()]
        if self.ngrams:
            lines += ["", "| n-gram | label | z | count | purity | records |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {g['ngram']} | {g['label']} | {g['z']} | {g['count']} | {g['purity']} | {g['n_records']} |"
                for g in self.ngrams
            ]
        if self.lift_words:
            lines += ["", "| word | label | lift z | contradicting | purity | records |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {w['word']} | {w['label']} | {w['lift_z']} | {w['contra_count']} | {w['contra_purity']} "
                f"| {w['n_records']} |"
                for w in self.lift_words
            ]
        return "\n".join(lines) + "\n"
