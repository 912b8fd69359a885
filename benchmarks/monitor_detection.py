"""Detection quality of the training monitors.

Parts (``--parts``, default all):

- ``a`` injected instabilities: a batch whose loss is multiplied, a one-step learning-rate
  spike, NaN in the inputs (the embedding output of one batch). Reports, per monitor, the
  first anomaly step against the injection step, and alarms before the injection.
- ``b`` false alarms: clean runs with different seeds, all four monitors at defaults.
- ``c`` rollback: final validation accuracy of a clean run, of a run with a mid-run
  learning-rate spike, and of the same spiked run with ``action="rollback"``.
- ``d`` the retired ``SampleLossMonitor`` (``secure_train.monitors.sample_loss``, no longer
  exported) against the backdoor yardstick (dirty label; ``--trigger badnets|addsent``,
  ``--words`` for other trigger words): precision and recall of the flagged samples against
  ``meta["poisoned"]`` at each poison rate, the ranking quality of its two scores without a
  threshold (precision at the poison count, ROC AUC of ``early`` and ``high``), the same
  precision for a spectral-signature baseline on the last epoch's classifier-head inputs and
  head gradients (the alternative tried before retiring it; on both runs, the undefended one
  has every sample in its last epoch), and ASR /
  clean accuracy of the run that drops flagged samples from later epochs vs the undefended
  run. This part documents a negative result: the monitor was retired because these figures
  stayed near zero (precision <= 0.05, recall <= 0.01 at 1 % and 10 % BadNets on tiny BERT;
  precision at the poison count <= 0.11 with MiniLM-L6; ASR not lowered by dropping).

Examples:
    python -m benchmarks.monitor_detection --parts a b c            # tiny BERT, synthetic corpus
    python -m benchmarks.monitor_detection --parts d --epochs 4
    python -m benchmarks.monitor_detection --parts d --epochs 4 --trigger addsent
    python -m benchmarks.monitor_detection --parts d --epochs 4 --words zq
    flock /tmp/secure-train-heavy.lock python -m benchmarks.monitor_detection --parts d \\
        --train ../shared/data/sst2/train.tsv --dev ../shared/data/sst2/dev.tsv --model-path minilm \\
        --train-limit 2000 --max-length 48 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from benchmarks import common
from benchmarks.backdoor import evaluate
from secure_train.attacks import BackdoorPoisoning
from secure_train.attacks.backdoor import Trigger, make_trigger, triggered_records
from secure_train.models import TextClassifier
from secure_train.monitors import (
    ActivationMonitor,
    AnomalyMonitor,
    GradNormMonitor,
    LossSpikeMonitor,
)
from secure_train.monitors.sample_loss import SampleLossMonitor


class LossMultiplier(TextClassifier):
    """A classifier whose training loss is multiplied by ``factor`` at one step."""

    def __init__(self, step: int = -1, factor: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inject_step, self.factor = step, factor

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        out = super().training_step(batch, batch_idx)
        if self.global_step == self.inject_step:
            out["loss"] = out["loss"] * self.factor
        return out


class LRSpike(pl.Callback):
    """Multiply the learning rate by ``factor`` for one optimizer step (the scheduler resets it)."""

    def __init__(self, step: int, factor: float) -> None:
        self.step, self.factor = step, factor
        self._saved: list[float] | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            opt = trainer.optimizers[0]
            self._saved = [g["lr"] for g in opt.param_groups]
            for g in opt.param_groups:
                g["lr"] *= self.factor

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._saved is not None:
            for g, lr in zip(trainer.optimizers[0].param_groups, self._saved, strict=True):
                g["lr"] = lr
            self._saved = None


class NaNInputs(pl.Callback):
    """NaN in the input embeddings of one batch."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.handle: Any = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step:
            emb = pl_module.model.get_input_embeddings()  # type: ignore[operator,union-attr]
            self.handle = emb.register_forward_hook(lambda m, i, o: o * math.nan)

    def on_train_batch_end(self, *args: Any) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(parser)
    g = parser.add_argument_group("monitor benchmark")
    g.add_argument("--parts", nargs="+", choices=list("abcd"), default=list("abcd"))
    g.add_argument("--inject-step", type=int, default=150)
    g.add_argument("--inject-steps-total", type=int, default=250, help="steps of each injection run (part a)")
    g.add_argument("--loss-factors", type=float, nargs="+", default=[10.0, 100.0])
    g.add_argument("--lr-factor", type=float, default=1000.0)
    g.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="seeds of the clean runs (b)")
    g.add_argument("--clean-epochs", type=int, default=3, help="epochs of the clean / rollback runs (b, c)")
    g.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.1])
    g.add_argument("--target-label", type=int, default=1)
    g.add_argument("--score-after-epochs", type=int, default=2)
    g.add_argument("--trigger", choices=["badnets", "addsent"], default="badnets", help="trigger family (d)")
    g.add_argument("--words", nargs="+", default=None, help="trigger words / sentences instead of the family's (d)")
    return parser.parse_args(argv)


