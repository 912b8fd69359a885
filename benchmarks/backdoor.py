"""Backdoor yardstick: train an undefended classifier on poisoned data, report CACC and ASR.

CACC is accuracy on the clean dev set; ASR is the share of non-target-label dev examples,
with the trigger inserted, that the model assigns the target label. Poison rates are shares
of the training set (dirty-label by default: non-target examples relabeled to the target).

Examples:
    python -m benchmarks.backdoor                      # synthetic corpus, tiny BERT
    python -m benchmarks.backdoor --train ../shared/data/sst2/train.tsv --dev ../shared/data/sst2/dev.tsv \\
        --model-path minilm --train-limit 8000 --rates 0.01 0.1
"""

from __future__ import annotations

import argparse

import torch

from benchmarks import common
from secure_train.attacks import BackdoorPoisoning, triggered_records
from secure_train.attacks.metrics import AttackSuccessRate, CleanAccuracy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(parser)
    g = parser.add_argument_group("attack")
    g.add_argument("--attack", choices=["badnets", "addsent"], nargs="+", default=["badnets", "addsent"])
    g.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.1], help="poison rates (share of train)")
    g.add_argument("--target-label", type=int, default=1)
    g.add_argument("--clean-label", action="store_true", help="clean-label poisoning (labels kept)")
    g.add_argument("--no-baseline", action="store_true", help="skip the unpoisoned reference run")
    return parser.parse_args(argv)


def evaluate(model, dm, attack: str, args: argparse.Namespace) -> tuple[float, float]:
    """CACC on the clean dev set and ASR of ``attack``'s trigger on non-target dev examples."""
    val = dm.load_records()["val"]
    cacc, asr = CleanAccuracy(2), AttackSuccessRate(args.target_label)
    cacc.update(common.predict(model, dm, val), torch.tensor([r.label for r in val]))
    trig = triggered_records(val, attack, args.target_label, seed=args.seed + 1)
    asr.update(common.predict(model, dm, trig), torch.tensor([r.label for r in trig]))
    return float(cacc.compute()), float(asr.compute())


def train(args: argparse.Namespace, attack: str | None, rate: float):
    transforms = (
        [
            BackdoorPoisoning(
                attack, rate=rate, target_label=args.target_label, clean_label=args.clean_label, seed=args.seed
            )
        ]
        if attack
        else []
    )
    dm = common.build_datamodule(args, transforms)
    model = common.build_model(args)
    _, seconds = common.fit(model, dm, args)
    return model, dm, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []

    def row(attack: str, rate: float, model, dm, seconds: float) -> dict[str, object]:
        cacc, asr = evaluate(model, dm, attack, args)
        train_recs = dm.load_records()["train"]
        return {
            "attack": attack,
            "poison_rate": rate,
            "n_train": len(train_recs),
            "n_poisoned": sum(bool(r.meta.get("poisoned")) for r in train_recs),
            "CACC": cacc,
            "ASR": asr,
            "train_s": round(seconds, 1),
        }

    if not args.no_baseline:
        model, dm, seconds = train(args, None, 0.0)
        rows += [row(attack, 0.0, model, dm, seconds) for attack in args.attack]
    for attack in args.attack:
        for rate in args.rates:
            rows.append(row(attack, rate, *train(args, attack, rate)))
    meta = {
        "train": args.train or "synthetic",
        "dev": args.dev or "held-out split",
        "model": args.model_path or "tiny-bert",
        "train_limit": args.train_limit,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "target_label": args.target_label,
        "clean_label": args.clean_label,
        "seed": args.seed,
    }
    common.write_results("backdoor", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
