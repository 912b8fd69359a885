"""Poisoned-sample detection: a model-free n-gram/label statistic, a label-conditional lift test
on a bag-of-words model, and representation detectors.

Four detectors, one API (:func:`detect_poison`) and one record transform
(:class:`PoisonSanitizer`) that removes what they flag before training and records it in the
chain of custody.

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

``lift`` (:mod:`secure_train.data_security.poison_lift`): a word whose records carry a label that the
*rest* of each record (a bag-of-words logistic regression, the word's weights removed) does not
predict. It finds what purity cannot: substitution triggers ("film" -> "flick"), decoyed
triggers and triggers spread over many words (down to ~25 records each on SST-2).

``spectral`` (Tran et al., 2018) and ``clustering`` (activation clustering, Chen et al., 2018)
work on a model's features (:func:`extract_features`: [CLS] or mean-pooled last hidden
states), per label: spectral scores are squared projections on the top singular vector of the
centered features; activation clustering reduces features to ``n_components`` dimensions
(PCA), splits each label with 2-means and flags the smaller cluster when it holds less than
``max_cluster_share`` of the label and the split's silhouette is at least ``min_silhouette``.
Both are written in torch here; IBM ART's ``SpectralSignatureDefense`` and ``ActivationDefence``
are framework-agnostic (numpy / scikit-learn) implementations of the same methods.

Example:
    >>> from secure_train.attacks import BackdoorPoisoning
    >>> from secure_train.data import synthetic_classification
    >>> recs = BackdoorPoisoning("addsent", rate=0.05, seed=0)(synthetic_classification(2000, seed=0))
    >>> report = detect_poison(recs)
    >>> truth = {r.sample_id for r in recs if r.meta["poisoned"]}
    >>> flagged = set(report.flagged_ids)
    >>> len(flagged & truth) / len(truth) >= 0.95, len(flagged - truth) <= 5
    (True, True)
    >>> sorted(g["ngram"] for g in report.ngrams)
    ['i watch this 3d', 'watch this 3d movie']

The defaults (``z_sigma=3.5``, ``min_purity=0.9``, ``min_count=10``) come from SST-2: on the
clean training split (families collapsed, n-grams seen in >= 10 families) the z-scores have
mean 0 and std ~1.8, and the largest z of an n-gram at least 90 % pure is 5.4 ("flat",
"mess"), i.e. mean + 3.0 std, below the threshold (mean + 3.5 std, ~6.3). BadNets at 0.5 % (four words, ~85
records each) scores 7.6-8.9; a first setting of ``z_sigma=5`` missed three of its four
words. Like Z-defence, the test needs counts: a trigger must occur in dozens of records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.data_security.manifest import CustodyEntry

__all__ = [
    "METHODS",
    "PoisonReport",
    "PoisonSanitizer",
    "activation_clustering_scores",
    "detect_poison",
    "extract_features",
    "ngram_label_statistics",
    "spectral_signature_scores",
]

METHODS = ("ngram", "lift", "spectral", "clustering")


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


# -- representation-based detectors ----------------------------------------------------------
def _per_label(labels: torch.Tensor) -> list[torch.Tensor]:
    return [torch.nonzero(labels == y).flatten() for y in torch.unique(labels)]


def spectral_signature_scores(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared projection of each centered feature vector on its label's top singular vector,
    divided by the label's median score (so labels are comparable).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 8, generator=g); x[:10] += 6.0
        >>> s = spectral_signature_scores(x, torch.zeros(200, dtype=torch.long))
        >>> int((s.topk(10).indices < 10).sum())
        10
    """
    feats = features.double()
    scores = torch.zeros(len(feats), dtype=torch.float64)
    for idx in _per_label(labels):
        if len(idx) < 3:
            continue
        centered = feats[idx] - feats[idx].mean(0, keepdim=True)
        _, _, vh = torch.linalg.svd(centered, full_matrices=False)
        proj = (centered @ vh[0]) ** 2
        scores[idx] = proj / proj.median().clamp_min(1e-12)
    return scores.float()


