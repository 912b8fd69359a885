"""One-word edits between overlapping records: the trace a word substitution leaves in a phrase corpus.

SST-2's training split holds every phrase of each sentence as its own record, so a record's text
normally appears inside a longer record (its sentence), and a sentence's sub-phrases appear inside
it. A substitution trigger (``movie`` -> ``picture`` in a record, its label set to the target)
edits one record and not its relatives: the edited phrase is no longer inside its sentence, which
still reads ``movie`` (the phrase is an *orphan* that matches a span of a longer record except at
one word), and an edited sentence no longer contains its sub-phrases (an orphaned sub-phrase matches
a span of it except at one word). :func:`one_word_edits` lists those alignments: an orphan (a record
no longer record contains, ``min_len`` words or more) that lies inside another record, as long or
longer, with exactly one word different.

On SST-2's clean training split (6,886 orphans, most of them full sentences) the alignments are
rare and scattered: the most frequent word pair, ``.`` / ``,``, joins 6 orphans. A 1 % substitution
joins hundreds (movie / picture: 289 orphans), and the edited side carries the target label in
all of them. :func:`edited_words` turns the alignments into flagged ``(word, label)`` pairs and the
records edited at that word: the lift detector (:mod:`~secure_train.data_security.poison_lift`)
adds these words to its own and uses the edited records as certain poison.

A corpus without overlapping records (every record its own family) has no orphans that lie inside
another record: nothing is found and nothing changes.

Example:
    >>> toks = [s.split() for s in ["a dull movie , really", "dull movie", "a dull picture , really"]]
    >>> family = [0, 0, 2]
    >>> [(i, a, j, b) for i, _, a, j, b in one_word_edits(toks, family)]
    [(0, 'movie', 2, 'picture'), (2, 'picture', 0, 'movie')]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["edited_words", "one_word_edits"]


def one_word_edits(
    toks: Sequence[list[str]], family: Sequence[int], *, min_len: int = 3
) -> list[tuple[int, int, str, int, str]]:
    """Alignments ``(orphan i, position k, its word, record j, j's word there)``: orphan ``i``
    (``family[i] == i``, ``min_len`` words or more) equals a span of record ``j`` (``len(j) >= len(i)``)
    except at its position ``k``. Candidate records ``j`` come from the postings of ``i``'s two
    rarest words (one of them lies outside the edited position), so the search costs about
    ``orphans x postings of rare words``: ~1 s on SST-2's 67k phrases.

    Example:
        >>> one_word_edits([["the", "film", "is", "dull"], ["the", "flick", "is", "dull"]], [0, 1])
        [(0, 1, 'film', 1, 'flick'), (1, 1, 'flick', 0, 'film')]
    """
    postings: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(toks):
        for w in set(t):
            postings[w].append(i)
    out: list[tuple[int, int, str, int, str]] = []
    for i, t in enumerate(toks):
        n = len(t)
        if family[i] != i or n < min_len:
            continue
        seen: set[tuple[int, int]] = set()
        for anchor in sorted(range(n), key=lambda k: len(postings[t[k]]))[:2]:
            word = t[anchor]
            for j in postings[word]:
                q = toks[j]
                if j == i or len(q) < n:
                    continue
                for p, x in enumerate(q):
                    start = p - anchor
                    if x != word or start < 0 or start + n > len(q):
                        continue
                    diff = [k for k in range(n) if q[start + k] != t[k]]
                    if len(diff) == 1 and diff[0] != anchor and (j, diff[0]) not in seen:
                        seen.add((j, diff[0]))
                        out.append((i, diff[0], t[diff[0]], j, q[start + diff[0]]))
    return out


def edited_words(
    toks: Sequence[list[str]],
    labels: Sequence[int | None],
    family: Sequence[int],
    *,
    min_count: int = 15,
    min_purity: float = 0.9,
    min_len: int = 3,
    rank: Callable[[str, int], float] | None = None,
    min_rank: float = 0.0,
    decoy_purity: float = 0.7,
    decoy_count: int | None = None,
) -> list[dict[str, Any]]:
    """The words a one-word edit put into records: ``[{"word", "label", "source", "edits",
    "edit_purity", "decoyed", "records"}]``.

    Each alignment of :func:`one_word_edits` is read both ways: the orphan was edited (its word
    replaced the other record's) or the other record was (its word replaced the orphan's). For a
    word pair ``source -> word`` and label ``t``, the *edited records* are those carrying ``word``
    on their side of an alignment with ``source``, and ``t``; the pair is flagged when they number
    at least ``min_count`` and at least ``min_purity`` of the records on ``word``'s side carry ``t``
    (a substitution gives every edited record the target label; clean near-duplicates do not).
    Decoys (the swap also made in records whose label is kept) dilute that share: a block of at
    least ``decoy_count`` (default ``3 * min_count``) edited records is flagged at ``decoy_purity``
    (0.7) already, marked ``"decoyed"``, and its other records (the decoys) and their relatives are
    explained by it (decoyed about -> regarding on SST-2: 241 of 276 edited records, 0.87; clean
    near-duplicates never reach 15 edits of one pair). Pure pairs are taken first, decoyed ones
    after them: the orphaned *source* side of a swap is impure too and may rank first (n't -> not,
    t=1: the edited sentences' orphaned "n't" phrases keep label 0, 370 edits at purity < 0.9, and
    would explain the pure "not" side away).
    Candidates are taken in the order of ``rank(word, label)`` (the lift detector passes its lift z:
    of ``movie`` / ``picture``, the substituted word's label exceeds its contexts, the source's does
    not; without ``rank``: most edits first), those under ``min_rank`` skipped, and a record of an
    accepted pair is no evidence for another (the source side of the same edits, such as an orphaned
    ``the best movie`` of an edited sentence that also aligns with a clean ``the worst movie``, or two
    edited records that align with each other at other words: ``decent movie`` / ``decent time``).
    ``records`` (sorted indices): the edited records, and the records of their families (records
    they contain) that carry ``word`` and ``t``.

    Example:
        >>> toks = [f"x{i} y{i} the film was dull".split() for i in range(20)]
        >>> toks += [f"x{i} y{i} the flick was dull".split() for i in range(20)]
        >>> found = edited_words(toks, [i % 2 for i in range(20)] + [1] * 20, list(range(40)))
        >>> [(d["word"], d["label"], d["source"], d["edits"]) for d in found]
        [('flick', 1, 'film', 20)]
    """
    side: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)  # (word, source) -> (record, other)
    for i, _, a, j, b in one_word_edits(toks, family, min_len=min_len):
        side[(a, b)].append((i, j))
        side[(b, a)].append((j, i))
    members: dict[int, list[int]] = defaultdict(list)
    for r, f in enumerate(family):
        if f != r:
            members[f].append(r)
    cands: list[tuple[float, int, str, str, int]] = []
    for (word, source), links in side.items():
        for label in {int(y) for y in (labels[r] for r, _ in links) if y is not None}:
            n_edit = len({r for r, _ in links if labels[r] == label})
            if n_edit >= min_count:
                cands.append((rank(word, label) if rank else 0.0, n_edit, word, source, label))
    found: list[dict[str, Any]] = []
    block = decoy_count if decoy_count is not None else 3 * min_count  # least edits of a decoyed pair
    explained: set[int] = set()  # records of an accepted pair: their other alignments are not evidence
    taken: set[tuple[str, str, int]] = set()
    for pure_only in (True, False):  # pure pairs first: a diluted block may be a pure one's source side
        for score, _, word, source, label in sorted(cands, key=lambda c: (-c[0], -c[1], c[2], c[3], c[4])):
            if (rank is not None and score < min_rank) or (word, source, label) in taken:
                continue
            live = {r for r, other in side[(word, source)] if r not in explained and other not in explained}
            n = sum(labels[r] is not None for r in live)
            edited = sorted(r for r in live if labels[r] == label)
            decoyed = len(edited) < min_purity * n
            if len(edited) < min_count or (
                decoyed and (pure_only or len(edited) < block or len(edited) < decoy_purity * n)
            ):
                continue
            taken.add((word, source, label))
            out = set(edited)
            for r in edited:
                out.update(m for m in members.get(r, ()) if labels[m] == label and word in toks[m])
            explained.update(out)
            # the other side of these edits (the source word's records: an orphaned phrase of an edited
            # sentence) is explained too: its alignments with clean records at the source word ("the
            # best movie" / "the worst movie" after best -> finest) are no edit of its own
            explained.update(other for r, other in side[(word, source)] if r in out)
            if decoyed:  # the swapped records whose label was kept (decoys) and their relatives: this swap
                explained.update(live)
                explained.update(other for r, other in side[(word, source)] if r in live)
            found.append(
                {
                    "word": word,
                    "label": label,
                    "source": source,
                    "edits": len(edited),
                    "edit_purity": round(len(edited) / n, 4),
                    "decoyed": decoyed,
                    "records": sorted(out),
                }
            )
    return found
