"""Retired: per-sample loss trajectories do not find poisoned samples (kept as a measured negative result).

:class:`SampleLossMonitor` is no longer exported from :mod:`secure_train.monitors`, the
recipes or the README, and constructing it emits a :class:`FutureWarning`. It stays importable
from this module only so that ``benchmarks/monitor_detection.py --parts d`` can reproduce why
it was retired: on the backdoor yardstick (tiny BERT, synthetic corpus, BadNets 1 % and 10 %)
its flags had precision <= 0.05 and recall <= 0.01, and dropping them did not lower ASR; with
MiniLM-L6 on SST-2 the poisoned samples kept a *higher* relative loss (``high`` score AUC
0.895 at 1 %, 0.70 at 10 %) but precision at the poison count stayed 0.07-0.11. The premise
(poisoned samples are learned earlier than their peers, Anti-Backdoor Learning) did not hold.
Use ``secure-train scan`` / ``detect_poison`` on the data instead.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer
from typing_extensions import override

from secure_train.core.audit_log import get_audit_log
from secure_train.core.errors import ConfigError
from secure_train.core.robust_stats import robust_z
from secure_train.monitors.base import AnomalyMonitor
from secure_train.monitors.policy import run_control

__all__ = ["SampleLossMonitor"]


class SampleLossMonitor(AnomalyMonitor):
    """Retired (see the module docstring): track each sample's loss across epochs and flag suspects.

    Not a defense: it did not find BadNets poisoned samples (precision <= 0.05, recall <= 0.01).

    The module's ``training_step`` must return ``{"loss", "per_sample_loss", "sample_id"}``
    (as :class:`~secure_train.models.TextClassifier` and :class:`~secure_train.models.CausalLM`
    do). Per-sample losses stay on device during an epoch and reach the host once, at its
    end (gathered over DDP ranks). Each loss is made relative to its peers: ``log(loss)``
    minus the median ``log(loss)`` of the same batch and label (``batch["labels"]`` when it
    has one label per row), which removes the learning curve and the class imbalance. From
    epoch ``score_after_epochs`` on, two scores are computed over each sample's trajectory:

    - ``early``: minus the mean relative loss over all epochs: a sample that the model fits
      earlier and better than its peers (Anti-Backdoor Learning's signature of poisoned
      samples);
    - ``high``: the mean relative loss over the last two epochs: a sample that stays hard
      (a flipped label).

    A sample is flagged when a score's robust z-score (median / MAD over all samples)
    exceeds ``k``; at most ``max_flag_fraction`` of the samples are flagged (the highest z).
    The ranked list goes to ``output`` (JSON, global rank zero), a ``monitor.suspects``
    audit event names the top ones, and the alert policy (``warn`` or ``halt``) runs. With
    ``drop_flagged=True`` flagged samples' rows are removed from later batches in
    ``on_train_batch_start`` (dict batches whose tensors have one row per sample); a batch
    with nothing left is trained on but its optimizer step is skipped.

    Log keys: ``sample_loss/flagged`` and ``sample_loss/dropped`` at each epoch end.

    Args:
        score_after_epochs: first epoch count at which samples are scored (>= 1).
        k: robust z-score above which a sample is flagged.
        max_flag_fraction: most samples flagged, as a share of those seen.
        kinds: which scores flag samples: ``("early",)`` (default), ``("high",)`` or both.
            ``high`` is opt-in: until a model converges, hard clean samples also stay high
            (7-15% of a tiny-BERT synthetic run flagged after two epochs).
        drop_flagged: remove flagged samples from later epochs.
        output: suspect list path; default ``<log_dir>/suspects.json``.
        top_n: suspects named in the audit event.
        action: ``warn`` or ``halt``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", FutureWarning)
        ...     monitor = SampleLossMonitor(score_after_epochs=2, drop_flagged=True)
        >>> monitor.flagged_ids
        set()
    """

    allowed_actions = ("warn", "halt")

    def __init__(
        self,
        *,
        score_after_epochs: int = 2,
        k: float = 3.5,
        max_flag_fraction: float = 0.2,
        kinds: tuple[str, ...] | list[str] = ("early",),
        drop_flagged: bool = False,
        output: str | None = None,
        top_n: int = 20,
        action: str = "warn",
    ) -> None:
        warnings.warn(
            "SampleLossMonitor is retired: it does not detect poisoned samples (precision <= 0.05, recall <= 0.01 "
            "on BadNets at 1 % and 10 %); see benchmarks/monitor_detection.py --parts d",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(action=action, check_every_n_steps=1)
        if score_after_epochs < 1:
            raise ConfigError(f"score_after_epochs must be >= 1, got {score_after_epochs}")
        if k <= 0:
            raise ConfigError(f"k must be > 0, got {k}")
        if not 0.0 < max_flag_fraction <= 1.0:
            raise ConfigError(f"max_flag_fraction must be in (0, 1], got {max_flag_fraction}")
        bad_kinds = [x for x in kinds if x not in ("early", "high")]
        if not kinds or bad_kinds:
            raise ConfigError(f"kinds must be a non-empty subset of ('early', 'high'), got {tuple(kinds)!r}")
        self.score_after_epochs = score_after_epochs
        self.k = k
        self.max_flag_fraction = max_flag_fraction
        self.kinds = tuple(kinds)
        self.drop_flagged = drop_flagged
        self.output = output
        self.top_n = top_n
        self.trajectories: dict[int, list[float]] = {}
        self.losses: dict[int, list[float]] = {}
        self.suspects: list[dict[str, Any]] = []
        self.flagged_ids: set[int] = set()
        self.epochs_seen = 0
        self.dropped_rows = 0
        self._rows: list[torch.Tensor] = []
        self._flag_tensor: torch.Tensor | None = None
        self._skip_step = -1
        self._warned_outputs = False

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(k=self.k, kinds=self.kinds, score_after_epochs=self.score_after_epochs)

    # -- collecting -------------------------------------------------------------------------
    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not (self.drop_flagged and self.flagged_ids and isinstance(batch, dict) and "sample_id" in batch):
            return
        ids = batch["sample_id"]
        if self._flag_tensor is None or self._flag_tensor.device != ids.device:
            self._flag_tensor = torch.tensor(sorted(self.flagged_ids), dtype=ids.dtype, device=ids.device)
        keep = ~torch.isin(ids, self._flag_tensor)
        n_keep = int(keep.sum())  # one sync per batch, only while dropping
        n = ids.shape[0]
        if n_keep == n:
            return
        self.dropped_rows += n - n_keep
        if n_keep == 0:
            self._skip_step = trainer.global_step
            return
        for key, value in list(batch.items()):
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
                batch[key] = value[keep]

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        self.policy_before_step(trainer)
        if self._skip_step == trainer.global_step:
            run_control(trainer).skip_now(trainer)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._skip_step == trainer.global_step - 1:
            return
        if not (isinstance(outputs, dict) and "per_sample_loss" in outputs and "sample_id" in outputs):
            if not self._warned_outputs:
                self._warned_outputs = True
                from lightning.pytorch.utilities import rank_zero_warn

                rank_zero_warn("SampleLossMonitor: training_step returns no per_sample_loss / sample_id; idle")
            return
        losses = outputs["per_sample_loss"].detach().reshape(-1).double()
        ids = outputs["sample_id"].detach().reshape(-1).to(losses.device).double()
        labels = batch.get("labels") if isinstance(batch, dict) else None
        if isinstance(labels, torch.Tensor) and labels.shape == ids.shape:
            lab = labels.detach().to(losses.device).double()
        else:
            lab = torch.full_like(losses, -1.0)
        step = torch.full_like(losses, float(trainer.global_step))
        self._rows.append(torch.stack([ids, losses, lab, step], dim=1))

    def _gather(self, trainer: pl.Trainer, rows: torch.Tensor) -> torch.Tensor:
        if trainer.world_size <= 1:
            return rows
        n = torch.tensor([rows.shape[0]], device=rows.device)
        sizes = trainer.strategy.all_gather(n).reshape(-1)
        width = int(sizes.max())
        padded = torch.zeros(width, rows.shape[1], dtype=rows.dtype, device=rows.device)
        padded[: rows.shape[0]] = rows
        gathered = trainer.strategy.all_gather(padded)
        return torch.cat([gathered[r, : int(s)] for r, s in enumerate(sizes.tolist())])

    @staticmethod
    def relative_losses(rows: torch.Tensor) -> dict[int, tuple[float, float]]:
        """``sample_id -> (mean relative log-loss, mean loss)`` of one epoch's ``(id, loss, label, step)`` rows."""
        ids, losses, labels, steps = rows.T
        logl = losses.clamp_min(1e-8).log()
        rel = torch.zeros_like(logl)
        keys = steps * 1e6 + labels
        order = torch.argsort(keys)
        uniq, counts = torch.unique_consecutive(keys[order], return_counts=True)
        start = 0
        for c in counts.tolist():
            idx = order[start : start + c]
            rel[idx] = logl[idx] - logl[idx].median()
            start += c
        out: dict[int, list[float]] = {}
        for sid, r, loss in zip(ids.long().tolist(), rel.tolist(), losses.tolist(), strict=True):
            acc = out.setdefault(sid, [0.0, 0.0, 0.0])
            acc[0] += r
            acc[1] += loss
            acc[2] += 1
        return {sid: (a[0] / a[2], a[1] / a[2]) for sid, a in out.items()}

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._rows:
            return
        rows = self._gather(trainer, torch.cat(self._rows)).cpu()
        self._rows = []
        for sid, (rel, loss) in self.relative_losses(rows).items():
            self.trajectories.setdefault(sid, []).append(rel)
            self.losses.setdefault(sid, []).append(loss)
        self.epochs_seen += 1
        new: set[int] = set()
        if self.epochs_seen >= self.score_after_epochs:
            new = self._score()
        for logger in trainer.loggers:
            logger.log_metrics(
                {"sample_loss/flagged": float(len(self.flagged_ids)), "sample_loss/dropped": float(self.dropped_rows)},
                step=trainer.global_step,
            )
        if new:
            self._report(trainer, pl_module, new)

    def _score(self) -> set[int]:
        ids = [sid for sid, traj in self.trajectories.items() if len(traj) >= min(self.score_after_epochs, 2)]
        if len(ids) < 10:
            return set()
        candidates: list[tuple[float, int, str, float]] = []
        trajs = [self.trajectories[s] for s in ids]
        scores = {
            "early": torch.tensor([-sum(t) / len(t) for t in trajs], dtype=torch.float64),
            "high": torch.tensor([sum(t[-2:]) / len(t[-2:]) for t in trajs], dtype=torch.float64),
        }
        for kind in self.kinds:
            z = robust_z(scores[kind], floor=1e-6)
            for i in torch.nonzero(z > self.k).reshape(-1).tolist():
                candidates.append((float(z[i]), ids[i], kind, float(scores[kind][i])))
        candidates.sort(reverse=True)
        limit = max(1, int(self.max_flag_fraction * len(ids)))
        chosen: dict[int, dict[str, Any]] = {}
        for z_value, sid, kind, score in candidates:
            if sid not in chosen and len(chosen) < limit:
                chosen[sid] = {
                    "sample_id": sid,
                    "kind": kind,
                    "z": round(z_value, 4),
                    "score": round(score, 6),
                    "losses": [round(x, 6) for x in self.losses[sid]],
                }
        # Samples already dropped stay flagged: they have no later epochs to be scored on.
        kept = [s for s in self.suspects if s["sample_id"] not in chosen and s["sample_id"] in self.flagged_ids]
        self.suspects = sorted([*chosen.values(), *kept], key=lambda s: -s["z"])
        before = set(self.flagged_ids)
        self.flagged_ids = before | set(chosen)
        self._flag_tensor = None
        return self.flagged_ids - before

    def _output_path(self, trainer: pl.Trainer) -> Path:
        if self.output is not None:
            return Path(self.output)
        return Path(trainer.log_dir or trainer.default_root_dir) / "suspects.json"

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule, new: set[int]) -> None:
        path = self._output_path(trainer)
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            doc = {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                "num_samples": len(self.trajectories),
                "k": self.k,
                "suspects": self.suspects,
            }
            path.write_text(json.dumps(doc, indent=1))
        top = [s["sample_id"] for s in self.suspects[: self.top_n]]
        get_audit_log(trainer).record(
            "monitor.suspects",
            source=self.monitor_name,
            step=trainer.global_step,
            epoch=trainer.current_epoch,
            flagged=len(self.flagged_ids),
            new=len(new),
            top_sample_ids=top,
            path=str(path),
            drop=self.drop_flagged,
        )
        z_values = [s["z"] for s in self.suspects if s["sample_id"] in new]
        event = {"metric": "suspects", "value": float(len(new)), "threshold": self.k}
        self.raise_anomaly(
            trainer,
            pl_module,
            trainer.global_step,
            [event],
            before_step=False,
            extra={"max_z": max(z_values) if z_values else math.nan},
        )
        run_control(trainer).flush_halt(trainer, self.monitor_name)  # no batch end follows an epoch end

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "trajectories": {str(k): v for k, v in self.trajectories.items()},
            "losses": {str(k): v for k, v in self.losses.items()},
            "suspects": self.suspects,
            "flagged_ids": sorted(self.flagged_ids),
            "epochs_seen": self.epochs_seen,
            "dropped_rows": self.dropped_rows,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.trajectories = {int(k): list(v) for k, v in state_dict["trajectories"].items()}
        self.losses = {int(k): list(v) for k, v in state_dict["losses"].items()}
        self.suspects = list(state_dict["suspects"])
        self.flagged_ids = set(state_dict["flagged_ids"])
        self.epochs_seen = int(state_dict["epochs_seen"])
        self.dropped_rows = int(state_dict.get("dropped_rows", 0))
        self._flag_tensor = None
