"""The one anomaly policy of the training monitors: what an anomaly does to the run.

The policy's ``action`` is one of:

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

The state of the policy (pending skips, snapshots, the halt request) belongs to the Trainer, not
to a monitor: several monitors on one Trainer share one :class:`RunControl`
(:func:`run_control`), so two monitors flagging the same step skip it once and roll back once.

Example:
    >>> ACTIONS
    ('warn', 'skip', 'halt', 'rollback')
    >>> RunControl().skip_until_step
    -1
"""

from __future__ import annotations

import copy
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl

from secure_train.core.audit_log import get_audit_log

if TYPE_CHECKING:
    from torch.optim import Optimizer

__all__ = ["ACTIONS", "RunControl", "run_control"]

ACTIONS = ("warn", "skip", "halt", "rollback")


class RunControl:
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


_CONTROLS: weakref.WeakKeyDictionary[pl.Trainer, RunControl] = weakref.WeakKeyDictionary()


def run_control(trainer: pl.Trainer) -> RunControl:
    """The policy state of ``trainer``, shared by every monitor attached to it (created on first use)."""
    if trainer not in _CONTROLS:
        _CONTROLS[trainer] = RunControl()
    return _CONTROLS[trainer]
