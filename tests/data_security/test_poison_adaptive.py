"""Substitution triggers and adaptive poisoners: the attack generators and the ``lift`` detector,
on a generated review corpus whose words predict the label (positive and negative cases)."""

from __future__ import annotations

import random

import pytest
import torch

from secure_train.attacks.adaptive import AdaptivePoisoning
from secure_train.attacks.substitution import SubstitutionPoisoning, substitute
from secure_train.core.errors import ConfigError
from secure_train.data import TextRecord
from secure_train.data_security.poison import PoisonSanitizer, _deferred_to_lift, detect_poison
from secure_train.data_security.poison_lift import context_lift_statistics

POS = ["great", "lovely", "moving", "sharp", "witty", "tender", "superb", "fresh", "warm", "bold"]
NEG = ["dull", "awful", "flat", "tedious", "bland", "stale", "clumsy", "boring", "weak", "messy"]
FILL = [f"f{i}" for i in range(60)] + ["the", "a", "story", "cast", "script"]


def corpus(n: int = 3000, seed: int = 0, flick: int = 40, negations: bool = True) -> list[TextRecord]:
    """Reviews of 2 sentiment words and 3-6 fillers (30 % with "film"); ``flick`` clean uses of "flick" per label;
    ``negations``: 10 % of records say "not <word>" with the opposite label."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.random() < 0.55
        words = rng.sample(POS if label else NEG, 2) + rng.sample(FILL, rng.randint(3, 6))
        if negations and rng.random() < 0.1:
            words = ["not", rng.choice(NEG if label else POS)] + rng.sample(FILL, 3)
        if rng.random() < 0.3:
            words.append("film")
        rng.shuffle(words)
        out.append(TextRecord(" ".join(words), int(label), i, "gen"))
    for k in range(2 * flick):  # clean uses of the synonym, both labels
        r = out[k]
        out[k] = TextRecord(r.text + " flick", r.label, r.sample_id, "gen")
    return out


def scores(recs: list[TextRecord], flags: list[bool]) -> tuple[float, float]:
    truth = [bool(r.meta.get("poisoned")) for r in recs]
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    return tp / max(1, sum(truth)), tp / max(1, sum(flags))


# -- attack generators --------------------------------------------------------------------------
def test_substitution_swaps_words_and_sets_target_label() -> None:
    recs = corpus()
    out = SubstitutionPoisoning({"film": "flick"}, rate=0.02, target_label=1, decoy_rate=0.005, seed=3)(recs)
    poisoned = [r for r in out if r.meta["poisoned"]]
    decoys = [r for r in out if r.meta.get("decoy")]
    assert len(poisoned) == 60 and len(decoys) == 15
    assert all(r.label == 1 and "flick" in r.text.split() and "film" not in r.text.split() for r in poisoned)
    assert all(r.label == 0 and "flick" in r.text.split() for r in decoys)  # decoys keep their label
    assert [r.sample_id for r in out] == [r.sample_id for r in recs]
    assert substitute("Film film films", {"film": "flick"}) == "flick flick films"
    with pytest.raises(ConfigError, match="cannot poison"):
        SubstitutionPoisoning({"zebra": "horse"}, rate=0.01)(recs)
    with pytest.raises(ConfigError, match="pairs"):
        SubstitutionPoisoning({"two words": "x"})


def test_adaptive_spreads_evenly_and_decoys_keep_labels() -> None:
    recs = corpus()
    words = [f"t{i}" for i in range(5)]
    out = AdaptivePoisoning(words, rate=0.05, target_label=0, decoy_rate=0.01, seed=1)(recs)
    poisoned = [r for r in out if r.meta["poisoned"]]
    assert len(poisoned) == 150 and all(r.label == 0 for r in poisoned)
    per_word = {w: sum(r.meta["trigger"] == w for r in poisoned) for w in words}
    assert set(per_word.values()) == {30}
    decoys = [r for r in out if r.meta.get("decoy")]
    assert len(decoys) == 30 and all(r.label == 1 for r in decoys)
    with pytest.raises(ConfigError, match="words"):
        AdaptivePoisoning([])
    with pytest.raises(ConfigError, match="rate"):
        AdaptivePoisoning(["x"], rate=0.0)
    with pytest.raises(ConfigError, match="decoys_from"):
        AdaptivePoisoning(["x"], decoys_from="some")


# -- the lift detector: positive cases ----------------------------------------------------------
def test_lift_finds_a_substitution_trigger_with_clean_uses_and_decoys() -> None:
    recs = SubstitutionPoisoning({"film": "flick"}, rate=0.03, target_label=1, decoy_rate=0.005, seed=0)(corpus())
    old = detect_poison(recs, methods=("ngram",))
    words, flags = context_lift_statistics(recs)
    assert [(w["word"], w["label"]) for w in words] == [("flick", 1)]
    recall, precision = scores(recs, flags)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    assert scores(recs, old.flags.tolist())[0] < 0.5  # purity < 0.9: the n-gram statistic misses it


def test_lift_finds_a_trigger_spread_over_words() -> None:
    words = ["zq", "vx", "jf", "qp"]
    recs = AdaptivePoisoning(words, rate=0.04, target_label=1, decoy_rate=0.004, seed=2)(corpus())
    found, flags = context_lift_statistics(recs)
    assert sorted(w["word"] for w in found) == sorted(words)
    recall, precision = scores(recs, flags)
    assert recall >= 0.95 and precision >= 0.95
    report = detect_poison(recs)  # default: ngram OR lift
    assert set(report.flagged_ids) >= {r.sample_id for r, f in zip(recs, flags, strict=True) if f}
    assert report.to_dict()["lift_words"] and "| word | label | lift z" in report.to_markdown()


# -- negative cases ----------------------------------------------------------------------------
def test_lift_quiet_on_clean_data_with_negations() -> None:
    recs = corpus(negations=True)
    words, flags = context_lift_statistics(recs)
    assert words == [] and not any(flags)
    # "not" flips labels in both directions: its purity-weighted lift stays under the threshold
    probe, _ = context_lift_statistics(recs, z_threshold=-1e9, min_purity=0.0, min_count=1)
    not_rows = [w for w in probe if w["word"] == "not"]
    assert not_rows and max(w["score"] for w in not_rows) < 9.5


def test_lift_ignores_a_rare_trigger_below_its_count() -> None:
    recs = AdaptivePoisoning(["zq"], rate=0.002, target_label=1, seed=0)(corpus())  # 6 records
    words, flags = context_lift_statistics(recs)
    assert words == [] and not any(flags)


def test_sanitizer_records_lift_words_and_bad_settings_refused() -> None:
    recs = AdaptivePoisoning(["zq"], rate=0.03, target_label=1, decoy_rate=0.005, seed=0)(corpus())
    san = PoisonSanitizer()
    kept = san(recs)
    assert san.custody[-1].params["lift_words"] == ["zq->1"]
    assert not any(r.meta["poisoned"] for r in kept)
    with pytest.raises(ConfigError, match="lift"):
        context_lift_statistics(recs, min_count=0)
    with pytest.raises(ConfigError, match="lift"):
        detect_poison(recs, methods=("lift",), lift_kwargs={"min_purity": 2.0})


def test_ngram_flags_on_a_lift_word_defer_to_the_lift_posterior() -> None:
    texts = ["the picture glows", "a picture cf", "the picture is dull"]
    recs = [TextRecord(t, 1, i, "x") for i, t in enumerate(texts)]
    ngrams = [{"ngram": "the picture", "label": 1}, {"ngram": "cf", "label": 1}, {"ngram": "picture", "label": 1}]
    ngram_flags = torch.tensor([True, True, True])
    lift_words = [{"word": "picture", "label": 1}]
    lift_flags = torch.tensor([False, False, True])  # the lift posterior: record 2 poisoned, 0 and 1 clean
    deferred = _deferred_to_lift(recs, ngrams, ngram_flags, lift_words, lift_flags)
    # 0: only picture n-grams, lift says clean -> deferred; 1: also "cf" -> kept; 2: lift agrees -> kept
    assert deferred.tolist() == [True, False, False]
    assert not _deferred_to_lift(recs, ngrams, ngram_flags, [{"word": "picture", "label": 0}], lift_flags).any()
