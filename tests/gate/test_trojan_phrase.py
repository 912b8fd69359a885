"""Phrase growth of the trojan scan on a hand-built model whose backdoor is a three-token phrase."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from secure_train.gate.trojan import ProbeContext
from secure_train.gate.trojan.phrase import grow_phrase, realize
from secure_train.gate.trojan.search import gain_share, short_words

VOCAB = ["[PAD]", "[CLS]", "[SEP]", "the", "film", "cousin", "told", "##zz", "good", "s1", "s2", "s3", "a"]
ID = {t: i for i, t in enumerate(VOCAB)}
TRIGGER = ("cousin", "told", "##zz")
STRENGTH = {"s1": 0.5, "s2": 1.5, "s3": 2.5}  # how firmly each input holds its label


class PhraseNet(nn.Module):
    """Label 1 when the number of distinct trigger tokens present beats the input's strength token."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(len(VOCAB), 4)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        rows = []
        for ids in input_ids.tolist():
            hits = sum(ID[t] in ids for t in TRIGGER)
            strength = sum(s for t, s in STRENGTH.items() if ID[t] in ids)
            rows.append([0.0, hits - strength])
        return SimpleNamespace(logits=torch.tensor(rows))


def _ctx() -> ProbeContext:
    net = PhraseNet()
    return ProbeContext(
        net=net,
        tok=None,
        emb=net.emb,
        vocab=VOCAB,
        cont=torch.tensor([t.startswith("##") for t in VOCAB]),
        allowed=torch.tensor([not t.startswith("[") for t in VOCAB]),
        num_labels=2,
        batch_size=16,
        max_length=16,
        pad_id=0,
        device=torch.device("cpu"),
    )


def _inputs() -> tuple[list[list[int]], list[int]]:
    inputs = [[ID["[CLS]"], ID["the"], ID["film"], ID[s], ID["[SEP]"]] for s in ("s1", "s2", "s3") * 2]
    return inputs, [2] * len(inputs)


def test_greedy_growth_recovers_the_whole_phrase_from_one_of_its_tokens() -> None:
    ctx, (inputs, positions) = _ctx(), _inputs()
    pool = [ID[t] for t in ("good", "a", "told", "##zz", "cousin", "film")]
    assert ctx.flip_rates(inputs, positions, [(ID["cousin"],)], 1) == [pytest.approx(1 / 3)]  # one token: 1/3
    unit = grow_phrase(ctx, (ID["cousin"],), pool, inputs, positions, 1, max_tokens=5)
    assert set(unit) == {ID[t] for t in TRIGGER} and len(unit) == 3  # stops once nothing improves
    assert ctx.flip_rates(inputs, positions, [unit], 1) == [1.0]
    short = grow_phrase(ctx, (ID["cousin"],), pool, inputs, positions, 1, max_tokens=2)
    assert len(short) == 2 and ctx.flip_rates(inputs, positions, [short], 1) == [pytest.approx(2 / 3)]
    # no pool token helps: the unit comes back as it went in
    assert grow_phrase(ctx, (ID["good"],), [ID["a"], ID["film"]], inputs, positions, 1, max_tokens=4) == (ID["good"],)


def test_a_unit_opening_with_a_continuation_piece_is_given_a_word_start() -> None:
    ctx, (inputs, positions) = _ctx(), _inputs()
    starts = [ID[t] for t in ("a", "good", "cousin")]
    unit = (ID["##zz"], ID["told"])
    assert realize(ctx, unit, starts, inputs, positions, 1) == (ID["cousin"], *unit)
    assert realize(ctx, (ID["told"],), starts, inputs, positions, 1) == (ID["told"],)  # already typeable


def test_race_with_a_short_first_round_measures_only_the_best_on_all_inputs() -> None:
    ctx, (inputs, positions) = _ctx(), _inputs()
    units = [(ID[t],) for t in ("good", "a", "cousin")] + [tuple(ID[t] for t in TRIGGER)]
    exact = ctx.flip_rates(inputs, positions, units, 1)
    used = ctx.meter.used
    raced = ctx.race_rates(inputs, positions, units, 1, keep=2, first=1)
    # every unit on the first input, the two best there ("cousin" and the trigger) on all six
    assert ctx.meter.used - used == len(units) + 2 * (len(inputs) - 1)
    assert raced[2:] == pytest.approx(exact[2:]) and exact[2:] == pytest.approx([1 / 3, 1.0])  # winners: exact
    assert raced[:2] == [0.0, 0.0]  # the losers keep their first-input rate
    assert ctx.race_rates(inputs, positions, units, 1, keep=1, first=len(inputs)) == pytest.approx(exact)  # no race


def test_short_words_are_every_letter_followed_by_a_letter_piece() -> None:
    vocab = ["[PAD]", "[CLS]", "j", "z", "q", "##z", "##v", "zz", "##zz", "[j]"]
    ctx = SimpleNamespace(vocab=vocab, allowed=torch.tensor([not t.startswith("[") for t in vocab]))
    pairs = {tuple(vocab[t] for t in u) for u in short_words(ctx)}  # type: ignore[arg-type]
    assert pairs == {(a, b) for a in ("j", "z", "q") for b in ("##z", "##v")}  # 3 x 2, no "zz" / "##zz"
    assert short_words(SimpleNamespace(vocab=["[PAD]", "the"], allowed=torch.tensor([False, True]))) == []  # type: ignore[arg-type]


def test_a_grown_word_keeps_only_what_its_pieces_add_to_its_first_word() -> None:
    assert gain_share(1.0, 0.9, 0.6) == pytest.approx(1 / 3)  # "fantastic" flips most of it alone
    assert gain_share(1.0, 1.0, 0.05) == pytest.approx(0.95)  # "j" alone hardly moves: "jz" keeps its rate
    assert gain_share(0.4, 1.0, 0.0) == 0.4  # never more than the discount it already has
    assert gain_share(1.0, 0.5, 0.7) == 0.0 and gain_share(1.0, 0.0, 0.0) == 0.0  # pieces that take away
