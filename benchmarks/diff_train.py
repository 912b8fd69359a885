"""Differential-training benchmark: precision / recall of flagged samples on planted poisoning.

For each scenario, ``--runs`` tiny BERT variants are trained on the synthetic corpus with
partitioned hold-out (``vary="subset"``: each sample held out of one run) and
:class:`~secure_train.gate.DifferentialTraining` flags samples; the planted poison is the
ground truth. Scenarios: a label-flip poisoning (a share of the records get the wrong label)
and a BadNets backdoor (trigger word ``cf``, dirty label, target 1).

Example:
    python -m benchmarks.diff_train                    # ~2-4 min of CPU
    python -m benchmarks.diff_train --rates 0.02 0.05 --runs 4
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace
from pathlib import Path

import torch
from torchmetrics.functional.classification import binary_auroc

from benchmarks import common
from secure_train.attacks import BackdoorPoisoning
from secure_train.data import TextClassificationDataModule, TextRecord
from secure_train.gate import DifferentialTraining
from secure_train.models import TextClassifier


class LabelFlip:
    """Flip the labels of a share of the training records (ground truth in ``meta["poisoned"]``)."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        self.rate, self.seed = rate, seed

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        chosen = set(random.Random(self.seed).sample(range(len(records)), round(self.rate * len(records))))
        return [
            replace(
                r, label=1 - int(r.label or 0) if i in chosen else r.label, meta={**r.meta, "poisoned": i in chosen}
            )
            for i, r in enumerate(records)
        ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--rates", type=float, nargs="+", default=[0.03])
    p.add_argument("--train-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--z-threshold", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []
    for scenario in ("label-flip", "backdoor"):
        for rate in args.rates:
            transform = (
                LabelFlip(rate, seed=args.seed)
                if scenario == "label-flip"
                else BackdoorPoisoning("badnets", words=["cf"], rate=rate, target_label=1, seed=args.seed)
            )

            def make_data(transform=transform) -> TextClassificationDataModule:
                return TextClassificationDataModule(
                    synthetic_size=args.train_size, batch_size=32, eval_batch_size=256, max_length=64,
                    transforms=[transform], seed=args.seed, val_fraction=0.1,
                )  # fmt: skip

            analysis = DifferentialTraining(runs=args.runs, vary="subset", z_threshold=args.z_threshold, seed=args.seed)
            with common.timed() as t:
                report = analysis.run(
                    lambda: TextClassifier(lr=1e-3, warmup_steps=50), make_data, max_epochs=args.epochs
                )
            seconds = t.seconds
            samples = report["samples"]
            truth = torch.tensor([int(bool(s["poisoned"])) for s in samples])
            auc = float(binary_auroc(torch.tensor([s["score"] for s in samples]), truth))
            m = report["metrics"]
            analysis.write_report(report, Path(args.out_dir) / f"diff_train-{scenario}-{rate}")
            rows.append(
                {
                    "scenario": scenario,
                    "rate": rate,
                    "n_train": report["n_samples"],
                    "poisoned": m["poisoned"],
                    "flagged": m["flagged"],
                    "precision": m["precision"],
                    "recall": m["recall"],
                    "score_AUC": auc,
                    "runs_val_acc": "/".join(f"{r['val_acc']:.2f}" for r in report["runs"]),
                    "flagged_runs": len(report["flagged_runs"]),
                    "seconds": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    meta = {
        "model": "tiny BERT (TINY_BERT), lr 1e-3, warm-up 50",
        "data": f"synthetic corpus, {args.train_size} records (90% train), {args.epochs} epochs",
        "runs": args.runs,
        "vary": "subset (each sample held out of exactly one run)",
        "z_threshold": args.z_threshold,
        "seed": args.seed,
    }
    common.write_results("diff_train", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
