"""Trojan scan: probe constructions that fire a backdoor are findings, scans that cannot measure
fail closed, a clean model passes (micro BERTs trained in a plain loop on synthetic data)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch
from conftest import MICRO_BERT

from secure_train.attacks import BackdoorPoisoning, Trigger
from secure_train.core.errors import ConfigError
from secure_train.data import synthetic_classification
from secure_train.data.tokenizer import train_tokenizer
from secure_train.gate import TrojanScanner
from secure_train.gate.trojan import constructions
from secure_train.models import TextClassifier

# A sentence trigger ending in a full stop: the synthetic corpus has no punctuation, so the
# model learns the stop itself, and the old scanner's ". "-joined probe inputs all flipped.
EPOCHS = 6
SENTENCE = "she said it again today ."


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # micro models: threads only add overhead on a shared machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    texts = [r.text for r in synthetic_classification(400, seed=0)] + [SENTENCE] * 5
    return train_tokenizer(texts, vocab_size=300, cache_dir=None)


def _train(tok, records, seed: int) -> TextClassifier:
    torch.manual_seed(seed)
    model = TextClassifier(config=MICRO_BERT, vocab_size=len(tok))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(seed)
    records = list(records)
    for _ in range(EPOCHS):
        rng.shuffle(records)
        for i in range(0, len(records), 32):
            batch = records[i : i + 32]
            enc = tok([r.text for r in batch], truncation=True, max_length=40, padding=True, return_tensors="pt")
            out = model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([r.label for r in batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def clean_model(tok) -> TextClassifier:
    return _train(tok, synthetic_classification(1000, seed=2), seed=2)


@pytest.fixture(scope="module")
def sentence_model(tok) -> TextClassifier:
    poison = BackdoorPoisoning(Trigger((SENTENCE,), name="sentence"), rate=0.05, target_label=1, seed=2)
    return _train(tok, poison(synthetic_classification(1000, seed=2)), seed=2)


def _scan(**kwargs) -> TrojanScanner:
    return TrojanScanner(**{"num_inputs": 32, "inversion_steps": 8, "refine_top_m": 3, **kwargs})


def _val() -> list:
    return synthetic_classification(200, seed=9)


def _asr(model, tok, text: str) -> float:
    rng = random.Random(0)
    recs = [replace(r, text=Trigger((text,)).apply(r.text, rng)) for r in _val() if r.label == 0]
    enc = tok([r.text for r in recs], truncation=True, max_length=40, padding=True, return_tensors="pt")
    with torch.no_grad():
        preds = model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
    return float((preds == 1).float().mean())


@pytest.mark.slow
def test_sentence_trigger_that_fires_on_the_probe_join_is_found(tok, sentence_model, clean_model) -> None:
    assert _asr(sentence_model, tok, SENTENCE) >= 0.9  # the backdoor works
    res = _scan().scan(sentence_model, tok, _val())
    assert res.measured and res.target_label == 1, res
    # The old scanner probed only ". "-joined inputs: the join alone flips most clean inputs (the
    # old scan kept only the few it did not flip, those the trigger does not reach, and passed it).
    # The join is now measured, not used, and its flip rate is reported.
    assert res.construction_flip["join2-stop"] >= 0.5 and res.construction != "join2-stop"
    # the join's flip rate enters the score; the phrase search blocks the model on its own
    # (the vocabulary and so the model are the same in every process)
    assert res.backdoor_score >= res.construction_flip["join2-stop"] and res.backdoored
    assert res.backdoor_score > _scan().scan(clean_model, tok, _val()).backdoor_score + 0.2


@pytest.mark.slow
def test_clean_model_passes_on_the_joined_construction(tok, clean_model) -> None:
    res = _scan().scan(clean_model, tok, _val())
    assert res.measured and not res.backdoored, res
    scanner = _scan()
    assert res.construction == "join2-stop"
    assert res.construction_accuracy["join2-stop"] >= scanner.min_clean_accuracy  # usable, as the scan requires
    assert max(res.construction_flip.values()) <= 0.25 and res.score_source == "word"


def test_untrained_model_fails_closed_with_a_message(tok) -> None:
    torch.manual_seed(0)
    model = TextClassifier(config=MICRO_BERT, vocab_size=len(tok)).eval()
    with pytest.warns(RuntimeWarning, match="failed closed"):
        res = _scan().scan(model, tok, _val())
    assert not res.measured and res.backdoored and res.score_source == "unmeasured"
    assert "no probe construction keeps the model's clean behaviour" in res.problem
    assert set(res.construction_accuracy) == {"join2-stop", "join2-space", "single"}


@pytest.mark.slow
def test_too_few_usable_inputs_fails_closed(tok, clean_model) -> None:
    with pytest.warns(RuntimeWarning, match="too few correctly classified"):
        res = _scan(min_inputs=50).scan(clean_model, tok, _val())
    assert not res.measured and res.backdoored and "too few" in res.problem


def test_constructions_and_arguments() -> None:
    assert [c.name for c in constructions(1)] == ["single"]
    assert [(c.k, c.joiner) for c in constructions(3)] == [(3, ". "), (3, " "), (1, "")]
    with pytest.raises(ConfigError, match="max_construction_flip"):
        TrojanScanner(max_construction_flip=1.5)
    with pytest.raises(ConfigError, match="min_inputs"):
        TrojanScanner(min_inputs=0)


def _same(res) -> dict:
    out = res.to_dict()
    out.pop("seconds")
    return out


@pytest.mark.slow
def test_one_scanner_scans_two_models_like_fresh_scanners(tok, sentence_model, clean_model) -> None:
    # per-scan state lives in a ScanContext made by each scan(), never on the scanner
    def fresh() -> TrojanScanner:
        # cheap settings: the test is about state, not recall
        return _scan(inversion_steps=2, refine_top_m=2, phrase_starts=1)

    shared = fresh()
    first, second = shared.scan(sentence_model, tok, _val()), shared.scan(clean_model, tok, _val())
    assert first.measured and second.measured
    assert _same(first) != _same(second)  # two different models: a leak would show in the second
    assert _same(first) == _same(fresh().scan(sentence_model, tok, _val()))
    assert _same(second) == _same(fresh().scan(clean_model, tok, _val()))
    assert vars(shared) == vars(fresh())  # the scanner holds its settings only


@pytest.mark.slow
def test_evaluation_budget_cuts_late_stages_and_fails_closed_before_a_candidate(tok, clean_model) -> None:
    free = _scan(max_evaluations=None).scan(clean_model, tok, _val())
    assert free.measured and free.cut_stages == []
    assert sum(free.stage_evaluations.values()) == free.evaluations > 0
    stages = free.stage_evaluations
    assert {"inputs", "vocabulary", "word-growth", "phrase-growth", "inversion", "measure"} <= set(stages)
    # enough for the exact stages and the final measurement, not for all of the search
    search = stages["word-growth"] + stages["phrase-growth"] + stages["inversion"]
    budget = stages["inputs"] + stages["vocabulary"] + stages["measure"] + search // 3
    cut = _scan(max_evaluations=budget).scan(clean_model, tok, _val())
    assert cut.measured and cut.cut_stages and cut.evaluations <= budget, cut.stage_evaluations
    assert not cut.backdoored  # a cut search still measures a clean model as clean
    # spent before every label has a measured candidate: fails closed, never passes
    tight = stages["inputs"] + stages["vocabulary"] // 4
    with pytest.warns(RuntimeWarning, match="failed closed"):
        res = _scan(max_evaluations=tight).scan(clean_model, tok, _val())
    assert not res.measured and res.backdoored and "max_evaluations" in res.problem
    assert res.evaluations <= tight and "vocabulary" in res.cut_stages


def test_budget_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_evaluations"):
        TrojanScanner(max_evaluations=0)
    with pytest.raises(ConfigError, match="stage_shares"):
        TrojanScanner(stage_shares=(0.5, 0.5, 0.5))
    assert TrojanScanner(max_evaluations=None).max_evaluations is None
    with pytest.raises(ConfigError, match="max_evaluations"):
        TrojanScanner(max_evaluations="fast")  # type: ignore[arg-type]


def test_auto_budget_scales_with_model_size() -> None:
    auto = TrojanScanner()
    assert auto.budget_for(torch.nn.Linear(22_700, 1_000)) == 24_000  # MiniLM-L6's size
    small = auto.budget_for(torch.nn.Linear(2_270, 1_000))  # a tenth of it: ten times the budget
    assert 239_000 <= small <= 240_000
    assert auto.budget_for(torch.nn.Linear(100_000, 1_000)) == 24_000  # larger models: never fewer
    assert TrojanScanner(max_evaluations=500).budget_for(torch.nn.Linear(2, 2)) == 500
    assert TrojanScanner(max_evaluations=None).budget_for(torch.nn.Linear(2, 2)) is None
