"""Poisoned-sample detection: a model-free n-gram/label statistic, a label-conditional lift test
on a bag-of-words model, and representation detectors (this module gathers their public names).

Four detectors, one API (:func:`detect_poison`, in :mod:`~secure_train.data_security.poison_detect`)
and one record transform (:class:`PoisonSanitizer`, in
:mod:`~secure_train.data_security.poison_sanitizer`) that removes what they flag before training
and records it in the chain of custody.

``ngram`` (:mod:`secure_train.data_security.poison_ngram`; model-free, Z-defence extended to
word n-grams): an n-gram whose label distribution is far more lopsided than chance and almost
pure is an insertion trigger; records that contain it and carry its label are flagged. Its steps
are public: :func:`count_ngrams` (mergeable :class:`NgramCounts`), :func:`score_ngrams`, then the
flags; the corpus-scale detector (:mod:`secure_train.data_security.poison_parallel`) runs the
count step shard by shard on an engine and the same score step.

``lift`` (:mod:`secure_train.data_security.poison_lift`): a word whose records carry a label that the
*rest* of each record (a bag-of-words logistic regression, the word's weights removed) does not
predict. It finds what purity cannot: substitution triggers ("film" -> "flick"), decoyed
triggers and triggers spread over many words (down to ~25 records each on SST-2). In a corpus of
overlapping records (SST-2's phrases) it also reads the one-word edits a substitution leaves
between a phrase and its sentence (:mod:`secure_train.data_security.poison_edits`): edited records
are certain poison, the others are judged by their sentence.

``spectral`` (Tran et al., 2018) and ``clustering`` (activation clustering, Chen et al., 2018)
(:mod:`secure_train.data_security.poison_representation`) work on a model's features
(:func:`extract_features`), per label. IBM ART's ``SpectralSignatureDefense`` and
``ActivationDefence`` are framework-agnostic (numpy / scikit-learn) versions of the same methods;
ours take features already extracted per record and give per-record flags for the custody chain
without an extra dependency (see that module for why).

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
"""

from __future__ import annotations

# ``_families`` / ``_tokens`` and ``_deferred_to_lift`` (used by tests)
# keep their old import path.
from secure_train.data_security.poison_detect import METHODS, detect_poison
from secure_train.data_security.poison_detect import _deferred_to_lift as _deferred_to_lift
from secure_train.data_security.poison_ngram import (
    NgramCounts,
    NgramSettings,
    count_ngrams,
    ngram_label_statistics,
    score_ngrams,
)
from secure_train.data_security.poison_ngram import _families as _families
from secure_train.data_security.poison_ngram import _tokens as _tokens
from secure_train.data_security.poison_report import PoisonReport
from secure_train.data_security.poison_representation import (
    activation_clustering_scores,
    extract_features,
    spectral_signature_scores,
)
from secure_train.data_security.poison_sanitizer import PoisonSanitizer

__all__ = [
    "METHODS",
    "NgramCounts",
    "NgramSettings",
    "PoisonReport",
    "PoisonSanitizer",
    "activation_clustering_scores",
    "count_ngrams",
    "detect_poison",
    "extract_features",
    "ngram_label_statistics",
    "score_ngrams",
    "spectral_signature_scores",
]
