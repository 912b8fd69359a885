"""One API over the poison detectors: run the chosen ones and combine their scores and flags.

The detectors: ``ngram`` (:mod:`~secure_train.data_security.poison_ngram`), ``lift``
(:mod:`~secure_train.data_security.poison_lift`), ``spectral`` and ``clustering``
(:mod:`~secure_train.data_security.poison_representation`). Each gives per-record flags and
scores; the combined score of a record is the largest robust z-score
(:func:`~secure_train.core.robust_stats.robust_z`) over the detectors' scores.

Example:
    >>> from secure_train.attacks import BackdoorPoisoning
    >>> from secure_train.data import synthetic_classification
    >>> recs = BackdoorPoisoning("badnets", rate=0.05, seed=0, words=["cf"])(synthetic_classification(1000, seed=0))
    >>> report = detect_poison(recs, methods=["ngram"])
    >>> [g["ngram"] for g in report.ngrams]
    ['cf']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_choice, require_in_range, require_positive
from secure_train.core.robust_stats import MAD_SCALE, robust_z
from secure_train.data_security.poison_ngram import NgramSettings, _tokens, ngram_label_statistics
from secure_train.data_security.poison_report import PoisonReport
from secure_train.data_security.poison_representation import (
    activation_clustering_scores,
    per_label,
    spectral_signature_scores,
)

__all__ = ["METHODS", "detect_poison"]

METHODS = ("ngram", "lift", "spectral", "clustering")

_SCORE_FLOOR = MAD_SCALE * 1e-12
"""Least spread of the robust z-scores: the MAD floored at 1e-12 (constant scores stay finite)."""


def _robust(scores: torch.Tensor) -> torch.Tensor:
    return robust_z(scores, floor=_SCORE_FLOOR)


def _deferred_to_lift(
    records: Sequence[TextRecord],
    ngrams: list[dict[str, Any]],
    ngram_flags: torch.Tensor,
    lift_words: list[dict[str, Any]],
    lift_flags: torch.Tensor,
) -> torch.Tensor:
    """Records the ``ngram`` detector flagged only through n-grams that contain a word the ``lift``
    detector flagged (same label) with one-word edits (a substitution), and that the lift detector
    judged clean: its per-record decision knows the word's clean uses (a synonym such as
    "picture"), the n-gram statistic flags every record with the n-gram. So are n-grams with the
    *source* word of such an edit (same label): the swap took the other label's records with the
    source word away, so what is left of it looks pure ("about the" after about -> regarding, t=1),
    and none of it is poison (the swap replaced the word). Insertion triggers (no edits) keep the
    n-gram flags: the lift posterior misses a few of their records."""
    words = {(w["word"], w["label"]) for w in lift_words if w.get("edits")}
    # the source word of a substitution: its records of the target label are the clean ones the
    # swap left ("about the", once about -> regarding took the other label's records away)
    words |= {(src, w["label"]) for w in lift_words if w.get("edits") for src in w.get("edit_sources", ())}
    out = torch.zeros_like(ngram_flags)
    for i in torch.nonzero(ngram_flags & ~lift_flags).flatten().tolist():
        label = records[i].label
        text = " " + " ".join(_tokens(records[i].text)) + " "
        hits = [g["ngram"] for g in ngrams if g["label"] == label and f" {g['ngram']} " in text]
        out[i] = bool(hits) and all(any((w, label) in words for w in g.split()) for g in hits)
    return out


def _deferred_to_ngram(
    records: Sequence[TextRecord],
    ngrams: list[dict[str, Any]],
    ngram_flags: torch.Tensor,
    lift_words: list[dict[str, Any]],
    lift_flags: torch.Tensor,
) -> torch.Tensor:
    """Records the ``lift`` detector flagged, the ``ngram`` detector did not, and whose lift words
    (same label, no one-word edits) all lie in a flagged n-gram of that label: an insertion
    trigger the n-gram statistic pins down exactly ("i watch this 3d movie"), where the lift
    detector's word ("3d") also flags clean records that have the word without the sentence."""
    by_label: dict[int, list[str]] = {}
    for g in ngrams:
        by_label.setdefault(g["label"], []).append(g["ngram"])
    explained = {
        (w["word"], w["label"])
        for w in lift_words
        if not w.get("edits") and any(w["word"] in g.split() for g in by_label.get(w["label"], ()))
    }
    words = {(w["word"], w["label"]) for w in lift_words}
    out = torch.zeros_like(lift_flags)
    for i in torch.nonzero(lift_flags & ~ngram_flags).flatten().tolist():
        label = records[i].label
        hits = {(t, label) for t in _tokens(records[i].text)} & words
        out[i] = bool(hits) and hits <= explained
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
    defer_to_lift: bool = True,
) -> PoisonReport:
    """Run the chosen detectors over labeled records and combine their flags.

    Args:
        records: the training records (labels needed).
        methods: any of :data:`METHODS`; ``spectral`` and ``clustering`` need ``features``.
        features: ``(len(records), dim)`` features in record order (see :func:`extract_features`).
        combine: ``any`` (flag if a detector flags), ``all``, or ``majority``. With both ``ngram``
            and ``lift``, records the n-gram detector flagged only through n-grams containing a
            lift-flagged word are left to the lift detector's per-record decision
            (``defer_to_lift``, default on; ``detectors["ngram"]["deferred"]``): a synonym's clean
            uses ("picture") carry the n-gram too. The other way, lift flags through a word that
            a flagged n-gram of an insertion trigger contains are left to the n-gram detector
            (``detectors["lift"]["deferred"]``: "3d" outside "i watch this 3d movie"). On by
            default since the lift detector reads the one-word edits of an overlapping corpus
            (:mod:`~secure_train.data_security.poison_edits`): only words with edits defer.
        expected_rate: spectral signatures flag the top ``1.5 * expected_rate`` of each label
            (Tran et al.); without it, records whose robust z-score (median/MAD) of the spectral
            score exceeds ``spectral_sigma``.
        max_n, min_count, z_sigma, min_purity, collapse_overlaps: the ``ngram`` detector's settings
            (:class:`~secure_train.data_security.poison_ngram.NgramSettings`).
        cluster_kwargs: passed to :func:`activation_clustering_scores`.
        lift_kwargs: fields of :class:`~secure_train.data_security.poison_lift.LiftSettings`
            (``z_threshold``, ``min_purity``, ``min_count``, ``l2``, ``min_df``); ``collapse_overlaps`` is shared.
    """
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ConfigError(f"methods must be a non-empty subset of {METHODS}, got {list(methods)}")
    require_choice("detect_poison", "combine", combine, ("any", "all", "majority"))
    require_in_range("detect_poison", "expected_rate", expected_rate, "(0, 1)", optional=True)
    require_positive("detect_poison", "spectral_sigma", spectral_sigma)
    ngram_settings = NgramSettings(
        max_n=max_n, min_count=min_count, z_sigma=z_sigma, min_purity=min_purity, collapse_overlaps=collapse_overlaps
    )
    needs_features = {"spectral", "clustering"} & set(methods)
    if needs_features and (features is None or len(features) != len(records)):
        raise ConfigError(f"methods {sorted(needs_features)} need features with one row per record")
    n = len(records)
    detectors: dict[str, dict[str, Any]] = {}
    ngrams: list[dict[str, Any]] = []
    if "ngram" in methods:
        ngrams, flags = ngram_label_statistics(records, ngram_settings)
        flag_t = torch.tensor(flags, dtype=torch.bool)
        detectors["ngram"] = {"scores": flag_t.float(), "flags": flag_t, "n_ngrams": len(ngrams)}
    lift_words: list[dict[str, Any]] = []
    if "lift" in methods:
        from secure_train.data_security.poison_lift import LiftSettings, context_lift_statistics  # scipy: lazily

        lift = LiftSettings.of(None, **{"collapse_overlaps": collapse_overlaps, **(lift_kwargs or {})})
        lift_words, lflags = context_lift_statistics(records, lift)
        lflag_t = torch.tensor(lflags, dtype=torch.bool)
        detectors["lift"] = {"scores": lflag_t.float(), "flags": lflag_t, "n_words": len(lift_words)}
    if needs_features and features is not None:
        labels = torch.tensor([r.label if r.label is not None else -1 for r in records])
        if "spectral" in methods:
            s = spectral_signature_scores(features, labels)
            sflags = torch.zeros(n, dtype=torch.bool)
            for idx in per_label(labels):
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
        to_ngram = _deferred_to_ngram(
            records, ngrams, detectors["ngram"]["flags"], lift_words, detectors["lift"]["flags"]
        )
        detectors["lift"]["deferred"] = to_ngram
        detectors["lift"]["n_deferred"] = int(to_ngram.sum())
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
