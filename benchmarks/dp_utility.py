"""Utility of DP-SGD: SST-2 dev accuracy at ε = 8 and ε = 3 vs non-private, same number of steps.

All runs fine-tune the same model on the same training subset for the same number of optimizer
steps (DP runs draw Poisson batches with the same expected size). DP runs use their own learning
rate (``--dp-lr``: noisy, clipped gradients usually want a larger one). δ = 1 / N^1.1.

Example:
    python benchmarks/dp_utility.py --train ../shared/data/sst2/train.tsv --dev ../shared/data/sst2/dev.tsv \\
        --model-path minilm --train-limit 4000 --max-length 48
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from secure_train.privacy import DifferentialPrivacy  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(parser)
    g = parser.add_argument_group("privacy")
    g.add_argument("--epsilons", type=float, nargs="*", default=[8.0, 3.0])
    g.add_argument("--dp-lr", type=float, default=5e-4)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument("--mode", choices=["hooks", "ghost"], default="hooks")
    g.add_argument("--no-baseline", action="store_true")
    g.add_argument(
        "--clip-only",
        action="store_true",
        help="add a diagnostic run with DP-SGD's clipping and Poisson sampling but noise 0 (no privacy)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, epsilon: float | None, clip_only: bool = False) -> dict[str, object]:
    dm = common.build_datamodule(args)
    run_args = argparse.Namespace(**vars(args))
    if epsilon is not None or clip_only:
        run_args.lr = args.dp_lr
    model = common.build_model(run_args)
    callbacks = []
    dp = None
    if epsilon is not None:
        dp = DifferentialPrivacy(target_epsilon=epsilon, max_grad_norm=args.max_grad_norm, grad_sample_mode=args.mode)
    elif clip_only:
        dp = DifferentialPrivacy(noise_multiplier=0.0, max_grad_norm=args.max_grad_norm, grad_sample_mode=args.mode)
    if dp is not None:
        callbacks.append(dp)
    trainer, seconds = common.fit(model, dm, run_args, callbacks, enable_progress_bar=False)
    return {
        "run": "non-private" if dp is None else ("clip only, noise 0" if clip_only else f"DP eps={epsilon:g}"),
        "eps_spent": round(dp.epsilon(), 3) if dp else "inf",
        "noise": round(dp.noise_multiplier or 0.0, 3) if dp else 0.0,
        "steps": trainer.global_step,
        "lr": run_args.lr or "default",
        "dev_acc": common.clean_accuracy(model, dm),
        "train_s": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = [] if args.no_baseline else [run(args, None)]
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
    }
    common.write_results("dp_utility", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
