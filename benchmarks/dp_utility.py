"""Utility of DP-SGD: SST-2 dev accuracy at ε = 8 and ε = 3 vs non-private, same number of steps.

All runs fine-tune the same model on the same training subset for the same number of optimizer
steps (DP runs draw Poisson batches with the same expected size). DP runs use their own learning
rate (``--dp-lr``: noisy, clipped gradients usually want a larger one). δ = 1 / N^1.1.

``--trainable`` restricts every run (non-private ones too, so the comparison stays like for
like) to the parameters matching the patterns: fewer noisy coordinates, the usual way to keep
utility under DP. ``--full-baseline`` adds a non-private run that trains everything.

Example:
    python -m benchmarks.dp_utility --train ../shared/data/sst2/train.tsv --dev ../shared/data/sst2/dev.tsv \\
        --model-path minilm --train-limit 4000 --max-length 48
    python -m benchmarks.dp_utility --train ../shared/data/sst2/train.tsv --dev ../shared/data/sst2/dev.tsv \\
        --model-path minilm --train-limit 20000 --batch-size 256 --epochs 3 --lr 1e-3 --dp-lr 2e-3 \\
        --trainable 'encoder.layer.5.*' 'pooler.*' 'classifier.*' --full-baseline
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks import common
from secure_train.privacy import DifferentialPrivacy, restrict_trainable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(parser)
    g = parser.add_argument_group("privacy")
    g.add_argument("--epsilons", type=float, nargs="*", default=[8.0, 3.0])
    g.add_argument("--dp-lr", type=float, default=5e-4)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument("--mode", choices=["hooks", "ghost"], default="hooks")
    g.add_argument("--no-baseline", action="store_true")
    g.add_argument("--trainable", nargs="+", default=None, help="train only parameters matching these globs")
    g.add_argument("--full-baseline", action="store_true", help="add a non-private run training every parameter")
    g.add_argument(
        "--clip-only",
        action="store_true",
        help="add a diagnostic run with DP-SGD's clipping and Poisson sampling but noise 0 (no privacy)",
    )
    return parser.parse_args(argv)


def run(
    args: argparse.Namespace, epsilon: float | None, clip_only: bool = False, train_all: bool = False
) -> dict[str, object]:
    dm = common.build_datamodule(args)
    run_args = argparse.Namespace(**vars(args))
    if epsilon is not None or clip_only:
        run_args.lr = args.dp_lr
    model = common.build_model(run_args)
    trainable = None if train_all else args.trainable
    if trainable and epsilon is None and not clip_only:
        restrict_trainable(model, trainable)  # DP runs restrict through the callback
    callbacks = []
    dp = None
    options: dict[str, Any] = {"max_grad_norm": args.max_grad_norm, "grad_sample_mode": args.mode}
    if epsilon is not None:
        dp = DifferentialPrivacy(target_epsilon=epsilon, trainable=trainable, **options)
    elif clip_only:
        dp = DifferentialPrivacy(noise_multiplier=0.0, trainable=trainable, **options)
    if dp is not None:
        callbacks.append(dp)
    trainer, seconds = common.fit(model, dm, run_args, callbacks, enable_progress_bar=False)
    name = "non-private" if dp is None else ("clip only, noise 0" if clip_only else f"DP eps={epsilon:g}")
    return {
        "run": name + (" (all parameters)" if train_all else ""),
        "trained_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "eps_spent": round(dp.epsilon(), 3) if dp else "inf",
        "noise": round(dp.noise_multiplier or 0.0, 3) if dp else 0.0,
        "steps": trainer.global_step,
        "lr": run_args.lr or "default",
        "dev_acc": common.clean_accuracy(model, dm),
        "train_s": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = [run(args, None, train_all=True)] if args.full_baseline else []
    rows += [] if args.no_baseline else [run(args, None)]
    rows += [run(args, None, clip_only=True)] if args.clip_only else []
    rows += [run(args, eps) for eps in args.epsilons]
    meta = {
        "train": f"{args.train or 'synthetic'} (random subset of {args.train_limit})"
        if args.train_limit
        else str(args.train),
        "dev": args.dev or "10% split",
        "model": args.model_path or "tiny BERT",
        "shape": f"batch {args.batch_size}, max length {args.max_length}, epochs {args.epochs or 1}",
        "dp": f"C={args.max_grad_norm}, mode={args.mode}, Poisson sampling, PRV accountant, delta=1/N^1.1",
        "trainable": " ".join(args.trainable) if args.trainable else "all parameters",
    }
    common.write_results("dp_utility", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