def default_monitors(**kwargs: Any) -> list[AnomalyMonitor]:
    return [LossSpikeMonitor(**kwargs), GradNormMonitor(**kwargs), ActivationMonitor(**kwargs)]


def make_model(args: argparse.Namespace, **kwargs: Any) -> TextClassifier:
    base = common.build_model(args)
    hp = {k: base.hparams[k] for k in ("pretrained", "num_labels", "lr", "warmup_steps")}
    return LossMultiplier(**hp, **kwargs)


def train(
    args: argparse.Namespace,
    seed: int,
    callbacks: list[pl.Callback],
    model: TextClassifier | None = None,
    transforms: list[Any] | None = None,
    **kw: Any,
) -> tuple[pl.Trainer, TextClassifier, Any]:
    run_args = argparse.Namespace(**{**vars(args), "seed": seed, **kw})
    dm = common.build_datamodule(run_args, transforms or [])
    pl.seed_everything(seed, verbose=False)
    model = model or make_model(run_args)
    trainer, _ = common.fit(
        model,
        dm,
        run_args,
        callbacks,
        enable_progress_bar=False,
        default_root_dir=tempfile.mkdtemp(prefix="monitor-bench-"),
    )
    return trainer, model, dm


def first_step(monitor: AnomalyMonitor, at_or_after: int = 0) -> int | None:
    steps = [a["step"] for a in monitor.anomalies if a["step"] >= at_or_after]
    return min(steps) if steps else None


