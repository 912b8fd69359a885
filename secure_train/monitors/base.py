"""The one alert policy of the training monitors, and the robust running statistics they share.

Every monitor (:class:`~secure_train.monitors.LossSpikeMonitor`,
:class:`~secure_train.monitors.GradNormMonitor`,
:class:`~secure_train.monitors.ActivationMonitor`) measures something, feeds it to a
:class:`RunningStats`, and hands anomalies to the policy implemented here by
:class:`AnomalyMonitor`. The policy's ``action`` is one of:

- ``warn``: log through the Trainer's loggers, write an audit event, warn.
- ``skip``: as ``warn``, and the offending optimizer step is not applied: every parameter's
  ``.grad`` is set to ``None`` in ``on_before_optimizer_step``, so ``torch.optim`` optimizers
  (SGD, Adam, AdamW, ...) leave the parameter *and its optimizer state* (moments, step count)
  untouched. The step still counts in ``trainer.global_step`` and a step-wise LR scheduler
  still advances by one step.
- ``halt``: as ``skip``, then save a checkpoint to
  ``<log_dir>/monitor-halt/step=<N>.ckpt`` and stop cleanly (``trainer.should_stop``).
- ``rollback``: as ``skip``, and restore the last good weights and optimizer state kept in
  memory, then skip the next ``rollback_skip_batches`` optimizer steps (PaLM's recovery,
  in-process). Snapshots are taken every ``snapshot_every_n_steps`` steps; one becomes
  "good" only after the next snapshot interval passed without an anomaly, so a delayed
  symptom (a learning-rate spike shows up in the next step's loss) never restores the
  damage. The LR scheduler and the data order are not rewound.

Cheap when nothing is wrong: statistics and anomaly flags stay on the metrics' device; the
host reads one boolean per check. With ``action="warn"`` the check runs every
``check_every_n_steps`` steps (default 10), and the anomaly still reports the step where it
happened; the other actions must act before the optimizer step and check every step.

DDP: every rank takes the same decision (``strategy.reduce_boolean_decision``); monitors
reduce their statistics across ranks first, so the decision also agrees without it. Only
global rank zero writes audit events and files.

Example:
    >>> import torch
    >>> stats = RunningStats(window=8, warmup=4, k=3.0, log_space=True, min_ratio=2.0)
    >>> [bool(stats.update(torch.tensor([v]))[0]) for v in (1.0, 1.1, 0.9, 1.0, 1.05, 50.0, float("nan"))]
    [False, False, False, False, False, True, True]
"""

from __future__ import annotations

import copy
import math
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from secure_train.core.audit_log import get_audit_log
from secure_train.core.distributed import destroy_process_group_at_exit

if TYPE_CHECKING:
    from torch.optim import Optimizer

__all__ = ["ACTIONS", "AnomalyMonitor", "RunningStats"]