def _kmeans2(x: torch.Tensor, generator: torch.Generator, iters: int = 50, restarts: int = 4) -> torch.Tensor:
    best, best_inertia = torch.zeros(len(x), dtype=torch.long), math.inf
    for _ in range(restarts):
        centers = x[torch.randperm(len(x), generator=generator)[:2]].clone()
        assign = torch.zeros(len(x), dtype=torch.long)
        for _ in range(iters):
            assign_new = torch.cdist(x, centers).argmin(1)
            if torch.equal(assign_new, assign) and _ > 0:
                break
            assign = assign_new
            for c in range(2):
                if (assign == c).any():
                    centers[c] = x[assign == c].mean(0)
        inertia = float(((x - centers[assign]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = assign.clone(), inertia
    return best


def _silhouette(x: torch.Tensor, assign: torch.Tensor, generator: torch.Generator, max_points: int = 2000) -> float:
    if len(x) > max_points:
        pick = torch.randperm(len(x), generator=generator)[:max_points]
        x, assign = x[pick], assign[pick]
    if assign.unique().numel() < 2:
        return 0.0
    d = torch.cdist(x, x)
    same = assign[:, None] == assign[None, :]
    n_same = same.sum(1).clamp_min(2) - 1
    a = (d * same).sum(1) / n_same
    b = (d * ~same).sum(1) / (~same).sum(1).clamp_min(1)
    return float(((b - a) / torch.maximum(a, b).clamp_min(1e-12)).mean())


def activation_clustering_scores(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    n_components: int = 10,
    max_cluster_share: float = 0.35,
    min_silhouette: float = 0.15,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, dict[int, dict[str, float]]]:
    """Activation clustering: ``(scores, flags, per-label details)``.

    The score of a record in the smaller cluster is 1 minus that cluster's share of its label
    (0 in the larger cluster); flags mark the smaller clusters that pass both tests.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 16, generator=g); x[:30] += 4.0
        >>> _, flags, _ = activation_clustering_scores(x, torch.zeros(300, dtype=torch.long))
        >>> int(flags[:30].sum()), int(flags[30:].sum())
        (30, 0)
    """
    gen = torch.Generator().manual_seed(seed)
    feats = features.float()
    scores = torch.zeros(len(feats))
    flags = torch.zeros(len(feats), dtype=torch.bool)
    details: dict[int, dict[str, float]] = {}
    for idx in _per_label(labels):
        if len(idx) < 10:
            continue
        x = feats[idx] - feats[idx].mean(0, keepdim=True)
        q = min(n_components, x.shape[1], len(idx) - 1)
        u, s, _ = torch.pca_lowrank(x, q=q, center=False, niter=4)
        reduced = u * s
        assign = _kmeans2(reduced, gen)
        small = int(torch.bincount(assign, minlength=2).argmin())
        share = float((assign == small).float().mean())
        sil = _silhouette(reduced, assign, gen)
        in_small = assign == small
        scores[idx[in_small]] = 1.0 - share
        label = int(labels[idx[0]])
        details[label] = {"small_share": round(share, 4), "silhouette": round(sil, 4)}
        if share <= max_cluster_share and sil >= min_silhouette:
            flags[idx[in_small]] = True
    return scores, flags, details


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    loader: Any,
    *,
    pooling: str = "cls",
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, sample_ids)``: last-layer [CLS] (``pooling="cls"``) or mask-averaged
    (``"mean"``) hidden states of a Hugging Face model (or a secure-train model wrapping one as
    ``.model``) over a loader of secure-train batches."""
    if pooling not in ("cls", "mean"):
        raise ConfigError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
    hf = getattr(model, "model", model)
    was_training = hf.training
    hf.eval()
    dev = torch.device(device) if device is not None else next(hf.parameters()).device
    feats, ids = [], []
    for batch in loader:
        inputs = {k: v.to(dev) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        feats.append(pooled.float().cpu())
        ids.append(batch["sample_id"].cpu())
    hf.train(was_training)
    return torch.cat(feats), torch.cat(ids)


# -- one API -----------------------------------------------------------------------------------
@dataclass
class PoisonReport:
    """What :func:`detect_poison` found.

    Attributes:
        sample_ids: the records' ids, in input order.
        scores: combined suspicion per record (max over detectors of their normalized score).
        flags: combined decision per record (``combine`` rule over the detectors' flags).
        detectors: per detector ``{"scores": Tensor, "flags": Tensor, ...details}``.
        ngrams: the flagged n-grams of the ``ngram`` detector.
        lift_words: the flagged words of the ``lift`` detector.
    """

    sample_ids: list[int]
    scores: torch.Tensor
    flags: torch.Tensor
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    ngrams: list[dict[str, Any]] = field(default_factory=list)
    combine: str = "any"
    lift_words: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flagged_ids(self) -> list[int]:
        return [sid for sid, f in zip(self.sample_ids, self.flags.tolist(), strict=True) if f]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (flagged ids, n-grams, per-detector counts; no per-record scores)."""
        return {
            "n_records": len(self.sample_ids),
            "n_flagged": int(self.flags.sum()),
            "flagged_ids": self.flagged_ids,
            "combine": self.combine,
            "ngrams": self.ngrams,
            "lift_words": self.lift_words,
            "detectors": {
                name: {
                    "n_flagged": int(d["flags"].sum()),
                    **{k: v for k, v in d.items() if k not in ("scores", "flags", "deferred")},
                }
                for name, d in self.detectors.items()
            },
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Poisoned-sample detection: {int(self.flags.sum())} of {len(self.sample_ids)} records flagged",
            "",
        ]
        lines += ["| detector | flagged |", "|---|---|"]
        lines += [f"| {n} | {int(d['flags'].sum())} |" for n, d in self.detectors.items()]
        if self.ngrams:
            lines += ["", "| n-gram | label | z | count | purity | records |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {g['ngram']} | {g['label']} | {g['z']} | {g['count']} | {g['purity']} | {g['n_records']} |"
                for g in self.ngrams
            ]
        if self.lift_words:
            lines += ["", "| word | label | lift z | contradicting | purity | records |", "|---|---|---|---|---|---|"]
            lines += [
                f"| {w['word']} | {w['label']} | {w['lift_z']} | {w['contra_count']} | {w['contra_purity']} "
                f"| {w['n_records']} |"
                for w in self.lift_words
            ]
        return "\n".join(lines) + "\n"


def _robust(scores: torch.Tensor) -> torch.Tensor:
    med = scores.median()
    mad = (scores - med).abs().median().clamp_min(1e-12)
    return (scores - med) / (1.4826 * mad)


def _deferred_to_lift(
    records: Sequence[TextRecord],
    ngrams: list[dict[str, Any]],
    ngram_flags: torch.Tensor,
    lift_words: list[dict[str, Any]],
    lift_flags: torch.Tensor,
) -> torch.Tensor:
    """Records the ``ngram`` detector flagged only through n-grams that contain a word the ``lift``
    detector also flagged (same label), and that the lift detector judged clean: the lift
    detector's per-record posterior knows the word's clean uses (a synonym such as "picture"),
    the n-gram statistic flags every record with the n-gram."""
    words = {(w["word"], w["label"]) for w in lift_words}
    out = torch.zeros_like(ngram_flags)
    for i in torch.nonzero(ngram_flags & ~lift_flags).flatten().tolist():
        label = records[i].label
        text = " " + " ".join(_tokens(records[i].text)) + " "
        hits = [g["ngram"] for g in ngrams if g["label"] == label and f" {g['ngram']} " in text]
        out[i] = bool(hits) and all(any((w, label) in words for w in g.split()) for g in hits)
    return out


def detect_poison(
    records: Sequence[TextRecord],
    *,
    methods: Sequence[str] = ("ngram", "lift"),
    features: torch.Tensor | None = None,
    combine: str = "any",
    expected_rate: float | None = None,
    spectral_sigma: float = 6.0,
    max_n: int = 4,
    min_count: int = 10,
    z_sigma: float = 3.5,
    min_purity: float = 0.9,
    collapse_overlaps: bool = True,
    cluster_kwargs: dict[str, Any] | None = None,
    lift_kwargs: dict[str, Any] | None = None,
    defer_to_lift: bool = False,
) -> PoisonReport:
    """Run the chosen detectors over labeled records and combine their flags.

    Args:
        records: the training records (labels needed).
        methods: any of :data:`METHODS`; ``spectral`` and ``clustering`` need ``features``.
        features: ``(len(records), dim)`` features in record order (see :func:`extract_features`).
        combine: ``any`` (flag if a detector flags), ``all``, or ``majority``. With both ``ngram``
            and ``lift``, records the n-gram detector flagged only through n-grams containing a
            lift-flagged word can be left to the lift detector's per-record posterior
            (``defer_to_lift=True``; ``detectors["ngram"]["deferred"]``): more precise on
            synonyms with clean uses, but it lost recall on SST-2 (good -> decent: 1.00 -> 0.80),
            so it is off by default.
        expected_rate: spectral signatures flag the top ``1.5 * expected_rate`` of each label
            (Tran et al.); without it, records whose robust z-score (median/MAD) of the spectral
            score exceeds ``spectral_sigma``.
        max_n, min_count, z_sigma, min_purity, collapse_overlaps: the ``ngram`` detector's settings.
        cluster_kwargs: passed to :func:`activation_clustering_scores`.
        lift_kwargs: passed to :func:`~secure_train.data_security.poison_lift.context_lift_statistics`
            (``z_threshold``, ``min_purity``, ``min_count``, ``l2``); ``collapse_overlaps`` is shared.
    """
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ConfigError(f"methods must be a non-empty subset of {METHODS}, got {list(methods)}")
    if combine not in ("any", "all", "majority"):
        raise ConfigError(f"combine must be 'any', 'all' or 'majority', got {combine!r}")
    if expected_rate is not None and not 0 < expected_rate < 1:
        raise ConfigError(f"expected_rate must be in (0, 1), got {expected_rate}")
    needs_features = {"spectral", "clustering"} & set(methods)
    if needs_features and (features is None or len(features) != len(records)):
        raise ConfigError(f"methods {sorted(needs_features)} need features with one row per record")
    n = len(records)
    detectors: dict[str, dict[str, Any]] = {}
    ngrams: list[dict[str, Any]] = []
    if "ngram" in methods:
        ngrams, flags = ngram_label_statistics(
            records,
            max_n=max_n,
            min_count=min_count,
            z_sigma=z_sigma,
            min_purity=min_purity,
            collapse_overlaps=collapse_overlaps,
        )
        flag_t = torch.tensor(flags, dtype=torch.bool)
        detectors["ngram"] = {"scores": flag_t.float(), "flags": flag_t, "n_ngrams": len(ngrams)}
    lift_words: list[dict[str, Any]] = []
    if "lift" in methods:
        from secure_train.data_security.poison_lift import context_lift_statistics

        lift_words, lflags = context_lift_statistics(
            records, collapse_overlaps=collapse_overlaps, **(lift_kwargs or {})
        )
        lflag_t = torch.tensor(lflags, dtype=torch.bool)
        detectors["lift"] = {"scores": lflag_t.float(), "flags": lflag_t, "n_words": len(lift_words)}
    if needs_features:
        assert features is not None
        labels = torch.tensor([r.label if r.label is not None else -1 for r in records])
        if "spectral" in methods:
            s = spectral_signature_scores(features, labels)
            sflags = torch.zeros(n, dtype=torch.bool)
            for idx in _per_label(labels):
                if expected_rate is not None:
                    k = min(len(idx), max(1, math.ceil(1.5 * expected_rate * len(idx))))
                    sflags[idx[s[idx].topk(k).indices]] = True
                else:
                    sflags[idx] = _robust(s[idx]) > spectral_sigma
            detectors["spectral"] = {"scores": s, "flags": sflags}
        if "clustering" in methods:
            cs, cflags, details = activation_clustering_scores(features, labels, **(cluster_kwargs or {}))
            detectors["clustering"] = {"scores": cs, "flags": cflags, "per_label": details}
    if defer_to_lift and "ngram" in detectors and lift_words:
        deferred = _deferred_to_lift(
            records, ngrams, detectors["ngram"]["flags"], lift_words, detectors["lift"]["flags"]
        )
        detectors["ngram"]["deferred"] = deferred
        detectors["ngram"]["n_deferred"] = int(deferred.sum())
    stacked = torch.stack([d["flags"] & ~d.get("deferred", torch.zeros_like(d["flags"])) for d in detectors.values()])
    if combine == "any":
        combined = stacked.any(0)
    elif combine == "all":
        combined = stacked.all(0)
    else:
        combined = stacked.float().sum(0) > len(detectors) / 2
    norm = torch.stack(
        [_robust(d["scores"].float()) if d["scores"].std() > 0 else d["scores"] for d in detectors.values()]
    )
    return PoisonReport(
        [r.sample_id for r in records], norm.max(0).values, combined, detectors, ngrams, combine, lift_words
    )


class PoisonSanitizer:
    """Record transform: drop the records :func:`detect_poison` flags, and record it.

    Each call sets :attr:`report` and appends a :class:`~secure_train.data_security.manifest.CustodyEntry`
    (``affected = {"dropped": [sample ids]}``) to :attr:`custody`. Put it after any poisoning
    transform and before training: ``TextDataModule(transforms=[..., PoisonSanitizer()])``.
    Representation methods need a ``feature_fn(records) -> Tensor`` (e.g. a closure over
    :func:`extract_features`).

    Args:
        methods: detectors to run (see :data:`METHODS`).
        feature_fn: maps the records to features, for ``spectral`` / ``clustering``.
        max_drop_fraction: refuse (ConfigError) to drop more than this share of the data:
            a detector that flags half the corpus is misconfigured, not finding poison.
        **kwargs: passed to :func:`detect_poison`.

    Example:
        >>> from secure_train.attacks import BackdoorPoisoning
        >>> from secure_train.data import synthetic_classification
        >>> recs = BackdoorPoisoning("addsent", rate=0.05, seed=0)(synthetic_classification(2000, seed=0))
        >>> clean = PoisonSanitizer()(recs)
        >>> sum(r.meta["poisoned"] for r in clean), len(recs) - len(clean) >= 100
        (0, True)
    """

    def __init__(
        self,
        methods: Sequence[str] = ("ngram", "lift"),
        *,
        feature_fn: Any | None = None,
        max_drop_fraction: float = 0.3,
        name: str = "poison_sanitizer",
        **kwargs: Any,
    ) -> None:
        if not 0 < max_drop_fraction <= 1:
            raise ConfigError(f"max_drop_fraction must be in (0, 1], got {max_drop_fraction}")
        if {"spectral", "clustering"} & set(methods) and feature_fn is None:
            raise ConfigError("methods 'spectral' / 'clustering' need feature_fn")
        self.methods = tuple(methods)
        self.feature_fn = feature_fn
        self.max_drop_fraction = max_drop_fraction
        self.name = name
        self.kwargs = kwargs
        self.custody: list[CustodyEntry] = []
        self.report: PoisonReport | None = None

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        features = self.feature_fn(records) if self.feature_fn is not None else None
        report = detect_poison(records, methods=self.methods, features=features, **self.kwargs)
        self.report = report
        flags = report.flags.tolist()
        if sum(flags) > self.max_drop_fraction * len(records):
            raise ConfigError(
                f"{self.name}: detectors flagged {sum(flags)} of {len(records)} records, more than "
                f"max_drop_fraction={self.max_drop_fraction}; check the settings"
            )
        kept = [r for r, f in zip(records, flags, strict=True) if not f]
        params = {"methods": list(self.methods), **{k: v for k, v in self.kwargs.items()}}
        params["ngrams"] = [f"{g['ngram']}->{g['label']}" for g in report.ngrams]
        params["lift_words"] = [f"{w['word']}->{w['label']}" for w in report.lift_words]
        entry = CustodyEntry.create(self.name, params, records, kept, {"dropped": report.flagged_ids})
        prev = self.custody[-1].hash if self.custody else "0" * 64
        self.custody.append(entry.chained(prev))
        return kept

    def __repr__(self) -> str:
        return (
            f"PoisonSanitizer(methods={list(self.methods)}, {', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"
        )
