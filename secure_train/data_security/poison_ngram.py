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

import dataclasses
import functools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from secure_train.core.records import TextRecord
from secure_train.core.require import config_errors, require_choice, require_in_range, require_int

__all__ = [
    "DetectorSettings",
    "NgramCounts",
    "NgramSettings",
    "count_ngrams",
    "match_ngrams",
    "ngram_label_statistics",
    "ngram_rows",
    "score_ngrams",
]


def _setting(default: Any, check: Callable[..., Any], **kwargs: Any) -> Any:
    """A settings field whose value ``check(detector, name, value, **kwargs)`` (a
    :mod:`~secure_train.core.require` helper) validates."""
    return field(default=default, metadata={"check": functools.partial(check, **kwargs)})


_S = TypeVar("_S", bound="DetectorSettings")


@dataclass(frozen=True, kw_only=True)
class DetectorSettings:
    """Base of a poison detector's frozen settings: every field declares its check, a bad value is
    a ``ConfigError`` naming the detector (``detector``); :meth:`of` applies keyword overrides.

    ``collapse_overlaps`` (shared by the detectors): count the records contained in a longer record
    once per family (see :mod:`~secure_train.data_security.poison_ngram`).
    """

    detector: ClassVar[str] = "poison"
    collapse_overlaps: bool = _setting(True, require_choice, choices=(True, False))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if "check" in f.metadata:
                f.metadata["check"](self.detector, f.name, getattr(self, f.name))

    @classmethod
    def of(cls: type[_S], settings: _S | None = None, **overrides: Any) -> _S:
        """``settings`` (default: the defaults) with ``overrides`` (field names) replaced."""
        with config_errors(cls.detector):  # an unknown name: a TypeError -> ConfigError
            return dataclasses.replace(settings or cls(), **overrides)


@dataclass(frozen=True, kw_only=True)
class NgramSettings(DetectorSettings):
    """The ``ngram`` detector's settings (see the module docstring).

    Example:
        >>> NgramSettings.of(None, max_n=5).max_n
        5
        >>> NgramSettings(min_purity=2.0)
        Traceback (most recent call last):
        ...
        secure_train.core.errors.ConfigError: ngram: min_purity must be in [0, 1], got 2.0
    """

    detector: ClassVar[str] = "ngram"
    max_n: int = _setting(4, require_int, minimum=1)
    min_count: int = _setting(10, require_int, minimum=1)
    z_sigma: float = _setting(3.5, require_in_range, interval="(-inf, inf)")
    min_purity: float = _setting(0.9, require_in_range, interval="[0, 1]")


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


@dataclass
class NgramCounts:
    """The count step of the ``ngram`` detector: per (n-gram, label) the *units* containing it, and
    the units per label. A unit is a family's records of one label (a record, without
    ``collapse_overlaps``); its n-grams are the union of theirs. Counts over disjoint sets of
    units (shards, whole families) add up: :meth:`merge`.

    Example:
        >>> a, b = NgramCounts(), NgramCounts()
        >>> a.add({"cf", "cf film"}, 1)
        >>> b.add({"cf"}, 1)
        >>> a.merge(b).grams[("cf", 1)], a.labels[1]
        (2, 2)
    """

    grams: Counter[tuple[str, int]] = field(default_factory=Counter)
    labels: Counter[int] = field(default_factory=Counter)

    def add(self, grams: Iterable[str], label: int) -> None:
        """Count one unit of label ``label`` with n-grams ``grams`` (each once)."""
        self.labels[label] += 1
        self.grams.update((g, label) for g in grams)

    def merge(self, other: NgramCounts) -> NgramCounts:
        """Add ``other``'s counts to these (in place; returns ``self``)."""
        self.grams.update(other.grams)
        self.labels.update(other.labels)
        return self


def count_ngrams(records: Sequence[TextRecord], settings: NgramSettings | None = None) -> NgramCounts:
    """The count step over records in memory (families from :func:`_families` when
    ``settings.collapse_overlaps``). The corpus-scale detector
    (:mod:`~secure_train.data_security.poison_parallel`) computes the same counts shard by shard.

    Example:
        >>> from secure_train.core.records import TextRecord
        >>> recs = [TextRecord(t, 1, i, "x") for i, t in enumerate(["a b c", "b c", "b c"])]
        >>> plain = NgramSettings(collapse_overlaps=False)
        >>> count_ngrams(recs).grams[("b c", 1)], count_ngrams(recs, plain).grams[("b c", 1)]
        (1, 3)
    """
    s = settings or NgramSettings()
    toks = [_tokens(r.text) for r in records]
    family = _families(toks) if s.collapse_overlaps else list(range(len(records)))
    units: dict[tuple[int, int], set[str]] = defaultdict(set)
    for i, r in enumerate(records):
        if r.label is not None:
            units[(family[i], r.label)].update(_grams(toks[i], s.max_n))
    counts = NgramCounts()
    for (_, label), grams in units.items():
        counts.add(grams, label)
    return counts


def _z(k: float, n: float, p: float) -> float:
    return (k - n * p) / math.sqrt(n * p * (1 - p)) if 0 < p < 1 and n > 0 else 0.0


