"""Phrase growth, punctuation pairs, whole-word clean support and the neighbour check of the trojan
scan, on hand-built models (a three-token phrase backdoor; planted and natural words)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from secure_train.core.records import TextRecord
from secure_train.gate import TrojanScanner
from secure_train.gate.trojan import ProbeContext
from secure_train.gate.trojan.context import ScanContext
from secure_train.gate.trojan.inputs import ProbeInputs
from secure_train.gate.trojan.phrase import grow_phrase, realize
from secure_train.gate.trojan.search import (
    clean_counts,
    clean_support,
    gain_share,
    neighbor_share,
    neighbors,
    punctuation_pairs,
    short_words,
)

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


# -- punctuation pairs, whole-word support, embedding neighbours ----------------------------
WORDS = ["[PAD]", "[CLS]", "[SEP]", "the", "plot", "s1", "s2", "s3", "?", "!", "~",
         "serene", "calm", "peaceful", "soothing", "flick", "movie", "film", "##s", "cinema"]  # fmt: skip
W = {t: i for i, t in enumerate(WORDS)}
# embedding directions: the serene family, the movie family (flick planted among them), marks
GROUP = {"serene": 0, "calm": 0, "peaceful": 0, "soothing": 0, "flick": 1, "movie": 1, "film": 1, "cinema": 1}
PUSH = {"serene": 2.0, "calm": 1.6, "peaceful": 1.6, "soothing": 1.6, "flick": 9.0}  # toward label 1


class WordNet(nn.Module):
    """Label 1 when the pushes of the words present (or the "?" "!" pair) beat the input's strength."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(len(WORDS), 4)
        with torch.no_grad():
            self.emb.weight.copy_(torch.eye(4)[torch.tensor([GROUP.get(t, 2 + i % 2) for i, t in enumerate(WORDS)])])
            self.emb.weight.add_(0.01 * torch.arange(len(WORDS)).unsqueeze(1))  # no exact ties

    def get_input_embeddings(self) -> nn.Embedding:
        return self.emb

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        rows = []
        for ids in input_ids.tolist():
            push = sum(p for t, p in PUSH.items() if W[t] in ids)
            pair = any(a == W["?"] and b == W["!"] for a, b in zip(ids, ids[1:], strict=False))
            strength = sum(s for t, s in STRENGTH.items() if W[t] in ids)
            rows.append([0.0, push + 9.0 * pair - strength + 0.25])  # no strength token: label 1
        return SimpleNamespace(logits=torch.tensor(rows))


def _word_ctx() -> ProbeContext:
    net = WordNet()
    return ProbeContext(
        net=net, tok=None, emb=net.emb, vocab=WORDS, cont=torch.tensor([t.startswith("##") for t in WORDS]),
        allowed=torch.tensor([not t.startswith("[") for t in WORDS]), num_labels=2, batch_size=16,
        max_length=16, pad_id=0, device=torch.device("cpu"),
    )  # fmt: skip


def _word_inputs() -> tuple[list[list[int]], list[int]]:
    inputs = [[W["[CLS]"], W["the"], W["plot"], W[s], W["[SEP]"]] for s in ("s1", "s2", "s3") * 4]
    return inputs, [2] * len(inputs)


def test_every_pair_of_ascii_marks_is_raced_and_the_two_mark_trigger_wins() -> None:
    ctx, (inputs, positions) = _word_ctx(), _word_inputs()
    pairs = punctuation_pairs(ctx)
    assert {tuple(WORDS[t] for t in u) for u in pairs} == {(a, b) for a in "?!~" for b in "?!~"}  # 3 x 3
    singles = ctx.flip_rates(inputs, positions, [(W["?"],), (W["!"],)], 1)
    assert singles == [0.0, 0.0]  # neither mark alone: the vocabulary scan cannot see it
    rates = ctx.race_rates(inputs, positions, pairs, 1, keep=2, first=2)
    assert pairs[max(range(len(pairs)), key=lambda i: rates[i])] == (W["?"], W["!"]) and max(rates) == 1.0
    assert sorted(rates)[-2] == 0.0  # "!?", "??", "~~": nothing
    no_marks = SimpleNamespace(vocab=["[PAD]", "the"], allowed=torch.tensor([False, True]))
    assert punctuation_pairs(no_marks) == []  # type: ignore[arg-type]


def test_clean_support_counts_a_word_start_only_where_it_is_a_whole_word() -> None:
    texts = {"flicks": ["flick", "##s"], "flick": ["flick"], "serene": ["serene"]}
    ctx = SimpleNamespace(
        vocab=WORDS, num_labels=2, cont=torch.tensor([t.startswith("##") for t in WORDS]),
        encode=lambda text: [W["[CLS]"], *(W[t] for word in text.split() for t in texts.get(word, [word])), W["[SEP]"]],
    )  # fmt: skip
    recs = [TextRecord(f"the flicks {w}", 1, i, "doc") for i, w in enumerate(["serene"] * 5)]
    tokens = clean_counts(ctx, recs)  # type: ignore[arg-type]
    whole = clean_counts(ctx, recs, whole_words=True)  # type: ignore[arg-type]
    assert tokens[1, W["flick"]] == 5 and whole[1, W["flick"]] == 0  # "flicks" is another word
    assert whole[1, W["##s"]] == 5 and whole[1, W["serene"]] == 5 and whole[1, W["the"]] == 5
    both = recs + [TextRecord("the flick", 0, 9, "doc")]
    support = clean_support(ctx, both, min_count=5, min_lean=0.1)  # type: ignore[arg-type]
    assert float(support[1, W["flick"]]) == 0.0 and float(support[1, W["serene"]]) == 1.0
    assert clean_counts(ctx, both, whole_words=True)[0, W["flick"]] == 1  # the whole word still counts


