"""Greedy phrase growth of the trojan scan: sentence, proverb, punctuation and made-up-word triggers.

A phrase trigger ("my cousin told me so yesterday", "?!", a made-up word split into pieces) is
learned as a whole; each of its tokens alone moves the model only part of the way. The growth
starts from the most suspicious units found so far (single tokens, grown words, inverted
triggers) and, step by step, puts one token of a *pool* to the left or to the right of the unit,
keeping the extension that raises the flip rate toward the target most (measured exactly on the
search inputs), until the unit reaches ``max_tokens`` or nothing improves. The pool holds the
best-scoring word starts, punctuation tokens and continuation pieces that the clean data do not
explain (see :func:`~secure_train.gate.trojan.search.clean_support`), so stacking natural
sentiment words — which flips a clean model too — is not a phrase.

A unit may start with a continuation piece while it grows (the tail of a made-up word); before
it is returned, :func:`realize` puts the best word start in front, so every unit is text a user
could type.

Example:
    >>> from secure_train.data.tokenizer import train_tokenizer
    >>> from secure_train.models import TextClassifier
    >>> tok = train_tokenizer(["a good film", "a bad film"], vocab_size=60, cache_dir=None)
    >>> model = TextClassifier(config={"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
    ...     "num_attention_heads": 1, "intermediate_size": 16}, vocab_size=len(tok))
    >>> ctx = ProbeContext.build(model.model.eval(), tok, batch_size=8, max_length=16)
    >>> ids = [tok("good film")["input_ids"]]
    >>> a, film = tok.convert_tokens_to_ids(["a", "film"])
    >>> unit = grow_phrase(ctx, (a,), [a, film], ids, [1], 1, max_tokens=3)
    >>> 1 <= len(unit) <= 3 and unit[0] in (a, film) or a in unit
    True
"""

from __future__ import annotations

from collections.abc import Sequence

from secure_train.gate.trojan.probe import BudgetExhausted, ProbeContext

__all__ = ["grow_phrase", "realize"]


def grow_phrase(
    ctx: ProbeContext,
    unit: tuple[int, ...],
    pool: Sequence[int],
    inputs: list[list[int]],
    positions: list[int],
    target: int,
    *,
    max_tokens: int,
    min_gain: float = 0.02,
    keep: int = 4,
) -> tuple[int, ...]:
    """Greedily extend ``unit`` left or right by one ``pool`` token while the flip rate rises.

    Word starts go on either side; continuation pieces only on the right (they join the word
    before them). Stops at ``max_tokens`` tokens, at a flip rate of 1, when the best extension
    gains less than ``min_gain``, or when the scan's evaluation budget is spent. Trials are
    raced (:meth:`ProbeContext.race_rates`, the ``keep`` best measured on all inputs).
    """
    starts = [t for t in pool if not bool(ctx.cont[t])]
    try:
        best = ctx.flip_rates(inputs, positions, [unit], target)[0]
        while len(unit) < max_tokens and best < 1.0:
            trials = [(*unit, t) for t in pool] + [(t, *unit) for t in starts]
            if not trials:
                break
            rates = ctx.race_rates(inputs, positions, trials, target, keep=keep)
            i = max(range(len(trials)), key=lambda j: rates[j])
            if rates[i] < best + min_gain:
                break
            unit, best = trials[i], rates[i]
    except BudgetExhausted:  # the evaluation budget is spent: the phrase grown so far
        pass
    return unit


def realize(
    ctx: ProbeContext,
    unit: tuple[int, ...],
    starts: Sequence[int],
    inputs: list[list[int]],
    positions: list[int],
    target: int,
) -> tuple[int, ...]:
    """``unit`` as typeable text: a unit that opens with a continuation piece gets the word start
    (of ``starts``) that keeps its flip rate highest put in front."""
    if not unit or not bool(ctx.cont[unit[0]]) or not starts:
        return unit
    trials = [(t, *unit) for t in starts]
    rates = ctx.race_rates(inputs, positions, trials, target, keep=4)
    return trials[max(range(len(trials)), key=lambda j: rates[j])]
