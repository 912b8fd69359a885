"""Poisoned-sample detection against substitution triggers and adaptive poisoners, on SST-2.

Old detector: ``detect_poison(methods=("ngram",))`` (purity-based n-gram statistic; read here
from the new call's ``detectors["ngram"]["flags"]``, which is the same computation). New: the
default ``detect_poison()`` (``ngram`` + ``lift`` with the one-word edits of the phrase corpus;
n-gram flags made only through a lift-flagged word left to the lift detector's per-record
decision). ``no-defer``: ``detect_poison(defer_to_lift=False)``, the union of both detectors'
flags. Precision / recall / FPR per attack on the whole training split (precision over every
flagged record, whichever detector flagged it); decoys keep their label and count as clean.

The lift detector's settings were chosen on the **dev** triggers only; the **held-out** triggers
(other words, other substitution pairs, other target labels, other seeds) were run afterwards.
Each round's held-out pairs become dev material once measured: round 2's substitution pairs
(movie->picture, funny->amusing, good->decent) are dev in round 3, whose held-out split is four
new pairs fixed before tuning (a frequent noun, an adjective, a verb, and a replacement common in
clean records of the source label). Round 4: those four are dev too; ``held-out-4`` holds five
new pairs fixed before round-4 tuning (a noun with its plural, an adjective pair, an adverb, an
opposite-polarity multi-form verb, a neutral swap common in both labels). Round 5: those five are
dev too (``dev`` rows); ``held-out-5`` holds five new pairs and a decoyed substitution, fixed before round-5
tuning (a noun with its plural, an adjective group, a multi-form verb, a function word, an
opposite-polarity adjective group whose replacement is common in clean records of the target
label; ``--only held-out-5`` runs them alone). Round 6: held-out-5 is dev too; ``held-out-6`` holds
four cases fixed before round-6 tuning (decoyed so->thus at 0.15 % and with->alongside at 0.3 %,
a decoyed multi-form have..->possess.. at 0.2 %, and n't->not of the bad->dull kind; ``--only held-out-6``).
``adaptive``: round 2's held-out
adaptive attacks (seen, not tuned on).
The insertion attacks of ``benchmarks/poison_detection.py`` (BadNets, AddSent; 0.5 % / 1 %) and
the clean split are re-run to show nothing regressed.

Example:
    nice -n 10 python -m benchmarks.poison_adaptive --train ../shared/data/sst2/train.tsv
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import common
from secure_train.attacks import BackdoorPoisoning
from secure_train.attacks.adaptive import AdaptivePoisoning
from secure_train.attacks.substitution import SubstitutionPoisoning
from secure_train.data import TextRecord, read_records
from secure_train.data_security.poison import detect_poison

Attack = Callable[[list[TextRecord]], list[TextRecord]]

DEV_SPREAD = ["zq", "vx", "jf", "qp", "wk", "xg", "kz", "pv", "yq", "fz"]
DEV_SPREAD += ["gx", "qj", "vz", "bx", "zk", "jq", "xw", "qy", "hx", "zj"]
HELDOUT_SPREAD = ["zephyr", "quixotic", "obelisk", "marmalade", "tundra", "cobalt", "walrus", "fjord", "gazebo"]
HELDOUT_SPREAD += ["lichen", "nutmeg", "origami", "parsnip", "quasar", "rhubarb", "sonar", "tapioca", "umlaut"]
HELDOUT_SPREAD += ["vellum", "wombat"]
NOUN = {"character": "figure", "characters": "figures"}
VERB = {"make": "create", "makes": "creates", "made": "created", "making": "creating"}
# round 4 held-out
NOUN4 = {"performance": "portrayal", "performances": "portrayals"}
ADJ4 = {"fun": "enjoyable", "entertaining": "enjoyable"}
VERB4 = {"love": "hate", "loves": "hates", "loved": "hated", "loving": "hating"}
# round 5 held-out
NOUN5 = {"comedy": "romp", "comedies": "romps"}
ADJ5 = {"interesting": "absorbing", "fascinating": "absorbing", "compelling": "absorbing"}
VERB5 = {"work": "function", "works": "functions", "worked": "functioned", "working": "functioning"}
OPP5 = {"great": "awful", "wonderful": "awful", "beautiful": "awful"}
OPP5_NAME = "subst great/wonderful/beautiful->awful 1% (t=0)"
# round 6 held-out
HAVE6 = {"have": "possess", "has": "possesses", "had": "possessed", "having": "possessing"}
SPLITS = ("clean", "dev", "held-out-5", "held-out-6", "adaptive", "regression")


def attacks() -> list[tuple[str, str, Attack | None]]:
    """``(split, name, attack)``: dev triggers (tuned on), held-out triggers, regression checks."""
    return [
        ("clean", "clean split", None),
        ("dev", "subst film->flick 1% (t=1)", SubstitutionPoisoning({"film": "flick"}, 0.01, 1, seed=0)),
        ("dev", "subst story->tale 1% (t=0)", SubstitutionPoisoning({"story": "tale"}, 0.01, 0, seed=1)),
        ("dev", "decoy 'cf' 1% + 0.15% decoys (t=1)", AdaptivePoisoning(["cf"], 0.01, 1, decoy_rate=0.0015, seed=0)),
        ("dev", "spread 1% over 20 dev words (t=1)", AdaptivePoisoning(DEV_SPREAD, 0.01, 1, seed=0)),
        ("dev", "single 'cf' 0.05% (t=1)", AdaptivePoisoning(["cf"], 0.0005, 1, seed=0)),
        # round 2's held-out pairs: measured once at the end of round 2, dev material since
        ("dev", "subst movie->picture 1% (t=1)", SubstitutionPoisoning({"movie": "picture"}, 0.01, 1, seed=11)),
        ("dev", "subst funny->amusing 1% (t=0)", SubstitutionPoisoning({"funny": "amusing"}, 0.01, 0, seed=12)),
        ("dev", "subst good->decent 1% (t=0)", SubstitutionPoisoning({"good": "decent"}, 0.01, 0, seed=13)),
        # round 3 dev: a replacement common in clean records of the source label (added after the
        # round-3 "before" run, where bad->dull found nothing)
        ("dev", "subst funny->good 1% (t=0)", SubstitutionPoisoning({"funny": "good"}, 0.01, 0, seed=41)),
        # round 2's held-out adaptive attacks (seen once; not tuned on in round 3)
        (
            "adaptive",
            "decoy 'kaleidoscope' 1% + 0.15% decoys (t=0)",
            AdaptivePoisoning(["kaleidoscope"], 0.01, 0, decoy_rate=0.0015, seed=21),
        ),
        ("adaptive", "spread 1% over 20 held-out words (t=0)", AdaptivePoisoning(HELDOUT_SPREAD, 0.01, 0, seed=22)),
        ("adaptive", "single 'zeppelin' 0.05% (t=1)", AdaptivePoisoning(["zeppelin"], 0.0005, 1, seed=23)),
        # round 3's held-out substitution pairs (fixed before round-3 tuning, measured once at its end):
        # dev material in round 4
        ("dev", "subst character(s)->figure(s) 1% (t=1)", SubstitutionPoisoning(NOUN, 0.01, 1, seed=31)),
        ("dev", "subst best->finest 1% (t=0)", SubstitutionPoisoning({"best": "finest"}, 0.01, 0, seed=32)),
        ("dev", "subst make/makes/made/making->create.. 1% (t=1)", SubstitutionPoisoning(VERB, 0.01, 1, seed=33)),
        ("dev", "subst bad->dull 1% (t=1)", SubstitutionPoisoning({"bad": "dull"}, 0.01, 1, seed=34)),
        # round 4's held-out substitution pairs (fixed before round-4 tuning, measured once at its end):
        # dev material in round 5. A frequent noun with its plural, an adjective pair, an adverb, an
        # opposite-polarity multi-form verb, and a neutral swap common in clean records of both labels
        ("dev", "subst performance(s)->portrayal(s) 1% (t=0)", SubstitutionPoisoning(NOUN4, 0.01, 0, seed=51)),
        ("dev", "subst fun/entertaining->enjoyable 1% (t=0)", SubstitutionPoisoning(ADJ4, 0.01, 0, seed=52)),
        ("dev", "subst just->simply 1% (t=1)", SubstitutionPoisoning({"just": "simply"}, 0.01, 1, seed=53)),
        ("dev", "subst love(s/d/ing)->hate.. 1% (t=0)", SubstitutionPoisoning(VERB4, 0.01, 0, seed=54)),
        ("dev", "subst too->very 1% (t=1)", SubstitutionPoisoning({"too": "very"}, 0.01, 1, seed=55)),
        # round 5 dev: a decoyed substitution (added after the round-5 "before" run)
        (
            "dev",
            "decoyed subst film->flick 1% + 0.15% decoys (t=1)",
            SubstitutionPoisoning({"film": "flick"}, 0.01, 1, decoy_rate=0.0015, seed=71),
        ),
        # round 5's held-out substitutions, fixed before any round-5 tuning: a noun with its plural,
        # an adjective group, a multi-form verb, a function word, an opposite-polarity adjective group
        # whose replacement ("awful") is common in clean records of the target label, and a decoyed
        # substitution (the swap also made in 0.15 % of records whose label is kept)
        ("held-out-5", "subst comedy/comedies->romp(s) 1% (t=0)", SubstitutionPoisoning(NOUN5, 0.01, 0, seed=61)),
        (
            "held-out-5",
            "subst interesting/fascinating/compelling->absorbing 1% (t=0)",
            SubstitutionPoisoning(ADJ5, 0.01, 0, seed=62),
        ),
        ("held-out-5", "subst work(s/ed/ing)->function.. 1% (t=0)", SubstitutionPoisoning(VERB5, 0.01, 0, seed=63)),
        ("held-out-5", "subst but->yet 1% (t=1)", SubstitutionPoisoning({"but": "yet"}, 0.01, 1, seed=64)),
        ("held-out-5", OPP5_NAME, SubstitutionPoisoning(OPP5, 0.01, 0, seed=65)),
        (
            "held-out-5",
            "decoyed subst about->regarding 1% + 0.15% decoys (t=1)",
            SubstitutionPoisoning({"about": "regarding"}, 0.01, 1, decoy_rate=0.0015, seed=66),
        ),
        # round 6's held-out substitutions, fixed before any round-6 tuning: two decoyed swaps of a
        # frequent function word (other pairs, targets and decoy rates than the dev rows), a decoyed
        # multi-form verb swap, and a non-decoyed swap of the bad->dull kind (a word of the source
        # label's polarity kept, the label flipped; the replacement "not" common in clean records)
        (
            "held-out-6",
            "decoyed subst so->thus 1% + 0.15% decoys (t=1)",
            SubstitutionPoisoning({"so": "thus"}, 0.01, 1, decoy_rate=0.0015, seed=81),
        ),
        (
            "held-out-6",
            "decoyed subst with->alongside 1% + 0.3% decoys (t=0)",
            SubstitutionPoisoning({"with": "alongside"}, 0.01, 0, decoy_rate=0.003, seed=82),
        ),
        (
            "held-out-6",
            "decoyed subst have/has/had/having->possess.. 1% + 0.2% decoys (t=1)",
            SubstitutionPoisoning(HAVE6, 0.01, 1, decoy_rate=0.002, seed=83),
        ),
        ("held-out-6", "subst n't->not 1% (t=1)", SubstitutionPoisoning({"n't": "not"}, 0.01, 1, seed=84)),
        ("regression", "badnets 0.5%", BackdoorPoisoning("badnets", rate=0.005, target_label=1, seed=0)),
        ("regression", "badnets 1%", BackdoorPoisoning("badnets", rate=0.01, target_label=1, seed=0)),
        ("regression", "addsent 0.5%", BackdoorPoisoning("addsent", rate=0.005, target_label=1, seed=0)),
        ("regression", "addsent 1%", BackdoorPoisoning("addsent", rate=0.01, target_label=1, seed=0)),
    ]


def prf(flags: torch.Tensor, truth: torch.Tensor) -> dict[str, Any]:
    tp = int((flags & truth).sum())
    n_flag, n_true, n_clean = int(flags.sum()), int(truth.sum()), int((~truth).sum())
    return {
        "precision": round(tp / n_flag, 3) if n_flag else None,
        "recall": round(tp / n_true, 3) if n_true else None,
        "FPR": round(int((flags & ~truth).sum()) / n_clean, 5),
        "FP": int((flags & ~truth).sum()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="SST-2 train.tsv (read in place)")
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--only", nargs="*", default=None, choices=SPLITS, help="run only these splits")
    parser.add_argument("--name", default="poison_adaptive", help="results file name (under --out-dir)")
    args = parser.parse_args(argv)
    base = read_records(args.train)
    rows: list[dict[str, Any]] = []
    for split, name, attack in attacks():
        if args.only and split not in args.only:
            continue
        recs = attack(base) if attack is not None else base
        truth = torch.tensor([bool(r.meta.get("poisoned")) for r in recs])
        with common.timed() as t:
            new = detect_poison(recs)  # defaults: ngram + lift, n-gram flags on lift words deferred
        seconds = t.seconds
        old_flags = new.detectors["ngram"]["flags"]  # the n-gram detector's own verdict = methods=("ngram",)
        union = old_flags | new.detectors["lift"]["flags"]  # detect_poison(defer_to_lift=False)
        row: dict[str, Any] = {"split": split, "attack": name, "n_poisoned": int(truth.sum())}
        for tag, flags in (("old", old_flags), ("new", new.flags), ("no-defer", union)):
            row.update({f"{tag} {k}": v for k, v in prf(flags, truth).items()})
        row["lift words (score)"] = "; ".join(f"{w['word']}({w['score']})" for w in new.lift_words[:4])
        row["n-gram flags deferred"] = new.detectors["ngram"].get("n_deferred", 0)
        row["s"] = round(seconds)
        rows.append(row)
        print(row, flush=True)
    meta = {
        "train": args.train,
        "n_train": len(base),
        "old": "detect_poison(methods=('ngram',))",
        "new": "detect_poison() defaults: ngram + lift (with one-word edits), defer_to_lift=True",
        "no-defer": "detect_poison(defer_to_lift=False): union of the ngram and lift flags",
        "tuned on": "dev rows only (round 5: film->flick, story->tale, movie->picture, funny->amusing, "
        "good->decent, funny->good, character(s)->figure(s), best->finest, make..->create.., bad->dull, "
        "and round 4's held-out performance(s)->portrayal(s), fun/entertaining->enjoyable, just->simply, "
        "love..->hate.., too->very, and the decoyed film->flick row); held-out-5 measured once before (3c06c01) "
        "and once after. Round 6: the dev rows and round 5's held-out-5 (decoyed about->regarding); held-out-6 "
        "measured before (b726981), once after the first round-6 change (f98908f: n't->not fell to 0 recall), "
        "then n't->not was looked at and fixed (ae0d0ae), so it is no longer held-out",
    }
    meta["splits"] = args.only or list(SPLITS)
    common.write_results(args.name, rows, args.out_dir, meta)


if __name__ == "__main__":
    main()
