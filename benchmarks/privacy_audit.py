"""Empirical privacy audit: the same recipe trained with DP-SGD (ε = 8) and without, audited in one run.

Canaries are out-of-distribution sentences of made-up words that occur nowhere else, with a
random label; each is added to the training set with probability 1/2
(Steinke, Nasr & Jagielski 2023). After training, each canary is scored by minus its loss under
its (random) label. Reported: membership AUC, TPR at low FPR, the one-run ε lower bound
(Clopper-Pearson, 95 %), and the threshold bound log(TPR_lo / FPR_hi). The tokenizer is trained
on the base data and *all* canaries, so the vocabulary does not reveal which were included.

Example:
    python -m benchmarks.privacy_audit --canaries 500 --epochs 15
"""

from __future__ import annotations

import argparse
import random
import tempfile

import lightning.pytorch as pl
import torch

from benchmarks import common
from secure_train.data import TextClassificationDataModule, TextRecord
from secure_train.data.synthetic import synthetic_classification
from secure_train.data.tokenizer import train_tokenizer
from secure_train.models import TINY_BERT, TextClassifier
from secure_train.privacy import DifferentialPrivacy, canary_audit, include_half


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-train", type=int, default=1000, help="synthetic base training examples")
    p.add_argument("--canaries", type=int, default=500, help="m canaries, each included with probability 1/2")
    p.add_argument("--canary-words", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dp-lr", type=float, default=2e-3)
    p.add_argument("--epsilon", type=float, default=8.0)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--hidden", type=int, default=128, help="tiny BERT width (more capacity memorizes more)")
    p.add_argument("--runs", nargs="+", choices=["non-private", "dp"], default=["non-private", "dp"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    return p.parse_args(argv)


def make_canaries(m: int, words: int, seed: int) -> list[TextRecord]:
    """Out-of-distribution canaries: ``words`` made-up words found in no other example, random label."""
    rng = random.Random(seed + 17)
    letters = "bcdfghjklmnpqrstvwxz"

    def word() -> str:
        return "".join(rng.choice(letters) for _ in range(7))

    return [
        TextRecord(" ".join(word() for _ in range(words)), rng.randrange(2), 5 * 10**8 + i, f"canary:{i}")
        for i in range(m)
    ]


def run(args: argparse.Namespace, dp: bool, tok_dir: str, canaries: list[TextRecord], included: list[TextRecord]):
    def add(train: list[TextRecord]) -> list[TextRecord]:
        return train + included

    dm = TextClassificationDataModule(
        tokenizer=tok_dir,
        synthetic_size=args.n_train,
        val_fraction=0.1,
        max_length=32,
        batch_size=args.batch_size,
        eval_batch_size=256,
        transforms=[add],
        seed=args.seed,
    )
    pl.seed_everything(args.seed, verbose=False)
    config = {**TINY_BERT, "hidden_size": args.hidden, "intermediate_size": 2 * args.hidden}
    model = TextClassifier(
        config=config, vocab_size=len(dm.get_tokenizer()), lr=args.dp_lr if dp else args.lr, warmup_steps=50
    )
    callbacks = []
    privacy = None
    if dp:
        privacy = DifferentialPrivacy(target_epsilon=args.epsilon, max_grad_norm=args.max_grad_norm, accountant="prv")
        callbacks.append(privacy)
    ns = argparse.Namespace(seed=args.seed, epochs=args.epochs, max_steps=-1, model_path=None, out_dir=args.out_dir)
    with tempfile.TemporaryDirectory() as root:
        _, seconds = common.fit(model, dm, ns, callbacks, enable_progress_bar=False, default_root_dir=root)
    model.eval()
    losses = []
    with torch.no_grad():
        for batch in dm.loader_for(canaries, batch_size=256):
            losses.append(model.per_sample_loss(batch))
    scores = -torch.cat(losses)
    return model, dm, privacy, scores, seconds


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base = synthetic_classification(args.n_train, seed=args.seed)
    canaries = make_canaries(args.canaries, args.canary_words, args.seed)
    included, mask = include_half(canaries, seed=args.seed + 1)
    # every canary twice, included or not: its made-up words become whole tokens either way
    tok = train_tokenizer([r.text for r in base + canaries + canaries], vocab_size=8192, cache_dir=None)
    whole = sum(len(tok.tokenize(r.text)) == args.canary_words for r in canaries) / len(canaries)
    rows = []
    with tempfile.TemporaryDirectory() as tok_dir:
        tok.save_pretrained(tok_dir)
        for dp in [r == "dp" for r in args.runs]:
            model, dm, privacy, scores, seconds = run(args, dp, tok_dir, canaries, included)
            result = canary_audit(scores, mask)
            rows.append(
                {
                    "run": f"DP-SGD eps={args.epsilon:g}" if dp else "non-private",
                    "claimed_eps": round(privacy.epsilon(), 3) if privacy else "inf",
                    "noise": round(privacy.noise_multiplier or 0.0, 3) if privacy else 0.0,
                    "clean_acc": common.clean_accuracy(model, dm),
                    **result.as_row(),
                    "train_s": round(seconds, 1),
                }
            )
    meta = {
        "data": f"synthetic sentiment, {args.n_train} base examples (10% held out for clean_acc)",
        "canaries": f"{args.canaries} out-of-distribution sentences of {args.canary_words} made-up words "
        f"(whole tokens: {whole:.0%}), random labels, {int(mask.sum())} included (p=1/2)",
        "model": f"BERT from scratch, hidden {args.hidden}, 2 layers",
        "training": f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr} (DP lr {args.dp_lr}), "
        f"C={args.max_grad_norm}, Poisson sampling for DP",
        "score": "-loss of the canary under its label; bounds at 95% confidence (Bonferroni over k / thresholds)",
    }
    common.write_results("privacy_audit", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
