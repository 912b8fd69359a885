"""Activation statistics of selected modules, sampled on an interval, against an early baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle
from typing_extensions import override

from secure_train.core.errors import ConfigError
from secure_train.core.require import config_errors, require_in_range, require_int
from secure_train.monitors.base import AnomalyMonitor, RunningStats

__all__ = ["ActivationMonitor"]

_STATS = ("mean", "std", "max_abs", "kurtosis")
_CHECKED = (1, 2, 3)  # std, max_abs, kurtosis: positive, compared as ratios to the baseline


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return getattr(output, "last_hidden_state", None)


def default_blocks(module: torch.nn.Module) -> list[str]:
    """Names of the transformer blocks: the children of the longest ``ModuleList`` of one class."""
    best: tuple[int, str, torch.nn.ModuleList] | None = None
    for name, child in module.named_modules():
        if isinstance(child, torch.nn.ModuleList) and len(child) > 0:
            if len({type(c) for c in child}) == 1 and (best is None or len(child) > best[0]):
                best = (len(child), name, child)
    if best is None:
        return []
    return [f"{best[1]}.{i}" for i in range(best[0])]


class ActivationMonitor(AnomalyMonitor):
    """Mean, std, max-abs and kurtosis of module outputs on sampling steps, against a baseline.

    Forward hooks are attached in ``on_train_batch_start`` of every
    ``sample_every_n_steps``-th step and removed in ``on_before_optimizer_step`` of the same
    step, so other steps run without hooks. The first ``baseline_samples`` samples (from step
    ``baseline_after_steps`` on) form the baseline; afterwards a layer's std, max-abs or
    kurtosis outside ``[baseline / band, baseline * band]`` (exploding, dead, drifting), or
    any non-finite statistic, is an anomaly. Statistics are averaged over DDP ranks.

    Log keys on sampling steps: ``activation/<module>/{mean,std,max_abs,kurtosis}``.

    Args:
        modules: module names (``pl_module.named_modules()``); default: each transformer block
            (children of the longest ``ModuleList`` whose items share a class).
        sample_every_n_steps: sampling interval.
        baseline_samples: samples averaged (median) into the baseline.
        baseline_after_steps: first step that may enter the baseline (skip the chaotic start).
        band: allowed ratio to the baseline.
        action / rollback_skip_batches / snapshot_every_n_steps: the alert policy, see
            :class:`~secure_train.monitors.base.AnomalyMonitor` (checks run on sampling steps).

    Example:
        >>> monitor = ActivationMonitor(sample_every_n_steps=50, band=20.0)
        >>> monitor.metric_names
        []
    """

    def __init__(
        self,
        *,
        modules: Sequence[str] | None = None,
        sample_every_n_steps: int = 25,
        baseline_samples: int = 4,
        baseline_after_steps: int = 50,
        band: float = 10.0,
        action: str = "warn",
        rollback_skip_batches: int = 10,
        snapshot_every_n_steps: int = 50,
    ) -> None:
        with config_errors(self):  # the policy's own checks, as ConfigError
            super().__init__(
                action=action,
                check_every_n_steps=1,
                rollback_skip_batches=rollback_skip_batches,
                snapshot_every_n_steps=snapshot_every_n_steps,
            )
        require_int(self, "sample_every_n_steps", sample_every_n_steps, minimum=1)
        require_int(self, "baseline_samples", baseline_samples, minimum=1)
        require_int(self, "baseline_after_steps", baseline_after_steps, minimum=0)
        require_in_range(self, "band", band, "(1, inf)")
        if modules is not None and (isinstance(modules, str) or not list(modules)):
            name = type(self).__name__
            raise ConfigError(f"{name}: modules must be a non-empty list of module names, got {modules!r}")
        self.modules = list(modules) if modules is not None else None
        self.sample_every_n_steps = sample_every_n_steps
        self.baseline_samples = baseline_samples
        self.baseline_after_steps = baseline_after_steps
        self.band = band
        self.stats = RunningStats(
            window=baseline_samples,
            warmup=baseline_samples,
            k=0.0,
            log_space=True,
            min_ratio=band,
            two_sided=True,
            freeze=True,
        )
        self.module_names: list[str] = []
        self._handles: list[RemovableHandle] = []
        self._acc: dict[str, torch.Tensor] = {}
        self._calls: dict[str, int] = {}
        self.last_stats: torch.Tensor | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(action=self.action, modules=self.modules, band=self.band)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        available = dict(pl_module.named_modules())
        names = self.modules if self.modules is not None else default_blocks(pl_module)
        missing = [n for n in names if n not in available]
        if missing:
            raise ConfigError(
                f"{type(self).__name__}: modules: no module named {missing[0]!r} in {type(pl_module).__name__}"
            )
        if not names:
            raise ConfigError(f"{type(self).__name__}: modules: found no transformer blocks; name the modules to watch")
        self.module_names = list(names)
        self.metric_names = [f"{n}/{s}" for n in self.module_names for s in _STATS]

    def _hook(self, name: str) -> Any:
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            t = _first_tensor(output)
            if t is None:
                return
            t = t.detach().float()
            mean = t.mean()
            centered = t - mean
            var = centered.pow(2).mean()
            kurt = centered.pow(4).mean() / var.clamp_min(1e-12).pow(2)
            row = torch.stack([mean, var.sqrt(), t.abs().max(), kurt])
            self._acc[name] = row if name not in self._acc else self._acc[name] + row
            self._calls[name] = self._calls.get(name, 0) + 1

        return hook

    def _is_sampling_step(self, trainer: pl.Trainer) -> bool:
        return trainer.global_step % self.sample_every_n_steps == 0

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._handles or not self._is_sampling_step(trainer) or not self.module_names:
            return
        modules = dict(pl_module.named_modules())
        self._handles = [modules[n].register_forward_hook(self._hook(n)) for n in self.module_names]

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        self.policy_before_step(trainer)
        if not self._handles:
            return
        self._remove_hooks()
        if len(self._acc) != len(self.module_names):
            self._acc, self._calls = {}, {}
            return
        stats = torch.stack([self._acc[n] / self._calls[n] for n in self.module_names])  # (L, 4)
        self._acc, self._calls = {}, {}
        if trainer.world_size > 1:
            stats = trainer.strategy.reduce(stats, reduce_op="mean")
        self.last_stats = stats.detach()
        if trainer.loggers:
            flat = stats.reshape(-1).tolist()
            for logger in trainer.loggers:
                logger.log_metrics(
                    {f"activation/{m}": v for m, v in zip(self.metric_names, flat, strict=True)},
                    step=trainer.global_step,
                )
        bad = ~torch.isfinite(stats)
        threshold = torch.full_like(stats, float("inf"))
        if trainer.global_step >= self.baseline_after_steps:
            bad_checked, thr_checked = self.stats.update(stats[:, list(_CHECKED)].reshape(-1))
            bad[:, list(_CHECKED)] |= bad_checked.view(-1, len(_CHECKED))
            threshold[:, list(_CHECKED)] = thr_checked.view(-1, len(_CHECKED))
        self.stage(trainer.global_step, bad.reshape(-1), stats.reshape(-1), threshold.reshape(-1))
        self.resolve(trainer, pl_module, before_step=True)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._remove_hooks()
        super().on_train_end(trainer, pl_module)

    @property
    def baseline(self) -> torch.Tensor | None:
        """The baseline's ``(layers, 3)`` std / max-abs / kurtosis, once captured."""
        cs = self.stats.center_spread() if self.stats.warm else None
        return None if cs is None else cs[0].exp().view(-1, len(_CHECKED))
