"""Planning a DP-SGD run: the steps the Trainer allows, the default δ, and the most steps a budget allows.

Example:
    >>> max_steps_within(1.0, accountant="rdp", noise_multiplier=1.0, sample_rate=0.01, delta=1e-5, limit=10_000)
    4
    >>> default_delta(1000) < 1 / 1000
    True
"""

from __future__ import annotations

import lightning.pytorch as pl
from opacus.accountants import create_accountant

__all__ = ["default_delta", "max_steps_within", "steps_from_trainer"]


def default_delta(num_samples: int) -> float:
    """``1 / N**1.1``: below ``1/N``, as DP requires."""
    return 1.0 / num_samples**1.1


def steps_from_trainer(trainer: pl.Trainer, steps_per_epoch: int) -> int | None:
    """The optimizer steps ``max_steps`` / ``max_epochs`` allow (the smaller), or ``None`` without a limit."""
    by_steps = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > 0 else None
    by_epochs = trainer.max_epochs * steps_per_epoch if trainer.max_epochs and trainer.max_epochs > 0 else None
    limits = [s for s in (by_steps, by_epochs) if s is not None]
    return min(limits) if limits else None


def max_steps_within(
    budget: float,
    *,
    accountant: str,
    noise_multiplier: float,
    sample_rate: float,
    delta: float,
    limit: int,
) -> int:
    """The most steps (up to ``limit``) whose ε at ``delta`` stays <= ``budget``.

    The search stops at ``limit`` (the Trainer's own limit: training never runs past it), since
    PRV accounting of many steps is slow (tens of seconds at 10k steps); RDP is not.
    """

    def eps(steps: int) -> float:
        if steps == 0:
            return 0.0
        acc = create_accountant(accountant)
        acc.history = [(noise_multiplier, sample_rate, steps)]
        return float(acc.get_epsilon(delta=delta))

    if noise_multiplier == 0:
        return 0
    hi = max(1, limit)
    if eps(hi) <= budget:
        return hi
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if eps(mid) <= budget else (lo, mid)
    return lo
