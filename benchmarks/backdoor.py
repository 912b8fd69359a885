"""Backdoor yardstick: train an undefended classifier on poisoned data, report CACC and ASR.

CACC is accuracy on the clean dev set; ASR is the share of non-target-label dev examples,
with the trigger inserted, that the model assigns the target label. Poison rates are shares
of the training set (dirty-label by default: non-target examples relabeled to the target).

Examples:
    python benchmarks/backdoor.py                      # synthetic corpus, tiny BERT
    python benchmarks/backdoor.py --train ../shared/data/sst2/train.tsv --dev ../shared/data/sst2/dev.tsv \\
        --model-path minilm --train-limit 8000 --rates 0.01 0.1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import torch  # noqa: E402

from secure_train.attacks import BackdoorPoisoning, triggered_records  # noqa: E402
from secure_train.metrics import AttackSuccessRate, CleanAccuracy  # noqa: E402


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


def run_one(args: argparse.Namespace, attack: str, rate: float) -> dict[str, object]:
    transforms = (
        [
            BackdoorPoisoning(
                attack, rate=rate, target_label=args.target_label, clean_label=args.clean_label, seed=args.seed
            )
        ]
        if rate > 0
        else []
    )
    dm = common.build_datamodule(args, transforms)
    model = common.build_model(args)
    _, seconds = common.fit(model, dm, args)
    val = dm.load_records()["val"]
    cacc, asr = CleanAccuracy(2), AttackSuccessRate(args.target_label)
    cacc.update(common.predict(model, dm, val), torch.tensor([r.label for r in val]))
    trig = triggered_records(val, attack, args.target_label, seed=args.seed + 1)
    asr.update(common.predict(model, dm, trig), torch.tensor([r.label for r in trig]))
    n_poison = sum(bool(r.meta.get("poisoned")) for r in dm.load_records()["train"])
    return {
        "attack": attack,
        "poison_rate": rate,
        "n_train": len(dm.load_records()["train"]),
        "n_poisoned": n_poison,
        "CACC": float(cacc.compute()),
        "ASR": float(asr.compute()),
        "train_s": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []
    attacks = args.attack
    if not args.no_baseline:
        for attack in attacks:
            rows.append(run_one(args, attack, 0.0))
    for attack in attacks:
        for rate in args.rates:
            rows.append(run_one(args, attack, rate))
    meta = {
        "train": args.train or "synthetic",
        "dev": args.dev or "held-out split",
        "model": args.model_path or "tiny-bert",
        "train_limit": args.train_limit,
        "epochs": args.epochs,
        "target_label": args.target_label,
        "clean_label": args.clean_label,
        "seed": args.seed,
    }
    common.write_results("backdoor", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
