"""Poisoned-sample detection on SST-2: precision / recall of each detector, then ASR and CACC.

Part A (``--part detect``, model-free, the whole training file): poison the training split
with the backdoor yardstick (BadNets rare words, AddSent sentence; dirty- and clean-label;
several rates), run the ``ngram`` detector on all of it, report precision, recall and the
false-positive rate (flagged clean records / clean records); and the FPR on clean data.
``--ablation`` adds the detector without the overlap collapse (plain per-record counts).

Part B (``--part train``, MiniLM-L6): poison the whole training file, optionally sanitize it
(``PoisonSanitizer`` with the ``ngram`` detector, run on the whole file), then train on a
random ``--subset`` of what is left (CPU budget) and report CACC on dev and ASR on triggered
dev sentences, undefended vs sanitized. The undefended model's [CLS] features over its
training subset feed the representation detectors (spectral signatures with the oracle
``expected_rate``, and without it; activation clustering), whose precision / recall are
reported on that subset, with the combined pipeline (ngram OR spectral OR clustering).

Examples:
    python -m benchmarks.poison_detection --part detect --train ../shared/data/sst2/train.tsv
    python -m benchmarks.poison_detection --part train --train ../shared/data/sst2/train.tsv \\
        --dev ../shared/data/sst2/dev.tsv --model-path minilm --subset 4000 --rates 0.01
"""

from __future__ import annotations

import argparse
import random
import tempfile
from typing import Any

import torch

from benchmarks import common
from secure_train.attacks import BackdoorPoisoning, triggered_records
from secure_train.attacks.metrics import AttackSuccessRate, CleanAccuracy
from secure_train.data import TextRecord, read_records
from secure_train.data_security.poison import PoisonSanitizer, detect_poison, extract_features


