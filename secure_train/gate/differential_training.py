"""Differential training analysis: train K variants, compare them, flag samples and runs.

``vary="subset"`` partitions the training records into K folds (by a seeded shuffle) and trains
run ``k`` on every fold except ``k``: each sample is held out of exactly one run and seen by the
other K-1. For every sample it compares the loss of the run that did **not** see it (its
held-out loss) with the mean loss of the runs that **did** (its seen loss). The gap is the
sample's self-influence: how much training on it changed the model's view of it. A clean
sample is predicted about as well either way; a **label-flipped** sample is contradicted by
the runs that never saw it (high held-out loss) and fitted, if at all, only by memorization
(lower seen loss). The score is ``held_out + max(0, held_out - seen)``, turned into a robust
z-score (median / MAD); a sample is flagged when its z-score exceeds ``z_threshold`` and its
held-out loss exceeds ``min_held_out_loss`` (the unseeing runs give its label < 10%).

``vary="seed"`` trains K runs on all the data with different seeds; samples are scored by
their mean loss across runs (no held-out comparison is possible).

Runs are compared on the validation split: a run whose predictions agree with the other
runs' majority vote far less than the others do (robust z below ``-z_threshold``), or whose
accuracy is an outlier, is flagged (e.g. the one run whose data carried a concentrated poison).

Known limit: a backdoor whose poisoned samples are spread over every fold is learned by every
run, so a held-out poisoned sample is still predicted as its (target) label: backdoored
samples have a small gap and are flagged much less often than label flips (see
``benchmarks/diff_train.py``).

Example:
    >>> scores = DifferentialTraining.robust_z(torch.tensor([0.1, 0.2, 0.15, 0.12, 5.0]))
    >>> bool(scores[-1] > 4), bool(scores[0] < 4)
    (True, True)
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml

from secure_train.core import robust_stats
from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.safe_io import load_yaml_file

__all__ = ["DifferentialTraining"]


class _ExcludeIds:
    """Record transform dropping the held-out fold (applied after the recipe's own transforms)."""

    def __init__(self, ids: set[int]) -> None:
        self.ids = ids

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        return [r for r in records if r.sample_id not in self.ids]


class DifferentialTraining:
    """Train K variants of a recipe and flag samples with anomalous influence and runs that disagree.

    Args:
        runs: number of variants K (>= 2; subset mode holds out 1/K of the data per run).
        vary: ``"subset"`` (partitioned hold-out) or ``"seed"``.
        z_threshold: robust z-score above which a sample (or run) is flagged.
        seed: base seed (fold assignment and training).
        max_flag_fraction: never flag more than this share of the samples (highest scores first).
        min_held_out_loss: a flagged sample's held-out loss must also exceed this (default
            ``log 10``: the runs that never saw it give its label less than 10% probability).
    """

    def __init__(
        self,
        runs: int = 4,
        vary: str = "subset",
        *,
        z_threshold: float = 4.0,
        seed: int = 0,
        max_flag_fraction: float = 0.2,
        min_held_out_loss: float = math.log(10.0),
    ) -> None:
        if runs < 2:
            raise ConfigError(f"runs must be >= 2, got {runs}")
        if vary not in ("subset", "seed"):
            raise ConfigError(f"vary must be 'subset' or 'seed', got {vary!r}")
        if z_threshold <= 0:
            raise ConfigError(f"z_threshold must be > 0, got {z_threshold}")
        if not 0.0 < max_flag_fraction <= 1.0:
            raise ConfigError(f"max_flag_fraction must be in (0, 1], got {max_flag_fraction}")
        self.runs, self.vary, self.z_threshold, self.seed = runs, vary, z_threshold, seed
        self.max_flag_fraction = max_flag_fraction
        self.min_held_out_loss = min_held_out_loss

    @staticmethod
    def robust_z(x: torch.Tensor) -> torch.Tensor:
        """``(x - median) / (1.4826 * MAD)``, the spread floored at ``1e-3 * (1 + |median|)`` so
        constant data gives finite scores (:func:`~secure_train.core.robust_stats.robust_z`)."""
        return robust_stats.robust_z(x, floor=1e-3, relative_floor=1e-3)

    # -- training -------------------------------------------------------------------------
    def folds(self, records: Sequence[TextRecord]) -> list[set[int]]:
        ids = [r.sample_id for r in records]
        random.Random(self.seed).shuffle(ids)
        return [set(ids[k :: self.runs]) for k in range(self.runs)]

    def run(
        self,
        make_model: Callable[[], pl.LightningModule],
        make_data: Callable[[], Any],
        *,
        max_epochs: int = 4,
        trainer_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Train the variants and analyse them; returns the report dictionary.

        ``make_data()`` must return a fresh :class:`~secure_train.data.base.TextDataModule`.
        """
        base = make_data()
        train = list(base.load_records()["train"])
        val = list(base.load_records()["val"])
        folds = self.folds(train) if self.vary == "subset" else [set() for _ in range(self.runs)]
        losses = torch.zeros((self.runs, len(train)))
        preds = torch.zeros((self.runs, len(train)), dtype=torch.long)
        val_preds = torch.zeros((self.runs, len(val)), dtype=torch.long)
        runs_info = []
        for k in range(self.runs):
            pl.seed_everything(self.seed + (k if self.vary == "seed" else 0), verbose=False)
            dm = make_data()
            if self.vary == "subset":
                dm.transforms = [*dm.transforms, _ExcludeIds(folds[k])]
            model = make_model()
            kwargs = {
                "max_epochs": max_epochs,
                "accelerator": "cpu",
                "devices": 1,
                "logger": False,
                "enable_checkpointing": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "limit_val_batches": 0,
                "num_sanity_val_steps": 0,
                **(trainer_kwargs or {}),
            }
            trainer = pl.Trainer(**kwargs)
            trainer.fit(model, dm)
            losses[k], preds[k] = self._evaluate(model, dm, train)
            _, val_preds[k] = self._evaluate(model, dm, val)
            acc = float((val_preds[k] == torch.tensor([r.label for r in val])).float().mean())
            runs_info.append({"run": k, "held_out": len(folds[k]), "n_train": len(dm.load_records()["train"]),
                              "val_acc": round(acc, 4)})  # fmt: skip
        return self.analyse(train, val, folds, losses, preds, val_preds, runs_info)

    @torch.no_grad()
    def _evaluate(self, model: Any, dm: Any, records: list[TextRecord]) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        losses, preds = [], []
        for batch in dm.loader_for(records):
            batch = {k: v.to(model.device) for k, v in batch.items()}
            logits = model(batch)
            losses.append(model.per_sample_loss(batch, logits).float().cpu())
            preds.append(logits.argmax(-1).cpu())
        model.train()
        return torch.cat(losses), torch.cat(preds)

    def run_recipe(self, config: str | os.PathLike[str], *, max_epochs: int | None = None) -> dict[str, Any]:
        """Train the variants of a LightningCLI recipe (its ``model`` and ``data`` sections)."""
        from secure_train.gate.instantiate import ClassAllowList

        p = Path(config)
        if not p.is_file():
            raise ConfigError(f"recipe {p}: no such file")
        try:
            cfg = load_yaml_file(p, what="recipe") or {}  # bounded: size, aliases (YAML bombs), depth
        except yaml.YAMLError as err:
            raise ConfigError(f"recipe {p}: bad YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(cfg, dict) or "model" not in cfg or "data" not in cfg:
            raise ConfigError(f"recipe {p}: needs 'model' and 'data' sections")
        trainer_cfg = cfg.get("trainer") or {}
        epochs = max_epochs or int(trainer_cfg.get("max_epochs") or 4)
        self.seed = int(cfg.get("seed_everything") or self.seed)
        # the recipe is the user's own file: the classes it names (and only those, plus ours) are built
        allow = ClassAllowList(config={"model": cfg["model"], "data": cfg["data"]})
        return self.run(
            lambda: allow.build(cfg["model"], source=f"recipe {p}: model", base=pl.LightningModule),
            lambda: allow.build(cfg["data"], source=f"recipe {p}: data"),
            max_epochs=epochs,
        )

    # -- analysis -------------------------------------------------------------------------
    def analyse(
        self,
        train: list[TextRecord],
        val: list[TextRecord],
        folds: list[set[int]],
        losses: torch.Tensor,
        preds: torch.Tensor,
        val_preds: torch.Tensor,
        runs_info: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Per-sample scores and flags, per-run agreement and flags."""
        n = len(train)
        labels = torch.tensor([int(r.label or 0) for r in train])
        if self.vary == "subset":
            out_mask = torch.zeros((self.runs, n), dtype=torch.bool)
            for k, fold in enumerate(folds):
                out_mask[k] = torch.tensor([r.sample_id in fold for r in train])
            loss_out = (losses * out_mask).sum(0) / out_mask.sum(0).clamp_min(1)
            loss_in = (losses * ~out_mask).sum(0) / (~out_mask).sum(0).clamp_min(1)
            pred_out = (preds * out_mask).sum(0)
            # held-out (out-of-fold) loss, plus the part of it that training on the sample erased
            score = loss_out + (loss_out - loss_in).clamp_min(0.0)
        else:
            loss_in = loss_out = losses.mean(0)
            pred_out = preds.mode(0).values
            score = loss_out
        z = self.robust_z(score)
        order = torch.argsort(z, descending=True)
        cap = max(1, int(self.max_flag_fraction * n))
        flagged_idx = [
            int(i)
            for i in order[:cap]
            if float(z[i]) > self.z_threshold and float(loss_out[i]) > self.min_held_out_loss
        ]
        samples = []
        for i in range(n):
            rec = train[i]
            samples.append(
                {
                    "sample_id": rec.sample_id,
                    "label": int(labels[i]),
                    "loss_held_out": round(float(loss_out[i]), 5),
                    "loss_seen": round(float(loss_in[i]), 5),
                    "score": round(float(score[i]), 5),
                    "z": round(float(z[i]), 3),
                    "pred_held_out": int(pred_out[i]),
                    "signature": self._signature(
                        float(loss_out[i]), float(loss_in[i]), int(pred_out[i]), int(labels[i])
                    ),  # fmt: skip
                    "poisoned": rec.meta.get("poisoned"),
                }
            )
        flagged = [{**samples[i], "text": train[i].text} for i in flagged_idx]
        # runs: agreement with the majority of the other runs on validation
        agreements = []
        for k in range(self.runs):
            others = torch.cat([val_preds[:k], val_preds[k + 1 :]])
            majority = others.mode(0).values
            agreements.append(float((val_preds[k] == majority).float().mean()))
        agree_t = torch.tensor(agreements)
        acc_t = torch.tensor([r["val_acc"] for r in runs_info])
        agree_z = self.robust_z(agree_t)
        acc_z = self.robust_z(acc_t)
        flagged_runs = []
        for k, info in enumerate(runs_info):
            info["agreement"] = round(agreements[k], 4)
            info["agreement_z"] = round(float(agree_z[k]), 3)
            info["val_acc_z"] = round(float(acc_z[k]), 3)
            # a run is flagged only when it is an outlier AND materially worse (> 2 points)
            worse = (float(agree_t.median()) - agreements[k] > 0.02) or (float(acc_t.median()) - info["val_acc"] > 0.02)
            info["flagged"] = bool(worse and (agree_z[k] < -self.z_threshold or acc_z[k] < -self.z_threshold))
            if info["flagged"]:
                flagged_runs.append(k)
        metrics = self._metrics(samples, {train[i].sample_id for i in flagged_idx})
        return {
            "vary": self.vary,
            "runs": runs_info,
            "z_threshold": self.z_threshold,
            "n_samples": n,
            "flagged_samples": flagged,
            "flagged_runs": flagged_runs,
            "metrics": metrics,
            "samples": samples,
        }

    @staticmethod
    def _signature(loss_out: float, loss_in: float, pred_out: int, label: int) -> str:
        if pred_out != label and loss_out - loss_in > 1.0:
            return "memorized-contradiction (label-flip)"
        if pred_out != label:
            return "held-out-contradiction"
        return "consistent"

    @staticmethod
    def _metrics(samples: list[dict[str, Any]], flagged: set[int]) -> dict[str, Any]:
        truth = [s for s in samples if s["poisoned"] is not None]
        if not truth:
            return {}
        pos = {s["sample_id"] for s in truth if s["poisoned"]}
        tp = len(pos & flagged)
        return {
            "poisoned": len(pos),
            "flagged": len(flagged),
            "true_positives": tp,
            "precision": round(tp / len(flagged), 4) if flagged else 0.0,
            "recall": round(tp / len(pos), 4) if pos else 0.0,
        }

    # -- report ---------------------------------------------------------------------------
    def write_report(self, report: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
        """``diff_train.json``, ``diff_train.md`` and ``diff_train.png`` (when matplotlib is installed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "diff_train.json", out / "diff_train.md"]
        paths[0].write_text(json.dumps(report, indent=1, default=str) + "\n")
        lines = [
            f"# Differential training analysis ({report['vary']}, {len(report['runs'])} runs)",
            "",
            f"- samples: {report['n_samples']}, flagged: {len(report['flagged_samples'])} "
            f"(z > {report['z_threshold']})",
            f"- flagged runs: {report['flagged_runs'] or 'none'}",
        ]
        if report["metrics"]:
            lines.append(f"- against planted ground truth: {report['metrics']}")
        lines += ["", "| run | held out | n_train | val_acc | agreement | flagged |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {r['run']} | {r['held_out']} | {r['n_train']} | {r['val_acc']:.4f} | {r['agreement']:.4f} | "
            f"{r['flagged']} |"
            for r in report["runs"]
        ]
        lines += [
            "",
            "| sample_id | label | held-out loss | seen loss | z | signature | text |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in report["flagged_samples"][:50]:
            text = s["text"].replace("|", "\\|")[:80]
            lines.append(
                f"| {s['sample_id']} | {s['label']} | {s['loss_held_out']:.3f} | {s['loss_seen']:.3f} | {s['z']:.1f} | "
                f"{s['signature']} | {text} |"
            )
        paths[1].write_text("\n".join(lines) + "\n")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - matplotlib is optional
            return paths
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        flagged_ids = {s["sample_id"] for s in report["flagged_samples"]}
        rest = [s["z"] for s in report["samples"] if s["sample_id"] not in flagged_ids]
        axes[0].hist(rest, bins=50, label="not flagged")
        axes[0].hist([s["z"] for s in report["flagged_samples"]], bins=20, label="flagged")
        axes[0].axvline(report["z_threshold"], color="k", ls="--")
        axes[0].set_yscale("log")
        axes[0].set_xlabel("influence z-score")
        axes[0].legend()
        axes[1].bar([str(r["run"]) for r in report["runs"]], [r["agreement"] for r in report["runs"]],
                    color=["r" if r["flagged"] else "b" for r in report["runs"]])  # fmt: skip
        axes[1].set_xlabel("run")
        axes[1].set_ylabel("agreement with other runs (val)")
        fig.tight_layout()
        fig.savefig(out / "diff_train.png", dpi=100)
        plt.close(fig)
        paths.append(out / "diff_train.png")
        return paths
