"""Empirical privacy audit in one training run (Steinke, Nasr & Jagielski, NeurIPS 2023).

``m`` canaries are drawn; each is put in the training set independently with probability
1/2 (:func:`include_half`). After training, every canary gets a membership score (e.g. its
negative loss: members are fit better). A guesser calls the ``k`` highest-scored canaries
"in" and the ``k`` lowest "out" and abstains on the rest. If training is ε-DP, the number of
correct guesses among ``r = 2k`` is stochastically dominated by ``Binomial(r, e^ε / (1 + e^ε))``
(their Theorem 3.1 with δ = 0; the δ term is left out here), so the one-sided Clopper-Pearson
lower bound ``p_lo`` on the guess accuracy gives the empirical lower bound
``ε >= log(p_lo / (1 - p_lo))``. :func:`canary_audit` scans several ``k`` and splits the
confidence budget between them (Bonferroni), so the reported bound keeps its confidence.

It also reports the membership-inference AUC, the TPR at low FPR, and the classic
threshold bound ``ε >= log(TPR_lo / FPR_hi)`` with Clopper-Pearson intervals.

A bound above the claimed ε would mean the DP implementation or its accounting is wrong; a
bound far below it is expected (one run, a weak loss-based attack): the audit only
refutes, it never certifies.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from scipy.stats import beta as beta_dist
from torchmetrics.functional.classification import binary_auroc, binary_roc

from secure_train.core.errors import DataError
from secure_train.core.require import require_in_range, require_non_empty

__all__ = ["AuditResult", "canary_audit", "empirical_epsilon", "include_half"]

T = TypeVar("T")


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`canary_audit`.

    Attributes:
        num_canaries: m; ``num_included`` of them were trained on.
        auc: ROC AUC of the score as a membership test (0.5: no signal).
        tpr_at_fpr: TPR at FPR 0.1 / 0.01 / 0.001 (``{"0.1": ...}``).
        epsilon_lower: one-run empirical ε lower bound (``confidence``), 0 when nothing is shown.
        guesses / correct: the ``r`` guesses and correct ones at the ``k`` that gave the bound.
        epsilon_threshold: ``log(TPR_lo / FPR_hi)`` lower bound (Clopper-Pearson), best threshold.
    """

    num_canaries: int
    num_included: int
    auc: float
    tpr_at_fpr: dict[str, float]
    epsilon_lower: float
    guesses: int
    correct: int
    epsilon_threshold: float
    confidence: float
    per_k: list[dict[str, float]] = field(default_factory=list)

    def as_row(self) -> dict[str, float | int]:
        return {
            "canaries": self.num_canaries,
            "AUC": self.auc,
            "TPR@FPR=0.1": self.tpr_at_fpr["0.1"],
            "TPR@FPR=0.01": self.tpr_at_fpr["0.01"],
            "eps_lower_one_run": self.epsilon_lower,
            "guesses": self.guesses,
            "correct": self.correct,
            "eps_lower_threshold": self.epsilon_threshold,
        }


def include_half(items: Sequence[T], seed: int = 0) -> tuple[list[T], torch.Tensor]:
    """Each item independently with probability 1/2: ``(included items, boolean mask over items)``.

    Example:
        >>> chosen, mask = include_half(list(range(1000)), seed=0)
        >>> 430 < len(chosen) < 570, int(mask.sum()) == len(chosen)
        (True, True)
    """
    rng = random.Random(seed)
    mask = torch.tensor([rng.random() < 0.5 for _ in items], dtype=torch.bool)
    return [it for it, m in zip(items, mask.tolist(), strict=True) if m], mask