class Subsample:
    """Record transform: a seeded random subset of ``n`` records (kept in id order)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        picked = random.Random(self.seed).sample(records, min(self.n, len(records)))
        return sorted(picked, key=lambda r: r.sample_id)


def prf(flagged: set[int], truth: set[int], n_total: int) -> dict[str, float]:
    tp = len(flagged & truth)
    n_clean = n_total - len(truth)
    return {
        "precision": tp / len(flagged) if flagged else float("nan"),
        "recall": tp / len(truth) if truth else float("nan"),
        "FPR": len(flagged - truth) / n_clean if n_clean else float("nan"),
        "n_flagged": len(flagged),
    }


def part_detect(args: argparse.Namespace) -> None:
    base = read_records(args.train)
    rows: list[dict[str, Any]] = []
    configs: list[tuple[str, float, bool]] = [("clean", 0.0, False)]
    configs += [(a, r, cl) for cl in (False, True) for a in args.attack for r in args.rates]
    variants = [("ngram", True)] + ([("ngram-no-collapse", False)] if args.ablation else [])
    for attack, rate, clean_label in configs:
        if rate > 0:
            recs = BackdoorPoisoning(attack, rate=rate, target_label=1, clean_label=clean_label, seed=args.seed)(base)
        else:
            recs = base
        truth = {r.sample_id for r in recs if r.meta.get("poisoned")}
        for name, collapse in variants:
            with common.timed() as t:
                report = detect_poison(recs, methods=("ngram",), collapse_overlaps=collapse)
            seconds = t.seconds
            row = {
                "detector": name,
                "attack": attack,
                "label": "clean-label" if clean_label else "dirty-label",
                "rate": rate,
                "n_poisoned": len(truth),
                **prf(set(report.flagged_ids), truth, len(recs)),
                "ngrams": "; ".join(g["ngram"] for g in report.ngrams[:6]),
                "seconds": round(seconds, 1),
            }
            rows.append(row)
            print(row, flush=True)
    meta = {"train": args.train, "n_train": len(base), "seed": args.seed, "detector": "ngram (model-free)"}
    common.write_results("poison_detection_modelfree", rows, args.out_dir, meta)


def evaluate(model: Any, dm: Any, attack: str, seed: int) -> tuple[float, float]:
    val = dm.load_records()["val"]
    cacc, asr = CleanAccuracy(2), AttackSuccessRate(1)
    cacc.update(common.predict(model, dm, val), torch.tensor([r.label for r in val]))
    trig = triggered_records(val, attack, 1, seed=seed + 1)
    asr.update(common.predict(model, dm, trig), torch.tensor([r.label for r in trig]))
    return float(cacc.compute()), float(asr.compute())


def part_train(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    det_rows: list[dict[str, Any]] = []
    if args.clean_baseline:
        dm = common.build_datamodule(args, [Subsample(args.subset)])
        model = common.build_model(args)
        _, seconds = common.fit(model, dm, args, enable_progress_bar=False, default_root_dir=tempfile.mkdtemp())
        for attack in args.attack:
            cacc, asr = evaluate(model, dm, attack, args.seed)
            rows.append(
                {
                    "attack": attack,
                    "rate": 0.0,
                    "training": "clean (no poison)",
                    "n_train": len(dm.load_records()["train"]),
                    "n_poisoned_in_train": 0,
                    "CACC": cacc,
                    "ASR": asr,
                    "train_s": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    for attack in args.attack:
        for rate in args.rates:
            poison = BackdoorPoisoning(attack, rate=rate, target_label=1, clean_label=args.clean_label, seed=args.seed)
            for defended in (False, True):
                sanitizer = PoisonSanitizer(("ngram",)) if defended else None
                transforms: list[Any] = [poison] + ([sanitizer] if sanitizer else []) + [Subsample(args.subset)]
                dm = common.build_datamodule(args, transforms)
                train = dm.load_records()["train"]
                model = common.build_model(args)
                _, seconds = common.fit(model, dm, args, enable_progress_bar=False, default_root_dir=tempfile.mkdtemp())
                cacc, asr = evaluate(model, dm, attack, args.seed)
                truth = {r.sample_id for r in train if r.meta.get("poisoned")}
                row = {
                    "attack": attack,
                    "rate": rate,
                    "training": "sanitized (ngram)" if defended else "undefended",
                    "n_train": len(train),
                    "n_poisoned_in_train": len(truth),
                    "CACC": cacc,
                    "ASR": asr,
                    "train_s": round(seconds, 1),
                }
                if sanitizer is not None and sanitizer.report is not None:
                    row["dropped_full_corpus"] = int(sanitizer.report.flags.sum())
                rows.append(row)
                print(row, flush=True)
                if defended:
                    continue
                # representation detectors on the undefended model's features over its training subset
                feats, ids = extract_features(model, dm.loader_for(train, batch_size=128), pooling="cls")
                assert ids.tolist() == [r.sample_id for r in train]
                full_ngram = detect_poison(train, methods=("ngram",))  # on the subset alone
                variants = {
                    "ngram (subset only)": full_ngram,
                    "spectral (oracle rate)": detect_poison(
                        train, methods=("spectral",), features=feats, expected_rate=rate
                    ),
                    "spectral (robust z > 6)": detect_poison(train, methods=("spectral",), features=feats),
                    "activation clustering": detect_poison(train, methods=("clustering",), features=feats),
                }
                # the pipeline: n-gram flags from the whole corpus, OR spectral (robust), OR clustering
                corpus_report = detect_poison(poison(read_records(args.train)), methods=("ngram",))
                corpus_flags = set(corpus_report.flagged_ids)
                combined = (
                    corpus_flags
                    | set(variants["spectral (robust z > 6)"].flagged_ids)
                    | set(variants["activation clustering"].flagged_ids)
                )
                subset_ids = {r.sample_id for r in train}
                for name, rep in variants.items():
                    det_rows.append(
                        {
                            "attack": attack,
                            "rate": rate,
                            "detector": name,
                            **prf(set(rep.flagged_ids), truth, len(train)),
                        }
                    )
                det_rows.append(
                    {
                        "attack": attack,
                        "rate": rate,
                        "detector": "ngram (whole corpus), on subset",
                        **prf(corpus_flags & subset_ids, truth, len(train)),
                    }
                )
                det_rows.append(
                    {
                        "attack": attack,
                        "rate": rate,
                        "detector": "combined: ngram(corpus) OR spectral OR AC",
                        **prf(combined & subset_ids, truth, len(train)),
                    }
                )
                for r in det_rows[-6:]:
                    print(r, flush=True)
    meta = {
        "train": args.train,
        "dev": args.dev,
        "model": args.model_path,
        "subset": args.subset,
        "max_length": args.max_length,
        "epochs": args.epochs or 1,
        "clean_label": args.clean_label,
        "seed": args.seed,
    }
    common.write_results("poison_detection_training", rows, args.out_dir, meta)
    common.write_results("poison_detection_representations", det_rows, args.out_dir, meta)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_args(parser)
    g = parser.add_argument_group("poison detection")
    g.add_argument("--part", choices=["detect", "train"], default="detect")
    g.add_argument("--attack", choices=["badnets", "addsent"], nargs="+", default=["badnets", "addsent"])
    g.add_argument("--rates", type=float, nargs="+", default=[0.005, 0.01, 0.05, 0.1])
    g.add_argument("--clean-label", action="store_true", help="part train: clean-label poisoning")
    g.add_argument("--ablation", action="store_true", help="part detect: also run without the overlap collapse")
    g.add_argument("--subset", type=int, default=4000, help="part train: training records after sanitizing")
    g.add_argument("--clean-baseline", action="store_true", help="part train: also train on unpoisoned data")
    args = parser.parse_args(argv)
    if args.train is None:
        parser.error("--train is required (e.g. ../shared/data/sst2/train.tsv)")
    if args.part == "train" and args.dev is None:
        parser.error("--part train needs --dev")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.part == "detect":
        part_detect(args)
    else:
        part_train(args)


if __name__ == "__main__":
    main()
