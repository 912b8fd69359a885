"""Stateless stages of the trojan search: growing a word from continuation pieces, and the clean
support and natural use that tell natural features from planted triggers.

Example:
    >>> from secure_train.data.tokenizer import train_tokenizer
    >>> from secure_train.data import TextRecord
    >>> from secure_train.models import TextClassifier
    >>> tok = train_tokenizer(["a good film", "a bad film"], vocab_size=60, cache_dir=None)
    >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
    ...     "num_attention_heads": 1, "intermediate_size": 16}, vocab_size=len(tok))
    >>> ctx = ProbeContext.build(model.model.eval(), tok, batch_size=8, max_length=16)
    >>> recs = [TextRecord("good film", 1, i, "doc") for i in range(5)]
    >>> recs += [TextRecord("bad film", 0, 5 + i, "doc") for i in range(5)]
    >>> support = clean_support(ctx, recs, min_count=5, min_lean=0.1)
    >>> good, film = tok.convert_tokens_to_ids(["good", "film"])
    >>> float(support[1, good]), float(support[1, film])
    (1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from secure_train.core.records import TextRecord
from secure_train.gate.trojan.probe import BudgetExhausted, ProbeContext

__all__ = [
    "clean_counts",
    "clean_support",
    "gain_share",
    "grow_word",
    "natural_use",
    "neighbor_share",
    "neighbors",
    "punctuation_pairs",
    "short_words",
]


def grow_word(
    ctx: ProbeContext,
    unit: tuple[int, ...],
    inputs: list[list[int]],
    positions: list[int],
    target: int,
    *,
    max_tokens: int,
    exact_vocab_limit: int,
    screen_top_k: int,
    keep: int = 4,
) -> tuple[int, ...]:
    """Greedily append continuation pieces while the flip rate improves.

    The unit grows to at most ``max_tokens`` pieces. With more than ``exact_vocab_limit``
    pieces, each step measures the ``screen_top_k`` pieces ranked best by a gradient screen after
    the current prefix (all pieces scored). Trials are raced (:meth:`ProbeContext.race_rates`,
    the ``keep`` best measured on all inputs). When the scan's evaluation budget runs out the
    unit grown so far is returned.
    """
    conts = torch.nonzero(ctx.allowed & ctx.cont).flatten()
    if len(conts) == 0:
        return unit
    try:
        best = ctx.flip_rates(inputs, positions, [unit], target)[0]
        while len(unit) < max_tokens and best < 1.0:
            if len(conts) > exact_vocab_limit:
                push = ctx.screen(inputs, positions, target, prefix=unit)
                pick = conts[torch.argsort(push[conts], descending=True)[:screen_top_k]].tolist()
            else:
                pick = conts.tolist()
            trials = [(*unit, c) for c in pick]
            rates = ctx.race_rates(inputs, positions, trials, target, keep=keep)
            i = max(range(len(trials)), key=lambda j: rates[j])
            if rates[i] <= best:
                break
            unit, best = trials[i], rates[i]
    except BudgetExhausted:
        pass
    return unit


def clean_counts(ctx: ProbeContext, records: Sequence[TextRecord], *, whole_words: bool = False) -> torch.Tensor:
    """``(labels, vocabulary)``: how many clean records of each label contain each token.

    With ``whole_words`` a word-start token counts only where it is a whole word (no
    continuation piece follows): "flicks" ("flick" + "##s") is another word than "flick".
    """
    vocab_size = len(ctx.vocab)
    counts = torch.zeros((ctx.num_labels, vocab_size))
    for r in records:
        ids = [i for i in ctx.encode(r.text) if i < vocab_size]
        if whole_words:
            ids = [
                t for k, t in enumerate(ids)
                if bool(ctx.cont[t]) or k + 1 == len(ids) or not bool(ctx.cont[ids[k + 1]])
            ]  # fmt: skip
        idx = torch.tensor(sorted(set(ids)), dtype=torch.long)
        counts[int(r.label or 0), idx] += 1
    return counts


def clean_support(
    ctx: ProbeContext, records: Sequence[TextRecord], *, min_count: int, min_lean: float
) -> torch.Tensor:
    """How far the clean data explain each token's pull toward each label, in [0, 1].

    Over the clean records containing a token: ``n`` records, a share ``p`` of them with the
    label. The lean is ``(p - 1/L) / (1 - 1/L)``. Support is ``min(1, n / min_count)
    * clip(lean / min_lean, 0, 1)``: a sentiment word seen in several clean reviews
    that lean toward "positive" is explained (support 1); a token the clean data never
    contain (a planted trigger), or contain without leaning toward the label, is not (0).
    A word-start token is counted where it is a whole word only (see :func:`clean_counts`):
    "flicks" in positive reviews does not explain a planted "flick".
    """
    counts = clean_counts(ctx, records, whole_words=True)
    prior = 1.0 / ctx.num_labels
    n = counts.sum(0, keepdim=True)
    lean = (counts / n.clamp_min(1.0) - prior) / (1.0 - prior)
    seen = (n / min_count).clamp(max=1.0)
    return seen * (lean / min_lean).clamp(0.0, 1.0)


def natural_use(ctx: ProbeContext, records: Sequence[TextRecord], *, min_count: int) -> torch.Tensor:
    """How far the model's own behaviour on clean records explains each token, per target label.

    A trigger for label ``t`` sends the records of other labels that contain it to ``t``; a
    natural word ("not", "the") occurs in many of them and the model still classifies them
    as their label. Over the clean records of labels other than ``t`` that contain a token (``n``
    records, a share ``k`` of them *not* predicted ``t``) the natural use is ``min(1, n /
    min_count) * k``. A token the clean records never contain has natural use 0.
    """
    vocab_size = len(ctx.vocab)
    seqs = [ctx.encode(r.text) for r in records]
    preds = ctx.predict(seqs).tolist()
    total = torch.zeros((ctx.num_labels, vocab_size))
    kept = torch.zeros((ctx.num_labels, vocab_size))
    for r, ids, p in zip(records, seqs, preds, strict=True):
        idx = torch.tensor(sorted({i for i in ids if i < vocab_size}), dtype=torch.long)
        for t in range(ctx.num_labels):
            if t != int(r.label or 0):
                total[t, idx] += 1
                kept[t, idx] += float(p != t)
    return (total / min_count).clamp(max=1.0) * kept / total.clamp_min(1.0)


def short_words(ctx: ProbeContext) -> list[tuple[int, ...]]:
    """Every two-letter made-up word a tokenizer splits into a letter and a letter piece.

    ``("j", "##z")`` for "jz": neither piece alone moves a model that learned the whole word, so
    neither the vocabulary scan nor word growth from the best starts finds it; the 26 x 26 units
    are few enough to measure all. Empty when the vocabulary has no such pieces.

    Example:
        >>> from secure_train.data.tokenizer import train_tokenizer
        >>> tok = train_tokenizer(["a good film", "a bad film"], vocab_size=60, cache_dir=None)
        >>> from secure_train.models import TextClassifier
        >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
        ...     "num_attention_heads": 1, "intermediate_size": 16}, vocab_size=len(tok))
        >>> ctx = ProbeContext.build(model.model.eval(), tok, batch_size=8, max_length=16)
        >>> all(len(u) == 2 and ctx.vocab[u[1]].startswith("##") for u in short_words(ctx))
        True
    """
    letters = "abcdefghijklmnopqrstuvwxyz"
    index = {t: i for i, t in enumerate(ctx.vocab) if bool(ctx.allowed[i])}
    starts = [index[c] for c in letters if c in index]
    pieces = [index[f"##{c}"] for c in letters if f"##{c}" in index]
    return [(a, b) for a in starts for b in pieces]


def gain_share(free: float, rate: float, head_rate: float) -> float:
    """The part of a grown word's flip ``rate`` its pieces add to its natural first word.

    A natural word with pieces stacked on it ("fantastic" + "##ship" + "##working") flips a
    clean model about as far as the word alone; a made-up word ("j" + "##z") flips far more than
    its first piece. The grown word keeps ``1 - head_rate / rate`` of its rate (never more than
    ``free``, the discount it already has; 0 when it flips nothing).

    Example:
        >>> round(gain_share(1.0, 0.8, 0.6), 2), gain_share(1.0, 1.0, 0.0), gain_share(0.5, 1.0, 0.0)
        (0.25, 1.0, 0.5)
    """
    if rate <= 0.0:
        return 0.0
    return max(0.0, min(free, 1.0 - head_rate / rate))


def punctuation_pairs(ctx: ProbeContext) -> list[tuple[int, ...]]:
    """Every pair of ASCII punctuation tokens ("?" "!", "~" "~"): 32 x 32 units at most.

    A two-mark trigger ("?!") moves the model only as a pair: neither mark alone flips it, so
    the vocabulary scan misses it and phrase growth (from the best single tokens) may never
    start from it; the pairs are few enough to race all.

    Example:
        >>> from secure_train.data.tokenizer import train_tokenizer
        >>> tok = train_tokenizer(["a good film !", "a bad film ?"], vocab_size=60, cache_dir=None)
        >>> from secure_train.models import TextClassifier
        >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
        ...     "num_attention_heads": 1, "intermediate_size": 16}, vocab_size=len(tok))
        >>> ctx = ProbeContext.build(model.model.eval(), tok, batch_size=8, max_length=16)
        >>> sorted(ctx.text(u).replace(" ", "") for u in punctuation_pairs(ctx))
        ['!!', '!?', '?!', '??']
    """
    marks = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    index = {t: i for i, t in enumerate(ctx.vocab) if bool(ctx.allowed[i])}
    ids = [index[c] for c in marks if c in index]
    return [(a, b) for a in ids for b in ids]


def neighbors(ctx: ProbeContext, token: int, k: int) -> list[int]:
    """The ``k`` alphabetic whole-word tokens nearest to ``token`` (cosine of input embeddings).

    A natural word's neighbours are its synonyms and relatives ("serene": "peaceful",
    "calming", "soothing"); they carry the same meaning, so a model that learned the meaning
    responds to them too.
    """
    weight = torch.nn.functional.normalize(ctx.emb.weight.detach().float(), dim=1)
    sim = (weight @ weight[token]).cpu()
    ok = ctx.allowed & ~ctx.cont & torch.tensor([t.isalpha() for t in ctx.vocab], dtype=torch.bool)
    sim[~ok[: len(sim)]] = -2.0
    sim[token] = -2.0
    top = torch.argsort(sim, descending=True)[:k]
    return [int(t) for t in top if float(sim[t]) > -2.0]


def neighbor_share(rate: float, neighbor_rates: Sequence[float]) -> float:
    """The part of a single word's flip ``rate`` that its embedding neighbours do not share.

    The reference is the neighbours' second-highest flip rate (one odd neighbour is not a
    meaning); a word that flips a share ``s`` of what its reference flips keeps ``1 - s**2``:
    a planted word standing far above its neighbours (``flick`` 0.96 over 0.17) keeps almost
    all, a natural word no stronger than its synonyms (``serene`` 0.83 over 0.75) little.

    Example:
        >>> round(neighbor_share(0.96, [0.21, 0.17, 0.0, 0.0]), 2), round(neighbor_share(0.83, [0.75, 0.75]), 2)
        (0.97, 0.18)
        >>> neighbor_share(0.0, [0.5, 0.5]), neighbor_share(0.9, [])
        (0.0, 1.0)
    """
    if rate <= 0.0:
        return 0.0
    ranked = sorted(neighbor_rates, reverse=True)
    if not ranked:
        return 1.0
    ref = ranked[1] if len(ranked) > 1 else ranked[0]
    return 1.0 - min(1.0, ref / rate) ** 2
