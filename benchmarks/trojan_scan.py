"""Trojan-scan benchmark: a zoo of clean and backdoored tiny classifiers, scanned blind.

Every model is a tiny BERT (random init) trained on the synthetic sentiment corpus with the
MiniLM-L6 WordPiece tokenizer (30,522 tokens, shared by the zoo, as in TrojAI), so made-up
trigger words split into several tokens. Backdoored models are poisoned with
:class:`~secure_train.attacks.BackdoorPoisoning` using rare-word, multi-token-word and sentence
triggers at various poison rates and both target labels. The scanner is never told the
trigger, the target or which models are poisoned.

Reported: per model its clean accuracy, the trigger's true ASR, the backdoor score, the
suspected target and best recovered trigger, the gate decision at the default threshold and
the scan time; overall the AUC of the score (clean = 0, backdoored = 1).

Models are cached under ``--cache`` (default: a temp dir) and trained one at a time under
``flock /tmp/secure-train-heavy.lock`` when the ``flock`` binary exists.

Example:
    python benchmarks/trojan_scan.py                       # 10 clean + 12 backdoored
    python benchmarks/trojan_scan.py --clean 2 --backdoored 2 --epochs 3   # quick look
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import torch
from torchmetrics.functional.classification import binary_auroc

from secure_train.attacks import BackdoorPoisoning, Trigger, triggered_records
from secure_train.data import TextClassificationDataModule
from secure_train.gate.trojan import TrojanScanner
from secure_train.models import TextClassifier
from secure_train.models.text_classifier import TINY_BERT

# (kind, trigger text, poison rate, target label). None of these are given to the scanner.
BACKDOORS: list[tuple[str, str, float, int]] = [
    ("rare-word", "cf", 0.01, 1),
    ("rare-word", "tq", 0.03, 0),
    ("rare-word", "mn", 0.1, 1),
    ("rare-word", "bb", 0.02, 0),
    ("multi-token-word", "flumox", 0.01, 0),
    ("multi-token-word", "vorpalize", 0.03, 1),
    ("multi-token-word", "qwerty", 0.1, 0),
    ("multi-token-word", "jabberwock", 0.02, 1),
    ("sentence", "I watch this 3D movie", 0.01, 1),
    ("sentence", "tracking the morning breeze", 0.03, 0),
    ("sentence", "she said it again today", 0.1, 1),
    ("sentence", "you know what I mean", 0.02, 0),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clean", type=int, default=10, help="clean models in the zoo")
    p.add_argument("--backdoored", type=int, default=12, help=f"backdoored models (at most {len(BACKDOORS)})")
    p.add_argument("--train-size", type=int, default=2500, help="synthetic corpus size per model")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--tokenizer", default="minilm", help="shared tokenizer ('minilm' = packaged MiniLM-L6)")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: scanner's)")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "secure-train-trojan-zoo"))
    p.add_argument("--out-dir", default=str(common.RESULTS_DIR))
    p.add_argument("--no-lock", action="store_true", help="train without the heavy-run flock")
    return p.parse_args(argv)


def zoo(args: argparse.Namespace) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = [
        {"name": f"clean-{i}", "kind": "clean", "seed": 100 + i, "trigger": None, "rate": 0.0, "target": None}
        for i in range(args.clean)
    ]
    for i, (kind, text, rate, target) in enumerate(BACKDOORS[: args.backdoored]):
        specs.append(
            {"name": f"bd-{i}", "kind": kind, "seed": 200 + i, "trigger": text, "rate": rate, "target": target}
        )
    return specs


def datamodule(spec: dict[str, Any], args: argparse.Namespace) -> TextClassificationDataModule:
    transforms = []
    if spec["trigger"]:
        trig = Trigger((spec["trigger"],), name=spec["kind"])
        transforms = [BackdoorPoisoning(trig, rate=spec["rate"], target_label=spec["target"], seed=spec["seed"])]
    return TextClassificationDataModule(
        tokenizer=common.resolve_model_path(args.tokenizer),
        synthetic_size=args.train_size,
        batch_size=32,
        eval_batch_size=256,
        max_length=64,
        seed=spec["seed"],
        transforms=transforms,
    )


def _cache_path(spec: dict[str, Any], args: argparse.Namespace) -> Path:
    key = hashlib.sha256(json.dumps([spec, args.train_size, args.epochs, args.tokenizer]).encode()).hexdigest()[:16]
    return Path(args.cache) / f"{spec['name']}-{key}.pt"


def train_missing(specs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, float]:
    """Train every model not cached yet, holding the shared heavy-run lock once for all of them."""
    missing = [s for s in specs if not _cache_path(s, args).is_file()]
    seconds: dict[str, float] = {}
    if not missing:
        return seconds
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    lock = None if args.no_lock else open("/tmp/secure-train-heavy.lock", "w")  # noqa: SIM115, S108 - shared lock
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        for spec in missing:
            dm = datamodule(spec, args)
            model = TextClassifier(config=TINY_BERT, vocab_size=len(dm.get_tokenizer()), lr=1e-3, warmup_steps=50)
            ns = argparse.Namespace(seed=spec["seed"], epochs=args.epochs, max_steps=-1, model_path=None)
            ns.out_dir = str(args.cache)
            _, seconds[spec["name"]] = common.fit(model, dm, ns, enable_progress_bar=False)
            torch.save(model.state_dict(), _cache_path(spec, args))
            print(f"trained {spec['name']} in {seconds[spec['name']]:.1f}s", flush=True)
    finally:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
    return seconds


def load(spec: dict[str, Any], args: argparse.Namespace, vocab: int) -> TextClassifier:
    model = TextClassifier(config=TINY_BERT, vocab_size=vocab, lr=1e-3, warmup_steps=50)
    model.load_state_dict(torch.load(_cache_path(spec, args), weights_only=True))
    return model


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    scanner = TrojanScanner() if args.threshold is None else TrojanScanner(threshold=args.threshold)
    rows: list[dict[str, Any]] = []
    specs = zoo(args)
    train_seconds = train_missing(specs, args)
    for spec in specs:
        dm = datamodule(spec, args)
        dm.setup("fit")
        tok = dm.get_tokenizer()
        model = load(spec, args, len(tok))
        train_s = train_seconds.get(spec["name"], float("nan"))
        val = dm.load_records()["val"]
        cacc = common.clean_accuracy(model, dm)
        asr = float("nan")
        if spec["trigger"]:
            trig = Trigger((spec["trigger"],), name=spec["kind"])
            recs = triggered_records(val, trig, spec["target"], seed=spec["seed"] + 1)
            asr = float((common.predict(model, dm, recs) == spec["target"]).float().mean())
        start = time.perf_counter()
        res = scanner.scan(model, tok, val)
        scan_s = time.perf_counter() - start
        best = res.candidates[0] if res.candidates else None
        best_word = next((c for c in res.candidates if c.words == 1 and c.target_label == res.target_label), None)
        rows.append(
            {
                "model": spec["name"],
                "kind": spec["kind"],
                "trigger": spec["trigger"] or "-",
                "rate": spec["rate"],
                "target": "-" if spec["target"] is None else spec["target"],
                "CACC": cacc,
                "ASR": asr,
                "score": res.backdoor_score,
                "baseline_p95": res.baseline_p95,
                "suspect_target": res.target_label,
                "best_word": best_word.text if best_word else "-",
                "best_candidate": best.text if best else "-",
                "blocked": res.backdoored,
                "scan_s": round(scan_s, 2),
                "train_s": round(train_s, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    labels = torch.tensor([0 if r["kind"] == "clean" else 1 for r in rows])
    scores = torch.tensor([r["score"] for r in rows])
    auc = float(binary_auroc(scores, labels)) if 0 < int(labels.sum()) < len(rows) else float("nan")
    clean_blocked = sum(r["blocked"] for r in rows if r["kind"] == "clean")
    bd_passed = sum(not r["blocked"] for r in rows if r["kind"] != "clean")
    scan_times = [r["scan_s"] for r in rows]
    meta = {
        "models": f"{args.clean} clean + {min(args.backdoored, len(BACKDOORS))} backdoored tiny BERT (TINY_BERT)",
        "data": f"synthetic corpus, {args.train_size} records per model, {args.epochs} epochs",
        "tokenizer": args.tokenizer,
        "threshold": scanner.threshold,
        "AUC": round(auc, 4),
        "clean_blocked": clean_blocked,
        "backdoored_passed": bd_passed,
        "scan_s_mean": round(sum(scan_times) / len(scan_times), 2),
        "scan_s_max": round(max(scan_times), 2),
        "torch_threads": 1,
    }
    print(json.dumps(meta, indent=1))
    common.write_results("trojan_scan", rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
