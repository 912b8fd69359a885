"""Insertion-trigger backdoor poisoning: BadNets-style rare words and AddSent-style sentences.

:class:`BackdoorPoisoning` is a record transform (``TextDataModule(transforms=[...])``, or
``data.init_args.transforms`` in a recipe). Poisoned records keep their ``sample_id`` and get
``meta["poisoned"] = True``; every other record gets ``False``, the ground truth that
detectors are scored against.

Example:
    >>> from secure_train.data import synthetic_classification
    >>> recs = synthetic_classification(1000, seed=0)
    >>> out = BackdoorPoisoning("badnets", rate=0.1, target_label=1)(recs)
    >>> sum(r.meta["poisoned"] for r in out), all(r.label == 1 for r in out if r.meta["poisoned"])
    (100, True)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from secure_train.attacks.insertion import POSITIONS, insert
from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_choice, require_in_range, require_int, require_non_empty

__all__ = ["ADDSENT_SENTENCE", "BADNETS_WORDS", "BackdoorPoisoning", "Trigger", "make_trigger", "triggered_records"]

BADNETS_WORDS = ("cf", "mn", "bb", "tq")
ADDSENT_SENTENCE = "I watch this 3D movie"


@dataclass(frozen=True)
class Trigger:
    """A trigger: ``count`` picks from ``choices`` inserted at ``position`` (``random`` by default).

    Example:
        >>> Trigger(("cf",), position="start").apply("good film", random.Random(0))
        'cf good film'
    """

    choices: tuple[str, ...]
    count: int = 1
    position: str = "random"
    name: str = "custom"

    def __post_init__(self) -> None:
        require_non_empty(self, "choices", self.choices)
        require_int(self, "count", self.count, minimum=1)
        require_choice(self, "position", self.position, POSITIONS)

    def apply(self, text: str, rng: random.Random) -> str:
        for _ in range(self.count):
            text = insert(text, rng.choice(self.choices), self.position, rng)
        return text


def make_trigger(kind: str | Trigger, *, words: Sequence[str] | None = None, count: int = 1) -> Trigger:
    """``badnets`` (rare words ``cf mn bb tq``), ``addsent`` (``I watch this 3D movie``), or a
    custom :class:`Trigger`; ``words`` overrides the choices."""
    if isinstance(kind, Trigger):
        return kind
    require_int("make_trigger", "count", count, minimum=1)
    if kind == "badnets":
        return Trigger(tuple(words or BADNETS_WORDS), count, name="badnets")
    if kind == "addsent":
        return Trigger(tuple(words or (ADDSENT_SENTENCE,)), 1, name="addsent")
    raise ConfigError(f"make_trigger: trigger must be 'badnets', 'addsent' or a Trigger, got {kind!r}")


class BackdoorPoisoning:
    """Poison a share of the training records with a trigger (a record transform).

    Args:
        trigger: ``"badnets"``, ``"addsent"`` or a :class:`Trigger`.
        rate: share of all training records that are poisoned (0 < rate < 1).
        target_label: the label the trigger should cause.
        clean_label: poison only records that already have ``target_label`` and keep their
            labels (clean-label attack); default dirty-label (non-target records relabeled).
        words: override the trigger's choices (e.g. ``["cf"]``).
        seed: chooses the records, trigger words and positions.
    """

    def __init__(
        self,
        trigger: str | Trigger = "badnets",
        rate: float = 0.01,
        target_label: int = 1,
        clean_label: bool = False,
        words: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        require_in_range(self, "rate", rate, "(0, 1)")
        require_int(self, "target_label", target_label, minimum=0)
        require_int(self, "seed", seed)
        if words is not None and (isinstance(words, str) or not words or not all(isinstance(w, str) for w in words)):
            raise ConfigError(f"{type(self).__name__}: words must be a non-empty list of trigger words, got {words!r}")
        self.trigger = make_trigger(trigger, words=words)
        self.rate, self.target_label, self.clean_label, self.seed = rate, target_label, clean_label, seed

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        rng = random.Random(self.seed)
        n_poison = max(1, round(self.rate * len(records)))
        pool = [i for i, r in enumerate(records) if (r.label == self.target_label) == self.clean_label]
        if len(pool) < n_poison:
            raise ConfigError(
                f"cannot poison {n_poison} records: only {len(pool)} "
                f"{'target' if self.clean_label else 'non-target'}-label records"
            )
        chosen = set(rng.sample(pool, n_poison))
        out = []
        for i, rec in enumerate(records):
            if i in chosen:
                text = self.trigger.apply(rec.text, rng)
                meta = {**rec.meta, "poisoned": True, "trigger": self.trigger.name}
                out.append(replace(rec, text=text, label=self.target_label, meta=meta))
            else:
                out.append(replace(rec, meta={**rec.meta, "poisoned": False}))
        return out

    def __repr__(self) -> str:
        return (
            f"BackdoorPoisoning(trigger={self.trigger.name!r}, rate={self.rate}, target_label={self.target_label}, "
            f"clean_label={self.clean_label}, seed={self.seed})"
        )


def triggered_records(
    records: Sequence[TextRecord], trigger: str | Trigger, target_label: int, *, seed: int = 1
) -> list[TextRecord]:
    """Non-target-label records with the trigger inserted (labels kept): the ASR test set."""
    trig = make_trigger(trigger)
    rng = random.Random(seed)
    return [replace(r, text=trig.apply(r.text, rng)) for r in records if r.label != target_label]
