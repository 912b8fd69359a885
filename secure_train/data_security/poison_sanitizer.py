"""The record transform that drops what the poison detectors flag and records it in the chain of custody.

Example:
    >>> PoisonSanitizer(max_drop_fraction=0.1, min_count=5)
    PoisonSanitizer(methods=['ngram', 'lift'], min_count=5)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.require import config_errors, require_in_range
from secure_train.data_security.manifest import CustodyEntry
from secure_train.data_security.poison_detect import METHODS, detect_poison
from secure_train.data_security.poison_ngram import NgramSettings
from secure_train.data_security.poison_report import PoisonReport

__all__ = ["PoisonSanitizer"]

_NGRAM_FIELDS = {f.name for f in dataclasses.fields(NgramSettings)}


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
        **kwargs: passed to :func:`detect_poison` (names and the detectors' settings are checked here:
            ``ConfigError``).

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
        require_in_range(self, "max_drop_fraction", max_drop_fraction, "(0, 1]")
        if not methods or set(methods) - set(METHODS):
            raise ConfigError(f"PoisonSanitizer: methods must be a non-empty subset of {METHODS}, got {list(methods)}")
        if {"spectral", "clustering"} & set(methods) and feature_fn is None:
            raise ConfigError("PoisonSanitizer: methods 'spectral' / 'clustering' need feature_fn")
        with config_errors(self):  # a bad name or setting now, not when the first records arrive
            inspect.signature(detect_poison).bind([], methods=methods, **kwargs)
            NgramSettings.of(None, **{k: v for k, v in kwargs.items() if k in _NGRAM_FIELDS})
            if "lift" in methods:
                from secure_train.data_security.poison_lift import LiftSettings  # scipy: lazily

                LiftSettings.of(None, **(kwargs.get("lift_kwargs") or {}))
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
        args = [f"methods={list(self.methods)}", *(f"{k}={v!r}" for k, v in self.kwargs.items())]
        return f"PoisonSanitizer({', '.join(args)})"