def score_ngrams(counts: NgramCounts, settings: NgramSettings | None = None) -> list[dict[str, Any]]:
    """The score step: the flagged n-grams, longest first, as dicts ``{"ngram", "label", "z",
    "count", "k", "purity", "threshold"}`` (``count``: units with the n-gram, ``k``: of its
    label). Only n-grams in at least ``min_count`` units are tested, so counts without the rarer
    ones give the same result. Sums are exact (``math.fsum``) and n-grams taken in sorted order:
    the result does not depend on the order counts were merged in.

    Example:
        >>> c = NgramCounts()
        >>> for i in range(2000):
        ...     c.add({f"w{i % 97}"}, i % 2)
        >>> for _ in range(20):
        ...     c.add({"cf", "w1"}, 1)
        >>> [(a["ngram"], a["label"], a["count"]) for a in score_ngrams(c)]
        [('cf', 1, 20)]
    """
    s = settings or NgramSettings()
    total = sum(counts.labels.values())
    labels = sorted(counts.labels)
    if not total:
        return []
    prior = {y: counts.labels[y] / total for y in labels}
    by_gram: dict[str, dict[int, int]] = defaultdict(dict)
    for (g, y), n in counts.grams.items():
        by_gram[g][y] = n
    cand: list[dict[str, Any]] = []
    zs: list[float] = []
    for g in sorted(by_gram):
        per = by_gram[g]
        n = sum(per.values())
        if n < s.min_count:
            continue
        for y in labels:
            k = per.get(y, 0)
            z = _z(k, n, prior[y])
            zs.append(z)
            if k / n >= s.min_purity:
                cand.append({"ngram": g, "label": y, "z": z, "count": n, "k": k, "purity": k / n})
    if not zs:
        return []
    mean = math.fsum(zs) / len(zs)
    std = math.sqrt(math.fsum((z - mean) ** 2 for z in zs) / len(zs)) or 1.0
    threshold = mean + s.z_sigma * std
    cand = sorted((c for c in cand if c["z"] >= threshold), key=lambda c: (-len(c["ngram"].split()), -c["z"]))
    accepted: list[dict[str, Any]] = []
    for c in cand:
        supers = [a for a in accepted if a["label"] == c["label"] and _contains(a["ngram"], c["ngram"])]
        if supers:
            top = max(supers, key=lambda a: a["k"])
            n, k = c["count"] - top["count"], c["k"] - top["k"]
            if n < s.min_count or k / n < s.min_purity or _z(k, n, prior[c["label"]]) < threshold:
                continue
        accepted.append({**c, "threshold": threshold})
    return accepted


def match_ngrams(tokens: list[str], label: int | None, accepted: Sequence[tuple[str, int]]) -> list[int]:
    """The flag step for one record: indices of the flagged ``(n-gram, label)`` it carries with
    their label (an unlabeled record carries none).

    Example:
        >>> match_ngrams("a cf film".split(), 1, [("cf film", 1), ("cf", 0), ("film", 1)])
        [0, 2]
    """
    if label is None:
        return []
    padded = " " + " ".join(tokens) + " "
    return [k for k, (gram, glabel) in enumerate(accepted) if glabel == label and f" {gram} " in padded]


def ngram_rows(accepted: Sequence[Mapping[str, Any]], matched: Mapping[int, int]) -> list[dict[str, Any]]:
    """Report rows of :func:`score_ngrams`'s n-grams, ``matched[k]`` records flagged by the k-th."""
    return [
        {
            "ngram": a["ngram"],
            "label": a["label"],
            "z": round(a["z"], 2),
            "count": a["count"],
            "purity": round(a["purity"], 4),
            "n_records": matched.get(k, 0),
            "threshold": round(a["threshold"], 2),
        }
        for k, a in enumerate(accepted)
    ]


def ngram_label_statistics(
    records: Sequence[TextRecord], settings: NgramSettings | None = None, **overrides: Any
) -> tuple[list[dict[str, Any]], list[bool]]:
    """The ``ngram`` detector: ``(flagged n-grams, per-record flags)``: :func:`count_ngrams`,
    :func:`score_ngrams`, then :func:`match_ngrams` per record. See the module docstring.

    Args:
        records: the records (unlabeled ones are never flagged).
        settings: :class:`NgramSettings` (default: its defaults); ``overrides``: fields of it
            (``max_n=5``, ``collapse_overlaps=False``, ...).

    Each flagged n-gram is a dict ``{"ngram", "label", "z", "count", "purity", "n_records",
    "threshold"}`` (``count`` in families when ``collapse_overlaps``).
    """
    s = NgramSettings.of(settings, **overrides)
    flags = [False] * len(records)
    if all(r.label is None for r in records):
        return [], flags
    accepted = score_ngrams(count_ngrams(records, s), s)
    pairs = [(a["ngram"], a["label"]) for a in accepted]
    matched: dict[int, int] = defaultdict(int)
    for i, r in enumerate(records):
        hits = match_ngrams(_tokens(r.text), r.label, pairs) if pairs else []
        flags[i] = bool(hits)
        for k in hits:
            matched[k] += 1
    return ngram_rows(accepted, matched), flags