def _cp_lower(successes: int, trials: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower bound on a binomial proportion at level ``1 - alpha``."""
    if successes <= 0:
        return 0.0
    return float(beta_dist.ppf(alpha, successes, trials - successes + 1))


def _cp_upper(successes: int, trials: int, alpha: float) -> float:
    if successes >= trials:
        return 1.0
    return float(beta_dist.ppf(1 - alpha, successes + 1, trials - successes))


def empirical_epsilon(correct: int, guesses: int, confidence: float = 0.95) -> float:
    """ε lower bound from ``correct`` of ``guesses`` membership guesses (one-run audit, δ = 0).

    Example:
        >>> round(empirical_epsilon(95, 100), 2)  # 95 % right: clearly not 1-DP
        2.17
        >>> empirical_epsilon(50, 100)
        0.0
    """
    require_in_range("empirical_epsilon", "confidence", confidence, "(0, 1)")
    if guesses == 0:
        return 0.0
    p_lo = _cp_lower(correct, guesses, 1.0 - confidence)
    if p_lo <= 0.5:
        return 0.0
    if p_lo >= 1.0:
        return math.inf
    return math.log(p_lo / (1.0 - p_lo))


def canary_audit(
    scores: torch.Tensor,
    included: torch.Tensor,
    *,
    k_fractions: Sequence[float] = (0.02, 0.05, 0.1, 0.2, 0.5),
    confidence: float = 0.95,
) -> AuditResult:
    """Audit membership ``scores`` (higher = "more likely trained on") of canaries.

    Args:
        scores: one score per canary, e.g. ``-loss``.
        included: boolean, which canaries were in the training set (from :func:`include_half`).
        k_fractions: guess the top and bottom ``k = fraction * m / 2`` canaries, for each fraction;
            the confidence is split evenly between them.
        confidence: of every lower bound.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> inc = torch.rand(2000, generator=g) < 0.5
        >>> leaky = canary_audit(inc.float() + 0.3 * torch.randn(2000, generator=g), inc)
        >>> leaky.auc > 0.9 and leaky.epsilon_lower > 1 and leaky.epsilon_threshold > 1
        True
        >>> blind = canary_audit(torch.randn(2000, generator=g), inc)
        >>> abs(blind.auc - 0.5) < 0.05 and blind.epsilon_lower < 0.5
        True
    """
    require_in_range("canary_audit", "confidence", confidence, "(0, 1)")
    require_non_empty("canary_audit", "k_fractions", k_fractions)
    for fraction in k_fractions:
        require_in_range("canary_audit", "k_fractions", fraction, "(0, 1]")
    scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
    included = torch.as_tensor(included, dtype=torch.bool).flatten()
    if scores.shape != included.shape:
        raise DataError(f"canary_audit: scores has {scores.numel()} entries but included has {included.numel()}")
    m = scores.numel()
    n_in = int(included.sum())
    if n_in == 0 or n_in == m:
        raise DataError("canary_audit: included must mark some canaries in and some out")
    target = included.long()
    auc = float(binary_auroc(scores.float(), target))
    fpr, tpr, _ = binary_roc(scores.float(), target)
    tpr_at = {}
    for level in (0.1, 0.01, 0.001):
        ok = fpr <= level
        tpr_at[str(level)] = float(tpr[ok].max()) if ok.any() else 0.0

    alpha = (1.0 - confidence) / len(k_fractions)
    order = torch.argsort(scores, descending=True)
    best = (0.0, 0, 0)
    per_k = []
    for frac in k_fractions:
        k = max(1, int(frac * m / 2))
        top, bottom = order[:k], order[m - k :]
        correct = int(included[top].sum()) + int((~included[bottom]).sum())
        eps = empirical_epsilon(correct, 2 * k, 1.0 - alpha)
        per_k.append({"k": k, "guesses": 2 * k, "correct": correct, "eps_lower": eps})
        if eps > best[0] or best[1] == 0:
            best = (eps, 2 * k, correct)

    # threshold audit: eps >= log(TPR_lo / FPR_hi) at the best threshold (split over thresholds tried)
    n_out = m - n_in
    distinct = torch.unique(scores)  # raw scores: torchmetrics' thresholds are sigmoid-squashed for logits
    candidates = distinct[:: max(1, len(distinct) // 50)]
    a2 = (1.0 - confidence) / max(1, len(candidates))
    eps_thr = 0.0
    for t in candidates.tolist():
        pred = scores >= t
        tp, fp = int((pred & included).sum()), int((pred & ~included).sum())
        lo, hi = _cp_lower(tp, n_in, a2 / 2), _cp_upper(fp, n_out, a2 / 2)
        if lo > 0 and hi > 0:
            eps_thr = max(eps_thr, math.log(lo / hi))
    return AuditResult(
        num_canaries=m,
        num_included=n_in,
        auc=auc,
        tpr_at_fpr=tpr_at,
        epsilon_lower=best[0],
        guesses=best[1],
        correct=best[2],
        epsilon_threshold=eps_thr,
        confidence=confidence,
        per_k=per_k,
    )
