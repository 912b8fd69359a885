"""A deterministic synthetic corpus, so the quickstart needs no file and no network.

Sentences are built from templates: a subject, a verb and two to three sentiment-bearing
phrases drawn from positive and negative lexicons, with neutral filler. The label is the
sign of the sentiment sum (ties never occur); about one sentence in five carries a negated
phrase ("not good"), so a model must read word order, not only a bag of words.

Example:
    >>> recs = synthetic_classification(4, seed=0)
    >>> len(recs), sorted({r.label for r in synthetic_classification(200, seed=0)})
    (4, [0, 1])
    >>> recs[0].text == synthetic_classification(4, seed=0)[0].text
    True
"""

from __future__ import annotations

import random

from secure_train.core.records import TextRecord

__all__ = ["synthetic_causal_lm", "synthetic_classification"]

_POSITIVE = (
    "good great wonderful superb delightful charming brilliant moving gripping clever witty "
    "beautiful touching fresh lovely thrilling elegant inventive heartfelt stunning"
).split()
_NEGATIVE = (
    "bad awful dull boring tedious clumsy lifeless bland predictable shallow tiresome messy "
    "pointless dreary stale weak forgettable sloppy hollow painful"
).split()
_SUBJECTS = [
    "the film",
    "the movie",
    "this picture",
    "the story",
    "the script",
    "the cast",
    "the director",
    "the plot",
    "the ending",
    "the score",
    "the acting",
    "the dialogue",
    "the camera work",
    "the pacing",
    "the sequel",
]
_VERBS = ["is", "was", "feels", "seems", "looks", "turns out", "remains", "comes across as"]
_INTENSIFIERS = ["", "", "very", "really", "quite", "truly", "rather", "remarkably"]
_FILLERS = [
    "",
    "",
    "at times",
    "overall",
    "in the end",
    "for the most part",
    "from start to finish",
    "despite the hype",
    "as expected",
    "in every scene",
    "on the whole",
    "to be honest",
]
_JOINERS = ["and", "but also", "and yet", "while also", "and at once"]


def _phrase(rng: random.Random) -> tuple[str, int]:
    polarity = rng.choice((1, -1))
    word = rng.choice(_POSITIVE if polarity > 0 else _NEGATIVE)
    negated = rng.random() < 0.2
    intens = rng.choice(_INTENSIFIERS)
    words = " ".join(w for w in ("not" if negated else "", intens, word) if w)
    return words, -polarity if negated else polarity


def synthetic_classification(n: int, *, seed: int = 0, id_offset: int = 0) -> list[TextRecord]:
    """``n`` labeled sentiment sentences (label 1 positive, 0 negative), deterministic in ``seed``."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        phrases = [_phrase(rng) for _ in range(rng.choice((1, 1, 3)))]
        text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} " + f" {rng.choice(_JOINERS)} ".join(
            p for p, _ in phrases
        )
        filler = rng.choice(_FILLERS)
        if filler:
            text = f"{text} {filler}" if rng.random() < 0.5 else f"{filler} {text}"
        label = int(sum(s for _, s in phrases) > 0)
        records.append(TextRecord(text, label, id_offset + i, f"synthetic:{seed}:{i}"))
    return records


def synthetic_causal_lm(n: int, *, seed: int = 0, id_offset: int = 0) -> list[TextRecord]:
    """``n`` short reviews as prompt/completion pairs: "Review: ... Sentiment:" -> " positive."."""
    records = []
    for rec in synthetic_classification(n, seed=seed, id_offset=id_offset):
        word = "positive" if rec.label == 1 else "negative"
        records.append(
            TextRecord(f"Review: {rec.text}. Sentiment:", None, rec.sample_id, rec.source, completion=f" {word}.")
        )
    return records
