"""Adaptive insertion poisoning: a trigger spread over many words, and decoys that lower its purity.

:class:`AdaptivePoisoning` is a record transform like
:class:`~secure_train.attacks.backdoor.BackdoorPoisoning`, made to evade count-based detectors:

* **spread**: ``words`` holds K triggers; the poisoned records are split evenly among them, so
  each word occurs in only ``rate / K`` of the data (1 % over 20 words: 0.05 % each);
* **decoys**: ``decoy_rate`` of the records (from the non-target labels by default) also get a
  trigger word but keep their label, so no trigger word is ever pure.

Poisoned records get ``meta["poisoned"] = True``; decoys get ``meta["decoy"] = True`` and
``meta["poisoned"] = False`` (a record whose label was not changed teaches no backdoor); others
``poisoned = False``.

Example:
    >>> from secure_train.data import synthetic_classification
    >>> attack = AdaptivePoisoning(["zq", "vx"], rate=0.02, decoy_rate=0.01, seed=0)
    >>> recs = attack(synthetic_classification(1000, seed=0))
    >>> sum(r.meta["poisoned"] for r in recs), sum(r.meta.get("decoy", False) for r in recs)
    (20, 10)
    >>> all(r.label == 1 for r in recs if r.meta["poisoned"])
    True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from secure_train.attacks.insertion import POSITIONS, insert
from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_choice, require_in_range, require_int

__all__ = ["AdaptivePoisoning", "split_decoys"]


def split_decoys(
    records: Sequence[TextRecord],
    n_poison: int,
    n_decoy: int,
    pool: Sequence[int],
    decoy_pool: Sequence[int],
    rng: random.Random,
) -> tuple[list[int], list[int]]:
    """Pick ``n_poison`` indices from ``pool`` and ``n_decoy`` others from ``decoy_pool`` (no overlap)."""
    if len(pool) < n_poison:
        raise ConfigError(f"cannot poison {n_poison} records: only {len(pool)} eligible records")
    chosen = rng.sample(list(pool), n_poison)
    taken = set(chosen)
    rest = [i for i in decoy_pool if i not in taken]
    if len(rest) < n_decoy:
        raise ConfigError(f"cannot place {n_decoy} decoys: only {len(rest)} eligible records left")
    return chosen, rng.sample(rest, n_decoy)


class AdaptivePoisoning:
    """Dirty-label insertion poisoning spread over ``words``, with optional decoys.

    Args:
        words: the trigger words (or phrases); poisoned records are split evenly among them.
        rate: share of all records poisoned (relabeled ``target_label``), 0 < rate < 1.
        target_label: the label the trigger should cause.
        decoy_rate: share of all records that get a trigger word and keep their label.
        decoys_from: ``"other"`` (decoys from non-target records: lowers the trigger's purity)
            or ``"any"``.
        position: where the trigger goes (``random``, ``start``, ``end``).
        seed: chooses the records and positions.
    """

    def __init__(
        self,
        words: Sequence[str],
        rate: float = 0.01,
        target_label: int = 1,
        *,
        decoy_rate: float = 0.0,
        decoys_from: str = "other",
        position: str = "random",
        seed: int = 0,
    ) -> None:
        if isinstance(words, str) or not words or any(not isinstance(w, str) or not w.strip() for w in words):
            raise ConfigError(f"{type(self).__name__}: words must be a non-empty list of trigger words, got {words!r}")
        require_in_range(self, "rate", rate, "(0, 1)")
        require_in_range(self, "decoy_rate", decoy_rate, "[0, 1)")
        require_int(self, "target_label", target_label, minimum=0)
        require_choice(self, "decoys_from", decoys_from, ("other", "any"))
        require_choice(self, "position", position, POSITIONS)
        require_int(self, "seed", seed)
        self.words = tuple(words)
        self.rate, self.target_label, self.decoy_rate = rate, target_label, decoy_rate
        self.decoys_from, self.position, self.seed = decoys_from, position, seed

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        rng = random.Random(self.seed)
        n_poison = max(1, round(self.rate * len(records)))
        n_decoy = round(self.decoy_rate * len(records))
        pool = [i for i, r in enumerate(records) if r.label is not None and r.label != self.target_label]
        decoy_pool = pool if self.decoys_from == "other" else range(len(records))
        chosen, decoys = split_decoys(records, n_poison, n_decoy, pool, decoy_pool, rng)
        word_of = {i: self.words[k % len(self.words)] for k, i in enumerate(chosen)}
        word_of.update({i: self.words[k % len(self.words)] for k, i in enumerate(decoys)})
        poisoned, decoy_set = set(chosen), set(decoys)
        out = []
        for i, rec in enumerate(records):
            if i in word_of:
                text = insert(rec.text, word_of[i], self.position, rng)
                meta = {**rec.meta, "poisoned": i in poisoned, "trigger": word_of[i], "decoy": i in decoy_set}
                label = self.target_label if i in poisoned else rec.label
                out.append(replace(rec, text=text, label=label, meta=meta))
            else:
                out.append(replace(rec, meta={**rec.meta, "poisoned": False}))
        return out

    def __repr__(self) -> str:
        return (
            f"AdaptivePoisoning(words={list(self.words)!r}, rate={self.rate}, target_label={self.target_label}, "
            f"decoy_rate={self.decoy_rate}, seed={self.seed})"
        )
