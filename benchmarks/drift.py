"""Drift benchmark: does DriftMonitor alert on degraded streams and stay quiet on an unchanged one?

A tiny BERT is trained on the synthetic corpus; its predictions on a held-out reference set
are the reference. Then streams of ``--windows`` windows of ``--window`` inputs each, drawn
from fresh synthetic records (a different seed than training and reference), are judged
window by window:

- ``unchanged``: the same distribution;
- ``label shift``: 85% positive records instead of ~50%;
- ``covariate: drop words``: half of each input's words removed;
- ``covariate: noise tokens``: three rare noise tokens inserted per input;
- ``covariate: typos``: 30% of the words get a character swapped.

Reported per stream: windows with an alert, the share alerted, and the median PSI, KS
statistic and label Jensen–Shannon divergence.

Example:
    python -m benchmarks.drift                 # ~1 min of CPU
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from dataclasses import replace

import torch

from benchmarks import common
from secure_train.data import TextRecord, synthetic_classification
from secure_train.monitoring.drift import DriftMonitor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(p)
    p.add_argument("--window", type=int, default=200, help="predictions per window")
    p.add_argument("--windows", type=int, default=20, help="windows per stream")
    p.add_argument("--reference-size", type=int, default=2000)
    return p.parse_args(argv)


def _drop(text: str, rng: random.Random) -> str:
    return " ".join(w for w in text.split() if rng.random() < 0.5) or text.split()[0]


def _noise(text: str, rng: random.Random) -> str:
    words = text.split()
    for tok in rng.sample(["zq", "xv", "qk", "vj", "wx"], 3):
        words.insert(rng.randrange(len(words) + 1), tok)
    return " ".join(words)


def _typos(text: str, rng: random.Random) -> str:
    out = []
    for w in text.split():
        if len(w) > 3 and rng.random() < 0.3:
            i = rng.randrange(len(w) - 1)
            w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
        out.append(w)
    return " ".join(out)


def stream(kind: str, n: int, seed: int) -> list[TextRecord]:
    rng = random.Random(seed)
    pool = synthetic_classification(n * 3, seed=seed, id_offset=5 * 10**8)
    if kind == "label shift":
        pos = [r for r in pool if r.label == 1]
        neg = [r for r in pool if r.label == 0]
        k = int(0.85 * n)
        recs = rng.sample(pos, k) + rng.sample(neg, n - k)
        rng.shuffle(recs)
        return recs
    recs = pool[:n]
    corrupt: dict[str, Callable[[str, random.Random], str]] = {
        "covariate: drop words": _drop,
        "covariate: noise tokens": _noise,
        "covariate: typos": _typos,
    }
    if kind in corrupt:
        return [replace(r, text=corrupt[kind](r.text, rng)) for r in recs]
    return recs


@torch.no_grad()
def probs(model, dm, records: list[TextRecord]) -> torch.Tensor:
    model.eval()
    out = [model(b).float().softmax(-1) for b in dm.loader_for(records, batch_size=256)]
    return torch.cat(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    dm = common.build_datamodule(args)
    model = common.build_model(args)
    common.fit(model, dm, args, enable_progress_bar=False)
    reference = synthetic_classification(args.reference_size, seed=args.seed + 1000, id_offset=4 * 10**8)
    monitor = DriftMonitor(reference=probs(model, dm, reference))
    rows = []
    kinds = ["unchanged", "label shift", "covariate: drop words", "covariate: noise tokens", "covariate: typos"]
    for i, kind in enumerate(kinds):
        recs = stream(kind, args.window * args.windows, seed=args.seed + 2000 + i)
        p = probs(model, dm, recs)
        reports = [monitor.compare(p[j : j + args.window]) for j in range(0, len(recs), args.window)]
        acc = float((p.argmax(-1) == torch.tensor([r.label for r in recs])).float().mean())
        rows.append(
            {
                "stream": kind,
                "windows": len(reports),
                "alerts": sum(r.alert for r in reports),
                "alert_rate": sum(r.alert for r in reports) / len(reports),
                "accuracy": acc,
                "median_psi": statistics.median(r.psi for r in reports),
                "median_ks": statistics.median(r.ks for r in reports),
                "median_js": statistics.median(r.js for r in reports),
            }
        )
    meta = {
        "model": args.model_path or "tiny-bert",
        "train": "synthetic (4000 records)" if args.train is None else args.train,
        "window": args.window,
        "windows": args.windows,
        "reference_size": args.reference_size,
        "thresholds": {"psi": monitor.psi_threshold, "ks_alpha": monitor.ks_alpha, "js": monitor.js_threshold},
        "seed": args.seed,
    }
    common.write_results("drift", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