ACTIONS = ("warn", "skip", "halt", "rollback")
_TINY = 1e-12
_MAX_EVENTS_PER_CHECK = 8
_MAX_KEPT_ANOMALIES = 200


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
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 <= warmup <= window:
            raise ValueError(f"warmup must be in [0, window={window}], got {warmup}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if method not in ("mad", "std"):
            raise ValueError(f"method must be 'mad' or 'std', got {method!r}")
        if min_ratio < 1.0:
            raise ValueError(f"min_ratio must be >= 1, got {min_ratio}")
        if min_deviation < 0:
            raise ValueError(f"min_deviation must be >= 0, got {min_deviation}")
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
            center = ref.median(dim=0).values
            spread = 1.4826 * (ref - center).abs().median(dim=0).values
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


class _RunControl:
    """Per-Trainer state of the policy shared by all monitors: skips, snapshots, halting."""

    def __init__(self) -> None:
        self.skip_until_step = -1
        self.skipped_step = -1
        self.rolled_back_step = -1
        self.halt_step: int | None = None
        self.halt_saved = False
        self.last_anomaly_step = -1
        self.snapshot_step = -1
        self.good: dict[str, Any] | None = None
        self.pending: dict[str, Any] | None = None

    @staticmethod
    def _optimizers(trainer: pl.Trainer) -> list[Optimizer]:
        return list(trainer.optimizers)

    def skip_now(self, trainer: pl.Trainer) -> None:
        """Drop every gradient, so this optimizer step changes neither weights nor state."""
        for optimizer in self._optimizers(trainer):
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None
        self.skipped_step = trainer.global_step

    def maybe_skip(self, trainer: pl.Trainer) -> bool:
        if trainer.global_step < self.skip_until_step:
            self.skip_now(trainer)
            return True
        return self.skipped_step == trainer.global_step

    def take_snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return {
            "step": trainer.global_step,
            "model": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
            "optimizers": [copy.deepcopy(opt.state_dict()) for opt in self._optimizers(trainer)],
        }

    def after_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, every: int) -> None:
        """Rotate snapshots: the pending one becomes good once an interval passed cleanly."""
        step = trainer.global_step
        if step == self.snapshot_step or step % every != 0 or step <= self.skip_until_step:
            return
        if self.pending is not None and self.last_anomaly_step < self.pending["step"]:
            self.good = self.pending
        self.pending = self.take_snapshot(trainer, pl_module)
        self.snapshot_step = step

    def rollback(self, trainer: pl.Trainer, pl_module: pl.LightningModule, skip_batches: int) -> int | None:
        """Restore the last good snapshot and skip this step and the next ``skip_batches``."""
        if self.rolled_back_step == trainer.global_step:
            return self.good["step"] if self.good is not None else None
        snap = self.good
        restored = None
        if snap is not None:
            pl_module.load_state_dict(snap["model"])
            for opt, state in zip(self._optimizers(trainer), snap["optimizers"], strict=False):
                opt.load_state_dict(copy.deepcopy(state))
            restored = int(snap["step"])
        self.pending = None
        self.rolled_back_step = trainer.global_step
        self.skip_until_step = trainer.global_step + 1 + skip_batches
        self.skip_now(trainer)
        return restored

    def request_halt(self, trainer: pl.Trainer) -> None:
        if self.halt_step is None:
            self.halt_step = trainer.global_step
        trainer.should_stop = True

    def flush_halt(self, trainer: pl.Trainer, source: str) -> Path | None:
        """Save the halt checkpoint once (every rank calls this: the decision is shared)."""
        if self.halt_step is None or self.halt_saved:
            return None
        self.halt_saved = True
        path = Path(trainer.log_dir or trainer.default_root_dir) / "monitor-halt" / f"step={trainer.global_step}.ckpt"
        trainer.save_checkpoint(path)
        get_audit_log(trainer).record("monitor.halt", source=source, step=trainer.global_step, checkpoint=str(path))
        trainer.should_stop = True
        return path


_CONTROLS: weakref.WeakKeyDictionary[pl.Trainer, _RunControl] = weakref.WeakKeyDictionary()


def _control(trainer: pl.Trainer) -> _RunControl:
    if trainer not in _CONTROLS:
        _CONTROLS[trainer] = _RunControl()
    return _CONTROLS[trainer]


def _jsonable(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


class AnomalyMonitor(Callback):
    """Base of the monitors: the alert policy (see the module docstring).

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
        if action not in self.allowed_actions:
            raise ValueError(f"action must be one of {self.allowed_actions}, got {action!r}")
        for name, value in (
            ("check_every_n_steps", check_every_n_steps),
            ("snapshot_every_n_steps", snapshot_every_n_steps),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if rollback_skip_batches < 0:
            raise ValueError(f"rollback_skip_batches must be >= 0, got {rollback_skip_batches}")
        self.action = action
        self.check_every_n_steps = check_every_n_steps
        self.rollback_skip_batches = rollback_skip_batches
        self.snapshot_every_n_steps = snapshot_every_n_steps
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
        ctl = _control(trainer)
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
        return _control(trainer).maybe_skip(trainer)

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        destroy_process_group_at_exit()  # the last cross-rank decision comes right before exit

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.action == "rollback":
            ctl = _control(trainer)
            if ctl.good is None:
                ctl.good = ctl.take_snapshot(trainer, pl_module)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        ctl = _control(trainer)
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