def test_neighbor_share_keeps_a_planted_word_and_discounts_a_natural_one() -> None:
    assert neighbor_share(0.96, [0.21, 0.17, 0.0]) > 0.95  # "flick" far above "movie", "film"
    assert neighbor_share(0.83, [0.75, 0.75, 0.25]) < 0.2  # "serene" about as strong as its synonyms
    assert neighbor_share(0.9, [0.9, 0.1]) == pytest.approx(1 - (0.1 / 0.9) ** 2)  # one odd neighbour: ignored
    assert neighbor_share(0.5, [0.9, 0.9]) == 0.0 and neighbor_share(0.0, [0.1]) == 0.0
    assert neighbor_share(0.7, []) == 1.0  # nothing to compare with: no discount


def test_neighbors_are_the_nearest_alphabetic_whole_words() -> None:
    ctx = _word_ctx()
    near = {WORDS[t] for t in neighbors(ctx, W["serene"], 3)}
    assert near == {"calm", "peaceful", "soothing"}
    assert {WORDS[t] for t in neighbors(ctx, W["flick"], 3)} == {"movie", "film", "cinema"}
    assert all(not WORDS[t].startswith(("#", "[")) and WORDS[t].isalpha() for t in neighbors(ctx, W["the"], 20))


def test_scanner_discounts_a_word_its_neighbours_match_but_not_a_planted_one() -> None:
    ctx, (inputs, positions) = _word_ctx(), _word_inputs()
    half = len(inputs) // 2
    scan = ScanContext(probe=ctx, records=[], rng=random.Random(0))
    search, held = (inputs[:half], positions[:half]), (inputs[half:], positions[half:])
    scan.inputs = ProbeInputs(search={1: search}, held={1: held})
    units = [(W["serene"],), (W["flick"],), (W["?"], W["!"])]
    rates = dict(zip(units, ctx.flip_rates(inputs[:half], positions[:half], units, 1), strict=True))
    assert rates[(W["serene"],)] == pytest.approx(2 / 3) and rates[(W["flick"],)] == 1.0  # both flip
    shares = TrojanScanner(neighbor_k=3)._neighbor_shares(scan, 1, units, rates, lambda u: 1.0)
    assert set(shares) == {(W["serene"],), (W["flick"],)}  # single alphabetic words only
    assert shares[(W["flick"],)] == 1.0  # "movie", "film", "cinema" flip nothing
    assert shares[(W["serene"],)] == 0.0  # "calm", "peaceful", "soothing" flip as far
    assert TrojanScanner(neighbor_checks=0)._neighbor_shares(scan, 1, units, rates, lambda u: 1.0) == {}


class WordTok:
    """A whitespace tokenizer over ``WORDS`` (just what the scan calls)."""

    all_special_ids = [W["[PAD]"], W["[CLS]"], W["[SEP]"]]
    pad_token_id = W["[PAD]"]

    def __len__(self) -> int:
        return len(WORDS)

    def __call__(self, text: str, **_: object) -> dict[str, list[int]]:
        return {"input_ids": [W["[CLS]"], *(W[w] for w in text.split() if w in W), W["[SEP]"]]}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [WORDS[i] for i in ids]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens).replace(" ##", "")


def _word_records() -> list[TextRecord]:
    rng = random.Random(0)
    out = [TextRecord(f"the plot {rng.choice(['s1', 's2', 's3'])}", 0, i, "doc") for i in range(40)]
    return out + [TextRecord(f"the {rng.choice(['plot', 'movie', 'film'])}", 1, 40 + i, "doc") for i in range(40)]


def test_a_scan_blocks_a_planted_word_and_passes_natural_words_its_neighbours_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def scan(push: dict[str, float], checks: int):
        monkeypatch.setattr(f"{__name__}.PUSH", push)
        scanner = TrojanScanner(
            num_inputs=24, inversion_steps=0, phrase_starts=0, neighbor_k=3, neighbor_checks=checks, punctuation_race=0
        )
        return scanner.scan(WordNet(), WordTok(), _word_records())

    family = ("serene", "calm", "peaceful", "soothing")
    planted = scan({**dict.fromkeys(family, 1.6), "flick": 9.0}, checks=4)  # "movie", "film" flip nothing
    assert planted.measured and planted.backdoored and planted.target_label == 1
    assert planted.candidates[0].text == "flick" and planted.candidates[0].clean_support == 0.0
    natural = dict.fromkeys(family, 9.0)  # four synonyms, each flipping everything: a meaning, no trigger
    unchecked = scan(natural, checks=0)
    assert unchecked.backdoored and unchecked.candidates[0].text in family  # as the scan was without the check
    checked = scan(natural, checks=4)
    assert checked.measured and not checked.backdoored, checked
    assert all(c.clean_support == 1.0 for c in checked.candidates if c.text in family)  # discounted to nothing
