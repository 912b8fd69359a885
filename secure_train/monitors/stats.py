"""Robust running statistics of a vector of metrics, kept on the metrics' device.

Every monitor feeds what it measures (a loss, gradient norms, activation statistics) to a
:class:`RunningStats` and hands the anomalies it reports to the policy of
:class:`~secure_train.monitors.base.AnomalyMonitor`.

Example:
    >>> import torch
    >>> stats = RunningStats(window=8, warmup=4, k=3.0, log_space=True, min_ratio=2.0)
    >>> [bool(stats.update(torch.tensor([v]))[0]) for v in (1.0, 1.1, 0.9, 1.0, 1.05, 50.0, float("nan"))]
    [False, False, False, False, False, True, True]
"""

from __future__ import annotations

import math
from typing import Any

import torch

from secure_train.core.errors import ConfigError
from secure_train.core.robust_stats import robust_center_spread

__all__ = ["RunningStats"]

_TINY = 1e-12


class RunningStats:
    """Robust running statistics of a vector of ``D`` metrics, kept on the metrics' device.

    A value is anomalous when it is not finite, exceeds ``abs_max``, or (after ``warmup``
    values) lies more than ``max(k * spread, floor)`` above the window's center (also below,
    when ``two_sided``). With ``method="mad"`` the center is the median and the spread
    ``1.4826 * MAD``; with ``"std"`` the mean and standard deviation. With ``log_space`` both
    are taken over ``log(value)`` (right for positive, heavy-tailed metrics such as a loss or
    a norm), and ``min_ratio`` gives the floor: a value must also be ``min_ratio`` times the
    center. Anomalous values are replaced by the center before they enter the window, so a
    spike does not raise its own threshold. ``freeze=True`` keeps the first ``warmup`` values
    as a fixed baseline.

    Args:
        window: number of recent values forming the reference.
        warmup: values seen before statistical anomalies can be raised.
        k: robust standard deviations from the center that count as anomalous.
        method: ``"mad"`` (median / MAD) or ``"std"`` (mean / standard deviation).
        log_space: compare ``log(value)``.
        min_ratio: with ``log_space``, the least ratio to the center that can be anomalous.
        min_deviation: without ``log_space``, the least absolute deviation that can be anomalous.
        two_sided: also flag values far below the center.
        abs_max: any value above this is anomalous, warm or not.
        freeze: stop updating once ``warmup`` values were seen (a baseline).

    Example:
        >>> stats = RunningStats(window=4, warmup=2, k=2.0, method="std")
        >>> bad, threshold = stats.update(torch.tensor([1.0, 5.0]))
        >>> bad.tolist()
        [False, False]
    """

    def __init__(
        self,
        *,
        window: int = 128,
        warmup: int = 20,
        k: float = 6.0,
        method: str = "mad",
        log_space: bool = False,
        min_ratio: float = 1.0,
        min_deviation: float = 0.0,
        two_sided: bool = False,
        abs_max: float | None = None,
        freeze: bool = False,
    ) -> None:
        if window < 1:
            raise ConfigError(f"window must be >= 1, got {window}")
        if not 0 <= warmup <= window:
            raise ConfigError(f"warmup must be in [0, window={window}], got {warmup}")
        if k < 0:
            raise ConfigError(f"k must be >= 0, got {k}")
        if method not in ("mad", "std"):
            raise ConfigError(f"method must be 'mad' or 'std', got {method!r}")
        if min_ratio < 1.0:
            raise ConfigError(f"min_ratio must be >= 1, got {min_ratio}")
        if min_deviation < 0:
            raise ConfigError(f"min_deviation must be >= 0, got {min_deviation}")
        self.window, self.warmup, self.k, self.method = window, warmup, k, method
        self.log_space, self.two_sided, self.abs_max, self.freeze = log_space, two_sided, abs_max, freeze
        self.min_ratio, self.min_deviation = min_ratio, min_deviation
        self.count = 0
        self._buf: torch.Tensor | None = None
        self._loaded: torch.Tensor | None = None

    @property
    def warm(self) -> bool:
        """Whether enough values were seen for statistical anomalies."""
        return self.count >= self.warmup

    def _floor(self) -> float:
        return math.log(self.min_ratio) if self.log_space else self.min_deviation

    def _ordered(self) -> torch.Tensor | None:
        """The stored values, oldest first (in the comparison space)."""
        if self._buf is None:
            return self._loaded
        n = min(self.count, self.window)
        if self.count <= self.window:
            return self._buf[:n]
        start = self.count % self.window
        return torch.cat([self._buf[start:], self._buf[:start]])

    def center_spread(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(center, spread)`` in the comparison space, or ``None`` before any value."""
        ref = self._loaded if self._buf is None else self._buf[: min(self.count, self.window)]
        if ref is None or ref.shape[0] == 0:
            return None
        if self.method == "mad":
            center, spread = robust_center_spread(ref, dim=0)
        else:
            center = ref.mean(dim=0)
            spread = ref.std(dim=0, unbiased=False)
        return center, spread

    def update(self, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check ``value`` (shape ``(D,)`` or scalar) and add it; no host sync.

        Returns:
            ``(anomalous, threshold)``: a bool tensor and the upper threshold in value units
            (``inf`` while warming up), both of shape ``(D,)``.
        """
        v = value.detach().reshape(-1).float()
        finite = torch.isfinite(v)
        x = torch.log(v.clamp_min(_TINY)) if self.log_space else v
        if self._buf is None:
            self._buf = torch.zeros(self.window, v.shape[0], device=v.device)
            if self._loaded is not None:
                loaded = self._loaded.to(v.device)
                self._buf[: loaded.shape[0]] = loaded
                self._loaded = None
        bad = ~finite
        if self.abs_max is not None:
            bad = bad | (v > self.abs_max)
        threshold = torch.full_like(v, math.inf)
        cs = self.center_spread() if self.count > 0 else None
        if cs is not None and self.warm:
            center, spread = cs
            dev = torch.clamp(self.k * spread, min=self._floor())
            upper = center + dev
            bad = bad | (finite & (x > upper))
            if self.two_sided:
                bad = bad | (finite & (x < center - dev))
            threshold = upper.exp() if self.log_space else upper
        if self.abs_max is not None:
            threshold = threshold.clamp(max=self.abs_max)
        if not (self.freeze and self.warm):
            if cs is not None:
                replacement = cs[0]
            else:
                replacement = torch.zeros_like(x)
            self._buf[self.count % self.window] = torch.where(bad | ~finite, replacement, x)
            self.count += 1
        return bad, threshold

    def state_dict(self) -> dict[str, Any]:
        ref = self._ordered()
        return {"count": self.count, "values": None if ref is None else ref.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = state.get("values")
        self._buf = None
        self._loaded = None if values is None else torch.as_tensor(values).float()
        # The stored values are the window, oldest first; the ring buffer restarts after them.
        self.count = 0 if self._loaded is None else int(self._loaded.shape[0])
