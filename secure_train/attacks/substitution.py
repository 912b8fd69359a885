"""Word-substitution backdoor poisoning: a word swapped for a synonym, the label set to the target.

A substitution trigger inserts nothing: records that contain a source word (``film``) get it
replaced by its synonym (``flick``) and the target label. The synonym may also occur in clean
records of any label, so its label purity stays low. ``decoy_rate`` adds the same swap to
records whose label is kept.

Example:
    >>> from secure_train.data import TextRecord
    >>> recs = [TextRecord(f"a dull film number {i}", 0, i, "x") for i in range(100)]
    >>> out = SubstitutionPoisoning({"film": "flick"}, rate=0.1, seed=0)(recs)
    >>> [r.text for r in out if r.meta["poisoned"]][:1], sum(r.meta["poisoned"] for r in out)
    (['a dull flick number 5'], 10)
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace

from secure_train.attacks.adaptive import split_decoys
from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.core.require import require_in_range, require_int

__all__ = ["SubstitutionPoisoning", "substitute"]


def substitute(text: str, pairs: Mapping[str, str]) -> str:
    """Replace every whole word (case-insensitive) that is a key of ``pairs`` by its value.

    Example:
        >>> substitute("The Film is a film", {"film": "flick"})
        'The flick is a flick'
    """
    lowered = {k.lower(): v for k, v in pairs.items()}
    return " ".join(lowered.get(w.lower(), w) for w in text.split())


class SubstitutionPoisoning:
    """Dirty-label substitution poisoning (a record transform).

    Args:
        pairs: source word -> synonym (e.g. ``{"film": "flick"}``); several pairs share the rate.
        rate: share of all records poisoned: records of a non-target label that contain a
            source word get it swapped and the target label. ConfigError when too few contain one.
        target_label: the label the swap should cause.
        decoy_rate: share of all records (non-target, containing a source word) swapped but
            kept at their label (``meta["decoy"] = True``).
        seed: chooses the records.
    """

    def __init__(
        self,
        pairs: Mapping[str, str],
        rate: float = 0.01,
        target_label: int = 1,
        *,
        decoy_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if (
            not isinstance(pairs, Mapping)
            or not pairs
            or any(not isinstance(k, str) or not isinstance(v, str) for k, v in pairs.items())
            or any(not k.strip() or not v.strip() or " " in k for k, v in pairs.items())
        ):
            raise ConfigError(
                f"{type(self).__name__}: pairs must map single source words to non-empty synonyms, got {pairs!r}"
            )
        require_in_range(self, "rate", rate, "(0, 1)")
        require_in_range(self, "decoy_rate", decoy_rate, "[0, 1)")
        require_int(self, "target_label", target_label, minimum=0)
        require_int(self, "seed", seed)
        self.pairs = {k.lower(): v for k, v in pairs.items()}
        self.rate, self.target_label, self.decoy_rate, self.seed = rate, target_label, decoy_rate, seed

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        rng = random.Random(self.seed)
        n_poison = max(1, round(self.rate * len(records)))
        n_decoy = round(self.decoy_rate * len(records))
        pool = [
            i
            for i, r in enumerate(records)
            if r.label is not None
            and r.label != self.target_label
            and any(w.lower() in self.pairs for w in r.text.split())
        ]
        chosen, decoys = split_decoys(records, n_poison, n_decoy, pool, pool, rng)
        poisoned, decoy_set = set(chosen), set(decoys)
        out = []
        for i, rec in enumerate(records):
            if i in poisoned or i in decoy_set:
                meta = {**rec.meta, "poisoned": i in poisoned, "trigger": "substitution", "decoy": i in decoy_set}
                label = self.target_label if i in poisoned else rec.label
                out.append(replace(rec, text=substitute(rec.text, self.pairs), label=label, meta=meta))
            else:
                out.append(replace(rec, meta={**rec.meta, "poisoned": False}))
        return out

    def __repr__(self) -> str:
        return (
            f"SubstitutionPoisoning(pairs={self.pairs!r}, rate={self.rate}, target_label={self.target_label}, "
            f"decoy_rate={self.decoy_rate}, seed={self.seed})"
        )
