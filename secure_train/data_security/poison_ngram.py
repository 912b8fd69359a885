"""The ``ngram`` poison detector: a word n-gram whose label distribution is lopsided and almost pure.

``ngram`` (model-free; Z-defence, He et al., EMNLP 2023, extended from tokens to word n-grams
so sentence triggers such as "I watch this 3D movie" are caught): an insertion trigger is an
n-gram whose label distribution is far more lopsided than chance *and* almost pure. For every
word n-gram ``g`` (n = 1..``max_n``) and label ``y``, ``z = (c(g,y) - c(g) p_y) / sqrt(c(g) p_y (1 - p_y))``;
``g`` is flagged when ``z >= mean + z_sigma * std`` of all z-scores (n-grams seen at least
``min_count`` times), its label purity ``c(g,y)/c(g) >= min_purity``, and it is not explained
by a longer flagged n-gram (the counts of the longest flagged super-gram are subtracted and
the test repeated, so "watch" is not flagged because of "I watch this 3D movie"). Records
that contain a flagged n-gram and carry its label are flagged.

*Overlapping records.* SST-2's training split has 67k phrases cut from ~8.5k sentences: a
sentence and all its sub-phrases are separate records with their own labels, so each word of
a sentence is counted once per phrase that contains it, and ordinary sentiment words ("n't",
"bad", "too") reach z-scores above a 1 % trigger's. With ``collapse_overlaps=True`` (default)
every record joins the *family* of the longest record whose text contains it (at word
boundaries), and each (n-gram, label) is counted once per family. A corpus without
overlapping records is unaffected (every record is its own family); an inserted trigger makes
a record unique, so poisoned records stay separate families and keep their full weight.

The defaults (``z_sigma=3.5``, ``min_purity=0.9``, ``min_count=10``) come from SST-2: on the
clean training split (families collapsed, n-grams seen in >= 10 families) the z-scores have
mean 0 and std ~1.8, and the largest z of an n-gram at least 90 % pure is 5.4 ("flat",
"mess"), i.e. mean + 3.0 std, below the threshold (mean + 3.5 std, ~6.3). BadNets at 0.5 % (four words, ~85
records each) scores 7.6-8.9; a first setting of ``z_sigma=5`` missed three of its four
words. Like Z-defence, the test needs counts: a trigger must occur in dozens of records.

Example:
    >>> from secure_train.attacks import BackdoorPoisoning
    >>> from secure_train.data import synthetic_classification
    >>> recs = BackdoorPoisoning("addsent", rate=0.05, seed=0)(synthetic_classification(2000, seed=0))
    >>> grams, flags = ngram_label_statistics(recs)
    >>> sorted(g["ngram"] for g in grams), sum(flags) >= 95
    (['i watch this 3d', 'watch this 3d movie'], True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord

__all__ = ["ngram_label_statistics"]


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def _families(toks: Sequence[list[str]]) -> list[int]:
    """Index of the longest record containing each record (word-boundary substring), else itself."""
    keys = [" " + " ".join(t) + " " for t in toks]
    df: dict[str, int] = defaultdict(int)
    for t in toks:
        for w in set(t):
            df[w] += 1
    postings: dict[str, list[int]] = defaultdict(list)
    for i in sorted(range(len(toks)), key=lambda i: -len(keys[i])):
        for w in set(toks[i]):
            postings[w].append(i)
    family = list(range(len(toks)))
    for i, t in enumerate(toks):
        if not t:
            continue
        rarest = min(set(t), key=df.__getitem__)
        for j in postings[rarest]:
            if len(keys[j]) <= len(keys[i]):
                break
            if keys[i] in keys[j]:
                family[i] = j
                break
    return family


def _grams(tokens: list[str], max_n: int) -> set[str]:
    return {" ".join(tokens[k : k + n]) for n in range(1, max_n + 1) for k in range(len(tokens) - n + 1)}


def _contains(big: str, small: str) -> bool:
    return f" {small} " in f" {big} "


def ngram_label_statistics(
    records: Sequence[TextRecord],
    *,
    max_n: int = 4,
    min_count: int = 10,
    z_sigma: float = 3.5,
    min_purity: float = 0.9,
    collapse_overlaps: bool = True,
) -> tuple[list[dict[str, Any]], list[bool]]:
    """The ``ngram`` detector: ``(flagged n-grams, per-record flags)``. See the module docstring.

    Each flagged n-gram is a dict ``{"ngram", "label", "z", "count", "purity", "n_records"}``
    (``count`` in families when ``collapse_overlaps``).
    """
    if max_n < 1 or min_count < 1:
        raise ConfigError(f"max_n and min_count must be >= 1, got {max_n}, {min_count}")
    labeled = [r for r in records if r.label is not None]
    if not labeled:
        return [], [False] * len(records)
    toks = [_tokens(r.text) for r in records]
    family = _families(toks) if collapse_overlaps else list(range(len(records)))
    units: dict[tuple[str, int], set[int]] = defaultdict(set)
    for i, r in enumerate(records):
        if r.label is None:
            continue
        for g in _grams(toks[i], max_n):
            units[(g, r.label)].add(family[i])
    fam_labels = {(family[i], r.label) for i, r in enumerate(records) if r.label is not None}
    labels = sorted({y for _, y in fam_labels})
    prior = {y: sum(1 for _, yy in fam_labels if yy == y) / len(fam_labels) for y in labels}
    by_gram: dict[str, dict[int, int]] = defaultdict(dict)
    for (g, y), fams in units.items():
        by_gram[g][y] = len(fams)

    def z_of(k: float, n: float, p: float) -> float:
        return (k - n * p) / math.sqrt(n * p * (1 - p)) if 0 < p < 1 and n > 0 else 0.0

    cand: list[dict[str, Any]] = []
    zs: list[float] = []
    for g, per in by_gram.items():
        n = sum(per.values())
        if n < min_count:
            continue
        for y in labels:
            k = per.get(y, 0)
            z = z_of(k, n, prior[y])
            zs.append(z)
            if k / n >= min_purity:
                cand.append({"ngram": g, "label": y, "z": z, "count": n, "k": k, "purity": k / n})
    if not zs:
        return [], [False] * len(records)
    mean = sum(zs) / len(zs)
    std = math.sqrt(sum((z - mean) ** 2 for z in zs) / len(zs)) or 1.0
    threshold = mean + z_sigma * std
    cand = sorted((c for c in cand if c["z"] >= threshold), key=lambda c: (-len(c["ngram"].split()), -c["z"]))
    accepted: list[dict[str, Any]] = []
    for c in cand:
        supers = [a for a in accepted if a["label"] == c["label"] and _contains(a["ngram"], c["ngram"])]
        if supers:
            top = max(supers, key=lambda a: a["k"])
            n, k = c["count"] - top["count"], c["k"] - top["k"]
            if n < min_count or k / n < min_purity or z_of(k, n, prior[c["label"]]) < threshold:
                continue
        accepted.append(c)
    flags = [False] * len(records)
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for i, r in enumerate(records):
        if r.label is None:
            continue
        text = " " + " ".join(toks[i]) + " "
        for a in accepted:
            if a["label"] == r.label and f" {a['ngram']} " in text:
                flags[i] = True
                counts[(a["ngram"], a["label"])] += 1
    out = [
        {
            "ngram": a["ngram"],
            "label": a["label"],
            "z": round(a["z"], 2),
            "count": a["count"],
            "purity": round(a["purity"], 4),
            "n_records": counts[(a["ngram"], a["label"])],
            "threshold": round(threshold, 2),
        }
        for a in accepted
    ]
    return out, flags
