"""The base of every training monitor: measure, compare with robust statistics, apply the policy.

Every monitor (:class:`~secure_train.monitors.LossSpikeMonitor`,
:class:`~secure_train.monitors.GradNormMonitor`,
:class:`~secure_train.monitors.ActivationMonitor`) measures something, feeds it to a
:class:`~secure_train.monitors.stats.RunningStats`, and hands anomalies to the policy
(:mod:`secure_train.monitors.policy`: ``warn``, ``skip``, ``halt`` or ``rollback``) through
:class:`AnomalyMonitor`.

Cheap when nothing is wrong: statistics and anomaly flags stay on the metrics' device; the
host reads one boolean per check. With ``action="warn"`` the check runs every
``check_every_n_steps`` steps (default 10), and the anomaly still reports the step where it
happened; the other actions must act before the optimizer step and check every step.

DDP: every rank takes the same decision (``strategy.reduce_boolean_decision``); monitors
reduce their statistics across ranks first, so the decision also agrees without it. Only
global rank zero writes audit events and files.

Example:
    >>> monitor = AnomalyMonitor(action="skip")
    >>> monitor.action, monitor.num_anomalies
    ('skip', 0)
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from secure_train.core.audit_log import get_audit_log
from secure_train.core.distributed import destroy_process_group_at_exit
from secure_train.core.require import (
    config_errors,
    require_choice,
    require_in_range,
    require_int,
    require_positive,
)
from secure_train.monitors.policy import ACTIONS, run_control
from secure_train.monitors.stats import RunningStats

__all__ = ["ACTIONS", "AnomalyMonitor", "RunningStats"]

_MAX_EVENTS_PER_CHECK = 8
_MAX_KEPT_ANOMALIES = 200


def _jsonable(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


class AnomalyMonitor(Callback):
    """Base of the monitors: the alert policy (see :mod:`secure_train.monitors.policy`).

    Subclasses measure a ``(D,)`` vector of metrics named by ``metric_names``, get
    ``(anomalous, threshold)`` from a :class:`RunningStats` and call :meth:`stage`, then
    :meth:`resolve` before the optimizer step (or after it, where only ``warn`` / ``halt``
    make sense).

    Args:
        action: ``warn``, ``skip``, ``halt`` or ``rollback``.
        check_every_n_steps: with ``warn``, read the on-device anomaly flags every this many
            steps (the reported step is still exact); other actions check every step.
        rollback_skip_batches: optimizer steps skipped after a rollback.
        snapshot_every_n_steps: how often ``rollback`` keeps a snapshot in memory.

    Attributes:
        anomalies: the anomalies raised so far (most recent 200), as written to the audit log.
        num_anomalies: how many anomaly checks fired.
    """

    allowed_actions: tuple[str, ...] = ACTIONS

    def __init__(
        self,
        *,
        action: str = "warn",
        check_every_n_steps: int = 10,
        rollback_skip_batches: int = 10,
        snapshot_every_n_steps: int = 50,
    ) -> None:
        self.action = require_choice(self, "action", action, self.allowed_actions)
        self.check_every_n_steps = require_int(self, "check_every_n_steps", check_every_n_steps, minimum=1)
        self.rollback_skip_batches = require_int(self, "rollback_skip_batches", rollback_skip_batches, minimum=0)
        self.snapshot_every_n_steps = require_int(self, "snapshot_every_n_steps", snapshot_every_n_steps, minimum=1)
        self.anomalies: list[dict[str, Any]] = []
        self.num_anomalies = 0
        self.metric_names: list[str] = []
        self._p_step: torch.Tensor | None = None
        self._p_mask: torch.Tensor | None = None
        self._p_value: torch.Tensor | None = None
        self._p_threshold: torch.Tensor | None = None

    @property
    def monitor_name(self) -> str:
        return type(self).__name__

    def spike_stats(
        self, *, window: int, warmup: int, k: float, min_ratio: float, abs_max: float | None
    ) -> RunningStats:
        """Checked log-space statistics for a spike test (loss, gradient norm); kept as ``self.window`` etc.

        Bad settings raise :class:`~secure_train.core.errors.ConfigError` naming the monitor,
        e.g. ``LossSpikeMonitor: window must be an integer >= 1, got 0``.

        >>> stats = AnomalyMonitor().spike_stats(window=8, warmup=4, k=3.0, min_ratio=2.0, abs_max=None)
        >>> stats.window, stats.log_space
        (8, True)
        """
        with config_errors(self):  # RunningStats' own checks (warmup <= window) as ConfigError
            stats = RunningStats(
                window=require_int(self, "window", window, minimum=1),
                warmup=require_int(self, "warmup", warmup, minimum=0),
                k=require_in_range(self, "k", k, "[0, inf)"),
                log_space=True,
                min_ratio=require_in_range(self, "min_ratio", min_ratio, "[1, inf)"),
                abs_max=require_positive(self, "abs_max", abs_max, optional=True),
            )
        self.window, self.warmup, self.k, self.min_ratio, self.abs_max = window, warmup, k, min_ratio, abs_max
        return stats

    # -- staging on device ------------------------------------------------------------------
    def stage(self, step: int, bad: torch.Tensor, value: torch.Tensor, threshold: torch.Tensor) -> None:
        """Remember the first anomalous step since the last check, on device (no host sync)."""
        value = value.detach().reshape(-1).float()
        if self._p_step is None or self._p_mask is None or self._p_mask.shape != bad.shape:
            self._p_step = torch.full((), -1, dtype=torch.long, device=bad.device)
            self._p_mask = torch.zeros_like(bad)
            self._p_value = torch.zeros_like(value)
            self._p_threshold = torch.zeros_like(value)
        assert self._p_value is not None and self._p_threshold is not None  # noqa: S101 - narrow for mypy
        first = bad.any() & (self._p_step < 0)
        self._p_step = torch.where(first, step, self._p_step)
        self._p_mask = torch.where(first, bad, self._p_mask)
        self._p_value = torch.where(first, value, self._p_value)
        self._p_threshold = torch.where(first, threshold, self._p_threshold)

    def _due(self, trainer: pl.Trainer) -> bool:
        return self.action != "warn" or trainer.global_step % self.check_every_n_steps == 0

    def resolve(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, before_step: bool, force: bool = False
    ) -> bool:
        """Read the staged flags (one host sync), agree across ranks, and act. True if anomalous."""
        if self._p_step is None or not (force or self._due(trainer)):
            return False
        local_step = int(self._p_step.item())
        decision = trainer.strategy.reduce_boolean_decision(local_step >= 0, all=False)
        if not decision:
            return False
        events: list[dict[str, Any]] = []
        if local_step >= 0:
            assert self._p_mask is not None and self._p_value is not None and self._p_threshold is not None  # noqa: S101
            mask = self._p_mask.tolist()
            values = self._p_value.tolist()
            thresholds = self._p_threshold.tolist()
            for i, flagged in enumerate(mask):
                if flagged and len(events) < _MAX_EVENTS_PER_CHECK:
                    name = self.metric_names[i] if i < len(self.metric_names) else str(i)
                    events.append({"metric": name, "value": values[i], "threshold": thresholds[i]})
        else:
            events.append({"metric": "reported by another rank", "value": math.nan, "threshold": math.nan})
            local_step = trainer.global_step
        self._p_step = None
        self.raise_anomaly(trainer, pl_module, local_step, events, before_step=before_step)
        return True

    # -- the policy ---------------------------------------------------------------------------
    def raise_anomaly(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        step: int,
        events: list[dict[str, Any]],
        *,
        before_step: bool,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Apply the action, then audit and log each event; returns the action taken."""
        ctl = run_control(trainer)
        ctl.last_anomaly_step = max(ctl.last_anomaly_step, trainer.global_step)
        taken = self.action
        restored: int | None = None
        if self.action in ("skip", "halt", "rollback") and not before_step:
            taken = "halt" if self.action == "halt" else "warn"
        if taken == "skip":
            ctl.skip_now(trainer)
        elif taken == "halt":
            if before_step:
                ctl.skip_now(trainer)
            ctl.request_halt(trainer)
        elif taken == "rollback":
            restored = ctl.rollback(trainer, pl_module, self.rollback_skip_batches)
        self.num_anomalies += 1
        audit = get_audit_log(trainer)
        for event in events:
            payload = {
                "step": step,
                "monitor": self.monitor_name,
                "metric": event["metric"],
                "value": _jsonable(float(event["value"])),
                "threshold": _jsonable(float(event["threshold"])),
                "action": taken,
                **({"restored_step": restored} if taken == "rollback" else {}),
                **(extra or {}),
            }
            audit.record("monitor.anomaly", source=self.monitor_name, **payload)
            self.anomalies.append(payload)
            for logger in trainer.loggers:
                logger.log_metrics(
                    {f"anomaly/{self.monitor_name}/{event['metric']}": float(event["value"])}, step=trainer.global_step
                )
        del self.anomalies[:-_MAX_KEPT_ANOMALIES]
        first = events[0] if events else {"metric": "?", "value": math.nan, "threshold": math.nan}
        rank_zero_warn(
            f"{self.monitor_name}: anomaly at step {step}: {first['metric']}={first['value']:.4g} "
            f"(threshold {first['threshold']:.4g}); action: {taken}"
        )
        return taken

    # -- hooks every monitor shares -------------------------------------------------------------
    def policy_before_step(self, trainer: pl.Trainer) -> bool:
        """Apply pending rollback skips; True when this step is skipped."""
        return run_control(trainer).maybe_skip(trainer)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        destroy_process_group_at_exit()  # the last cross-rank decision comes right before exit

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.action == "rollback":
            ctl = run_control(trainer)
            if ctl.good is None:
                ctl.good = ctl.take_snapshot(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        ctl = run_control(trainer)
        if self.action == "rollback":
            ctl.after_step(trainer, pl_module, self.snapshot_every_n_steps)
        ctl.flush_halt(trainer, self.monitor_name)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.resolve(trainer, pl_module, before_step=False, force=True)

    # -- resume ---------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        """The anomalies so far and, for monitors with a ``stats`` :class:`RunningStats`, its window."""
        state: dict[str, Any] = {"num_anomalies": self.num_anomalies, "anomalies": list(self.anomalies)}
        stats = getattr(self, "stats", None)
        if isinstance(stats, RunningStats):
            state["stats"] = stats.state_dict()
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_anomalies = int(state_dict.get("num_anomalies", 0))
        self.anomalies = list(state_dict.get("anomalies", []))
        stats = getattr(self, "stats", None)
        if isinstance(stats, RunningStats) and "stats" in state_dict:
            stats.load_state_dict(state_dict["stats"])