def part_a(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    s = args.inject_step
    kinds = [f"loss x{f:g}" for f in args.loss_factors] + [f"lr x{args.lr_factor:g}", "NaN inputs"]
    for kind in kinds:
        monitors = default_monitors()
        extra: list[pl.Callback] = []
        model = None
        if kind.startswith("loss"):
            model = make_model(args, step=s, factor=float(kind.split("x")[1]))
        elif kind.startswith("lr"):
            extra = [LRSpike(s, args.lr_factor)]
        else:
            extra = [NaNInputs(s)]
        train(args, args.seed, [*extra, *monitors[:3]], model=model, max_steps=args.inject_steps_total, epochs=100)
        for m in monitors[:3]:
            det = first_step(m, s)
            rows.append(
                {
                    "injection": kind,
                    "monitor": m.monitor_name,
                    "inject_step": s,
                    "detect_step": det if det is not None else "missed",
                    "delay": det - s if det is not None else "",
                    "alarms_before": sum(a["step"] < s for a in m.anomalies),
                }
            )
    return rows


def part_b(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for seed in args.seeds:
        monitors = default_monitors()
        trainer, model, dm = train(args, seed, list(monitors), epochs=args.clean_epochs)
        rows.append(
            {
                "seed": seed,
                "steps": trainer.global_step,
                **{m.monitor_name: m.num_anomalies for m in monitors},
                "n_train": len(dm.load_records()["train"]),
                "val_acc": common.clean_accuracy(model, dm),
            }
        )
    return rows


def part_c(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    total = args.clean_epochs * math.ceil(len(common.build_datamodule(args).load_records()["train"]) / args.batch_size)
    s = total // 2
    variants = ("clean", "lr spike, no action", "lr spike, rollback", "lr spike, rollback, snapshot every 10")
    for variant in variants:
        callbacks: list[pl.Callback] = []
        if variant != "clean":
            callbacks.append(LRSpike(s, args.lr_factor))
        monitors: list[AnomalyMonitor] = []
        if "rollback" in variant:
            every = 10 if variant.endswith("10") else 50
            monitors = [
                LossSpikeMonitor(action="rollback", snapshot_every_n_steps=every),
                GradNormMonitor(action="rollback", snapshot_every_n_steps=every),
            ]
        trainer, model, dm = train(args, args.seed, [*callbacks, *monitors], epochs=args.clean_epochs)
        rows.append(
            {
                "variant": variant,
                "spike_step": s if variant != "clean" else "",
                "anomalies": sum(m.num_anomalies for m in monitors),
                "restored_step": next((a.get("restored_step") for m in monitors for a in m.anomalies), ""),
                "val_acc": common.clean_accuracy(model, dm),
            }
        )
    return rows


class HeadInputs(pl.Callback):
    """Keep each sample's input to the classifier head and its logits from the last epoch (training mode)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self._cur: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        head = [m for m in pl_module.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.register_forward_hook(lambda m, i, o: setattr(self, "_cur", (i[0].detach(), o.detach())))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        if self._cur is None or trainer.current_epoch != (trainer.max_epochs or 1) - 1:
            return
        h, logits = self._cur
        ids, labels = batch["sample_id"].tolist(), batch["labels"].tolist()
        for sid, hi, li, y in zip(ids, h.cpu(), logits.cpu(), labels, strict=True):
            self.rows[sid] = (hi, li, y)


def spectral_scores(inputs: HeadInputs, gradients: bool = False) -> dict[int, float]:
    """Spectral signature (Tran et al. 2018) per label: squared projection on the top singular vector.

    On the head's inputs, or with ``gradients=True`` on the head's per-sample gradients
    ``(softmax(logits) - onehot(y)) x input``.
    """
    out: dict[int, float] = {}
    for label in sorted({y for _, _, y in inputs.rows.values()}):
        ids = [sid for sid, (_, _, y) in inputs.rows.items() if y == label]
        h = torch.stack([inputs.rows[sid][0] for sid in ids]).double()
        if gradients:
            logits = torch.stack([inputs.rows[sid][1] for sid in ids]).double()
            err = logits.softmax(-1)
            err[:, label] -= 1.0
            h = (err[:, :, None] * h[:, None, :]).flatten(1)
        x = h - h.mean(0)
        top = torch.linalg.svd(x, full_matrices=False)[2][0]
        out.update(zip(ids, ((x @ top) ** 2).tolist(), strict=True))
    return out


def monitor_scores(monitor: SampleLossMonitor, epochs: int) -> dict[str, dict[int, float]]:
    """The monitor's ``early`` (mean relative loss, negated) and ``high`` (last two epochs) scores."""
    trajs = {sid: t[:epochs] for sid, t in monitor.trajectories.items() if t}
    return {
        "early": {sid: -sum(t) / len(t) for sid, t in trajs.items()},
        "high": {sid: sum(t[-2:]) / len(t[-2:]) for sid, t in trajs.items()},
    }


def precision_at(scores: dict[int, float], poisoned: set[int]) -> float:
    """Share of poisoned samples among the ``len(poisoned)`` highest scores (ranking quality)."""
    top = sorted(scores, key=lambda sid: -scores[sid])[: len(poisoned)]
    return len(set(top) & poisoned) / len(poisoned) if poisoned else 0.0


def roc_auc(scores: dict[int, float], poisoned: set[int]) -> float:
    """Probability that a poisoned sample outscores a clean one (ties count half)."""
    pos = torch.tensor([v for s, v in scores.items() if s in poisoned], dtype=torch.float64)
    neg = torch.tensor([v for s, v in scores.items() if s not in poisoned], dtype=torch.float64)
    if not len(pos) or not len(neg):
        return math.nan
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def attack_success(model: TextClassifier, dm: Any, trigger: Trigger, args: argparse.Namespace) -> float:
    """Share of triggered non-target dev records classified as the target label."""
    trig = triggered_records(dm.load_records()["val"], trigger, args.target_label, seed=args.seed + 1)
    return float((common.predict(model, dm, trig) == args.target_label).float().mean())


def trigger_tag(args: argparse.Namespace) -> str:
    """``badnets``, ``addsent`` or ``words-<w1>-<w2>`` (result file names)."""
    if args.words is None:
        return str(args.trigger)
    return "words-" + "-".join("".join(c if c.isalnum() else "_" for c in w) for w in args.words)[:40]


def part_d(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    epochs = args.epochs or (1 if args.model_path else 4)
    trigger = make_trigger(args.trigger, words=args.words)
    for rate in args.rates:
        for defended in (False, True):
            poison = BackdoorPoisoning(trigger, rate=rate, target_label=args.target_label, seed=args.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # retired: measured here on purpose
                monitor = SampleLossMonitor(score_after_epochs=args.score_after_epochs, drop_flagged=True)
            head = HeadInputs()
            trainer, model, dm = train(
                args, args.seed, [monitor, head] if defended else [head], transforms=[poison], epochs=epochs
            )
            cacc = evaluate(model, dm, "badnets", args)[0]
            asr = attack_success(model, dm, trigger, args)
            train_recs = dm.load_records()["train"]
            poisoned = {r.sample_id for r in train_recs if r.meta.get("poisoned")}
            row: dict[str, Any] = {
                "trigger": "/".join(trigger.choices),
                "poison_rate": rate,
                "run": "drop flagged" if defended else "undefended",
                "n_train": len(train_recs),
                "n_poisoned": len(poisoned),
                "CACC": cacc,
                "ASR": asr,
                "spectral_features_precision_at_n": precision_at(spectral_scores(head), poisoned),
                "spectral_gradients_precision_at_n": precision_at(spectral_scores(head, True), poisoned),
            }
            if defended:
                flagged = monitor.flagged_ids
                tp = len(flagged & poisoned)
                scores = monitor_scores(monitor, args.score_after_epochs)
                row.update(
                    {
                        "flagged": len(flagged),
                        "precision": tp / len(flagged) if flagged else 0.0,
                        "recall": tp / len(poisoned) if poisoned else 0.0,
                        "dropped_rows": monitor.dropped_rows,
                        "precision_at_n_poisoned": precision_at(scores["early"], poisoned),
                        "high_precision_at_n_poisoned": precision_at(scores["high"], poisoned),
                        "auc_early": roc_auc(scores["early"], poisoned),
                        "auc_high": roc_auc(scores["high"], poisoned),
                    }
                )
                dump = {"poisoned": sorted(poisoned), "trajectories": monitor.trajectories, "losses": monitor.losses}
                model_name = Path(str(args.model_path)).name
                name = f"monitor_detection_trajectories_{trigger_tag(args)}_{rate:g}_{model_name}.json"
                Path(args.out_dir).mkdir(parents=True, exist_ok=True)
                (Path(args.out_dir) / name).write_text(json.dumps(dump))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    meta = {
        "model": args.model_path or "tiny-bert",
        "train": args.train or "synthetic",
        "dev": args.dev or "held-out split",
        "train_limit": args.train_limit,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "seed": args.seed,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    suffix = "" if args.model_path is None else "_" + Path(str(args.model_path)).name
    if "a" in args.parts:
        rows = part_a(args)
        common.write_results(
            "monitor_detection_injection" + suffix, rows, args.out_dir, {**meta, "steps": args.inject_steps_total}
        )
    if "b" in args.parts:
        rows = part_b(args)
        total = sum(r[k] for r in rows for k in ("LossSpikeMonitor", "GradNormMonitor", "ActivationMonitor"))
        print(f"\nfalse alarms (loss / grad / activation monitors) over {len(rows)} clean runs: {total}")
        common.write_results(
            "monitor_detection_false_alarms" + suffix,
            rows,
            args.out_dir,
            {**meta, "epochs": args.clean_epochs, "false_alarms_total": total},
        )
    if "c" in args.parts:
        rows = part_c(args)
        common.write_results(
            "monitor_detection_rollback" + suffix,
            rows,
            args.out_dir,
            {**meta, "epochs": args.clean_epochs, "lr_factor": args.lr_factor},
        )
    if "d" in args.parts:
        rows = part_d(args)
        columns = ["trigger", "poison_rate", "run", "n_train", "n_poisoned", "flagged", "precision", "recall"]
        columns += ["precision_at_n_poisoned", "high_precision_at_n_poisoned", "auc_early", "auc_high"]
        columns += ["spectral_features_precision_at_n", "spectral_gradients_precision_at_n"]
        columns += ["dropped_rows", "CACC", "ASR"]
        common.write_results(
            f"monitor_detection_sample_loss_{trigger_tag(args)}" + suffix,
            rows,
            args.out_dir,
            {**meta, "epochs": args.epochs, "score_after_epochs": args.score_after_epochs, "trigger": args.trigger},
            columns=columns,
        )


if __name__ == "__main__":
    main()
