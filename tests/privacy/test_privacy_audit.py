"""One-run privacy audit: Clopper-Pearson bounds, AUC / TPR, validity on a mechanism of known ε."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binom

from secure_train.privacy import canary_audit, empirical_epsilon, include_half


def test_include_half_is_a_fair_coin_per_canary():
    chosen, mask = include_half(list(range(4000)), seed=3)
    assert abs(len(chosen) / 4000 - 0.5) < 0.03
    assert chosen == [i for i in range(4000) if mask[i]]
    assert include_half(list(range(50)), seed=3)[1].tolist() == include_half(list(range(50)), seed=3)[1].tolist()


def test_empirical_epsilon_is_the_clopper_pearson_inversion():
    correct, guesses = 80, 100
    eps = empirical_epsilon(correct, guesses, confidence=0.95)
    p = math.exp(eps) / (1 + math.exp(eps))
    # at the bound, seeing >= 80 correct of 100 has probability 5 % under Binomial(100, p)
    assert binom.sf(correct - 1, guesses, p) == pytest.approx(0.05, rel=1e-3)
    assert empirical_epsilon(50, 100) == 0.0 and empirical_epsilon(0, 0) == 0.0
    assert empirical_epsilon(90, 100) > eps > empirical_epsilon(70, 100)


@pytest.mark.parametrize("true_eps", [0.5, 2.0])
def test_bound_exceeds_a_known_epsilon_at_most_at_the_confidence_rate(true_eps):
    # randomized response: each canary's score tells its membership truthfully with probability
    # e^eps / (1 + e^eps), an eps-DP mechanism. A 95 % lower bound may exceed eps in <= 5 % of runs.
    p = math.exp(true_eps) / (1 + math.exp(true_eps))
    exceed = {"one_run": 0, "threshold": 0}
    bounds = []
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        inc = torch.rand(1000, generator=g) < 0.5
        truthful = torch.rand(1000, generator=g) < p
        scores = torch.where(truthful, inc, ~inc).float() + 1e-3 * torch.rand(1000, generator=g)
        result = canary_audit(scores, inc)
        exceed["one_run"] += result.epsilon_lower > true_eps
        exceed["threshold"] += result.epsilon_threshold > true_eps
        bounds.append(result.epsilon_lower)
    assert exceed["one_run"] <= 4 and exceed["threshold"] <= 4, exceed  # 10 % of 40, against an expected <= 2
    assert sum(bounds) / len(bounds) > 0.3 * true_eps  # and the audit has power


def test_audit_reports_auc_and_low_fpr_tpr():
    g = torch.Generator().manual_seed(0)
    inc = torch.rand(1000, generator=g) < 0.5
    perfect = canary_audit(inc.float() + 0.01 * torch.rand(1000, generator=g), inc)
    assert perfect.auc == pytest.approx(1.0) and perfect.tpr_at_fpr["0.01"] == pytest.approx(1.0)
    assert perfect.epsilon_lower > 3 and perfect.correct == perfect.guesses
    with pytest.raises(ValueError, match="some canaries in and some out"):
        canary_audit(torch.zeros(10), torch.ones(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="entries"):
        canary_audit(torch.zeros(10), torch.ones(9, dtype=torch.bool))
