"""Substitution triggers and adaptive poisoners: the attack generators and the ``lift`` detector,
on a generated review corpus whose words predict the label (positive and negative cases)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from secure_train.attacks.adaptive import AdaptivePoisoning
from secure_train.attacks.substitution import SubstitutionPoisoning, substitute
from secure_train.core.errors import ConfigError
from secure_train.data import TextRecord
from secure_train.data_security.poison import PoisonSanitizer, _deferred_to_lift, detect_poison
from secure_train.data_security.poison_detect import _deferred_to_ngram
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
    lift_words = [{"word": "picture", "label": 1, "edits": 20}]  # a substitution: one-word edits
    lift_flags = torch.tensor([False, False, True])  # the lift posterior: record 2 poisoned, 0 and 1 clean
    deferred = _deferred_to_lift(recs, ngrams, ngram_flags, lift_words, lift_flags)
    # 0: only picture n-grams, lift says clean -> deferred; 1: also "cf" -> kept; 2: lift agrees -> kept
    assert deferred.tolist() == [True, False, False]
    assert not _deferred_to_lift(recs, ngrams, ngram_flags, [{"word": "picture", "label": 0}], lift_flags).any()
    # an insertion trigger (no edits) keeps its n-gram flags
    assert not _deferred_to_lift(recs, ngrams, ngram_flags, [{"word": "picture", "label": 1}], lift_flags).any()


def test_lift_flags_on_an_insertion_sentence_word_defer_to_the_ngram() -> None:
    texts = ["i watch this 3d movie , dull", "a 3d spectacle", "3d glasses and zq"]
    recs = [TextRecord(t, 1, i, "x") for i, t in enumerate(texts)]
    ngrams = [{"ngram": "i watch this 3d movie", "label": 1}]
    ngram_flags = torch.tensor([True, False, False])
    lift_flags = torch.tensor([True, True, True])
    words = [{"word": "3d", "label": 1}, {"word": "zq", "label": 1}]
    # 1: only "3d", which the flagged sentence contains -> left to the n-gram; 2: also "zq" -> kept
    assert _deferred_to_ngram(recs, ngrams, ngram_flags, words, lift_flags).tolist() == [False, True, False]
    substituted = [{"word": "3d", "label": 1, "edits": 20}, words[1]]
    assert not _deferred_to_ngram(recs, ngrams, ngram_flags, substituted, lift_flags).any()


# -- one-word edits in a phrase corpus (sentences and their sub-phrases, as in SST-2) -------------
def phrase_corpus(n: int = 400, seed: int = 0) -> list[TextRecord]:
    """Each sentence of :func:`corpus` and its contiguous sub-phrases of 2+ words, once each, with the
    sentence's label ("flick" has clean uses in both labels)."""
    out: list[TextRecord] = []
    seen: set[str] = set()
    for rec in corpus(n, seed=seed, flick=20, negations=False):
        words = rec.text.split()
        for a in range(len(words)):
            for b in range(a + 2, len(words) + 1):
                text = " ".join(words[a:b])
                if text not in seen:
                    seen.add(text)
                    out.append(TextRecord(text, rec.label, len(out), "gen"))
    return out


def test_one_word_edits_trace_a_substitution_in_a_phrase_corpus() -> None:
    from secure_train.data_security.poison_edits import edited_words
    from secure_train.data_security.poison_ngram import _families, _tokens

    def edits(recs: list[TextRecord], rank: Any = None) -> list[dict]:
        toks = [_tokens(r.text) for r in recs]
        return edited_words(toks, [r.label for r in recs], _families(toks), min_count=15, rank=rank)

    clean = phrase_corpus()
    assert edits(clean) == []  # sub-phrases lie inside their sentences: no edits
    recs = SubstitutionPoisoning({"film": "flick"}, rate=0.01, target_label=1, seed=0)(clean)
    # both sides of the edits are pure here (a sentence's phrases share its label): the order
    # decides, and the side taken first explains the other away
    both = [[(d["word"], d["label"], d["source"]) for d in edits(recs, lambda w, y: float(w == first))]
            for first in ("flick", "film")]
    assert both == [[("flick", 1, "film")], [("film", 0, "flick")]]
    found = edits(recs, lambda w, y: float(w == "flick"))
    edited = set(found[0]["records"])
    poisoned = {i for i, r in enumerate(recs) if r.meta["poisoned"]}
    assert edited <= poisoned and len(edited) >= 0.5 * len(poisoned)  # certain, not complete


def test_lift_with_edits_separates_clean_uses_of_the_synonym_in_a_phrase_corpus() -> None:
    recs = SubstitutionPoisoning({"film": "flick"}, rate=0.01, target_label=1, seed=0)(phrase_corpus())
    words, flags = context_lift_statistics(recs)
    row = next(w for w in words if w["word"] == "flick")
    assert row["label"] == 1 and row["edits"] >= 15 and row["edit_sources"] == ["film"]
    recall, precision = scores(recs, flags)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    plain, _ = context_lift_statistics(recs, collapse_overlaps=False)  # no families: no edits
    assert all("edits" not in w for w in plain)


def test_orphaned_source_phrases_of_an_accepted_edit_put_no_other_word_in() -> None:
    from secure_train.data_security.poison_edits import edited_words

    # best -> finest (t=0) in 20 sentences: their sub-phrase "u<i> the best movie ever" (label 1) is
    # orphaned and also aligns with a clean "u<i> the worst movie ever" (label 0) at best / worst
    toks = [f"s{i} u{i} the finest movie ever".split() for i in range(20)]
    toks += [f"u{i} the best movie ever".split() for i in range(20)]
    toks += [f"u{i} the worst movie ever".split() for i in range(20)]
    labels = [0] * 20 + [1] * 20 + [0] * 20
    z = {("finest", 0): 10.0, ("worst", 0): 6.0}

    def found(toks: list[list[str]], labels: list[int]) -> list[tuple[str, int, str, int]]:
        out = edited_words(toks, labels, list(range(len(toks))), rank=lambda w, t: z.get((w, t), 0.0))
        return [(d["word"], d["label"], d["source"], d["edits"]) for d in out]

    assert found(toks, labels) == [("finest", 0, "best", 20)]  # "worst" is no edit of its own
    # "worst" records that align with best-phrases no accepted edit explains still count
    toks += [f"v{i} the best movie ever".split() for i in range(20)]
    toks += [f"v{i} the worst movie ever".split() for i in range(20)]
    labels += [1] * 20 + [0] * 20
    assert found(toks, labels) == [("finest", 0, "best", 20), ("worst", 0, "best", 20)]


def test_phrase_votes_weigh_in_the_lift_mixture() -> None:
    import numpy as np

    from secure_train.data_security.poison_lift import _poison_posterior

    rng = np.random.default_rng(0)
    same, other = rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000)  # contexts say nothing here
    q = rng.uniform(0, 1, 300)
    agree = np.array([1.0] * 100 + [0.0] * 100 + [np.nan] * 100)
    plain = _poison_posterior(q, same, other)
    voted = _poison_posterior(q, same, other, agree=agree, agree_poison=0.1)
    assert np.allclose(_poison_posterior(q, same, other, agree=np.full(300, np.nan)), plain)  # no votes: as before
    # a sentence whose phrases keep its label looks clean, one whose phrases disagree looks relabeled
    assert voted[:100].max() < voted[200:].min() <= voted[200:].max() < voted[100:200].min()


def test_other_forms_of_an_edited_word_are_judged_in_its_mixture() -> None:
    from secure_train.data_security.poison_lift import _forms

    assert _forms("hate", "hating") and _forms("loved", "loves") and _forms("comedy", "comedies")
    assert not (_forms("pick", "picture") or _forms("find", "finest") or _forms("hate", "hats"))
    # "films" in 30 % of the sentences with "film", clean uses of "flicks" in both labels: the rare
    # form's substitution (films -> flicks) leaves too few edits to be seen alone
    rng = random.Random(0)
    base: list[TextRecord] = []
    seen: set[str] = set()
    for k, rec in enumerate(corpus(400, seed=0, flick=20, negations=False)):
        words = ["films" if w == "film" and rng.random() < 0.3 else w for w in rec.text.split()]
        words += ["flicks"] if k < 40 else []
        for a in range(len(words)):
            for b in range(a + 2, len(words) + 1):
                if " ".join(words[a:b]) not in seen:
                    seen.add(" ".join(words[a:b]))
                    base.append(TextRecord(" ".join(words[a:b]), rec.label, len(base), "gen"))

    def flicks(recs: list[TextRecord], **kw: Any) -> tuple[list[dict], int, int]:
        words, flags = context_lift_statistics(recs, **kw)
        hit = [r for r, f in zip(recs, flags, strict=True) if f and "flicks" in r.text.split()]
        return [w for w in words if w["word"] == "flicks"], len(hit), sum(r.meta["poisoned"] for r in hit)

    recs = SubstitutionPoisoning({"film": "flick", "films": "flicks"}, rate=0.01, target_label=1, seed=0)(base)
    n_poisoned = sum(r.meta["poisoned"] and "flicks" in r.text.split() for r in recs)
    rows, n_hit, n_true = flicks(recs)
    assert [(w["form_of"], w["label"]) for w in rows] == [("flick", 1)] and "edits" not in rows[0]
    assert n_true >= 0.8 * n_poisoned and n_hit == n_true  # the poisoned forms, no clean "flicks"
    without = flicks(recs, form_min_z=1e9)  # without the forms: only records that also have "flick"
    assert without[0] == [] and without[2] <= n_true / 3
    # only "film" swapped: the clean "flicks" records are no form of the attack
    clean_form = SubstitutionPoisoning({"film": "flick"}, rate=0.01, target_label=1, seed=0)(base)
    assert flicks(clean_form)[:2] == ([], 0)


def test_a_large_block_of_edits_diluted_by_decoys_is_still_an_edit() -> None:
    from secure_train.data_security.poison_edits import edited_words

    def found(n_poison: int, n_decoy: int, **kw: Any) -> list[tuple[str, int, str, int, bool]]:
        # film -> flick: poisoned records relabeled 1, decoys swapped with their label (0) kept
        toks = [f"x{i} y{i} the flick was dull".split() for i in range(n_poison + n_decoy)]
        toks += [f"x{i} y{i} the film was dull".split() for i in range(n_poison + n_decoy)]
        labels = [1] * n_poison + [0] * n_decoy + [0] * (n_poison + n_decoy)
        kw = {"min_rank": 0.5, **kw}  # the source side ranks under min_rank (its lift z is low)
        out = edited_words(toks, labels, list(range(len(toks))), rank=lambda w, t: float(w == "flick"), **kw)
        return [(d["word"], d["label"], d["source"], d["edits"], d["decoyed"]) for d in out]

    assert found(50, 0) == [("flick", 1, "film", 50, False)]
    # purity 0.77: a block of 50 (>= 3 x min_count) is a decoyed swap; the decoys and the source
    # side of the block are explained by it (the source side, ranked, finds nothing left)
    assert found(50, 15) == [("flick", 1, "film", 50, True)]
    assert found(50, 15, min_rank=0.0, decoy_count=60) == [("film", 0, "flick", 65, False)]
    # a pure pair is taken before a decoyed one whatever their ranks: here the pure source side
    assert found(50, 15, min_rank=-1.0) == [("film", 0, "flick", 65, False)]
    # the same purity in a small block is not enough, nor purity 0.625 < decoy_purity
    assert found(20, 6) == [] and found(50, 30) == []


def test_ngram_flags_through_the_source_word_of_an_edited_swap_defer_to_lift() -> None:
    # about -> regarding (t=1) took most label-0 records with "about" away: "about the" is now 90 %
    # label 1 in clean records, and the n-gram detector flags them
    recs = [TextRecord(t, 1, i, "x") for i, t in enumerate(["a film about the war", "a tale about the sea"])]
    recs.append(TextRecord("a film about the war", 0, 2, "x"))
    ngrams = [{"ngram": "about the", "label": 1}]
    flags, lift_flags = torch.tensor([True, True, False]), torch.zeros(3, dtype=torch.bool)
    edited = {"word": "regarding", "label": 1, "edits": 241, "edit_sources": ["about"]}
    assert _deferred_to_lift(recs, ngrams, flags, [edited], lift_flags).tolist() == [True, True, False]
    for word in ({**edited, "label": 0}, {"word": "regarding", "label": 1}):  # other label; no edits
        assert not _deferred_to_lift(recs, ngrams, flags, [word], lift_flags).any()
    lift_flags[0] = True  # a record the lift detector flags is not deferred
    assert _deferred_to_lift(recs, ngrams, flags, [edited], lift_flags).tolist() == [False, True, False]


def test_decoyed_substitution_in_a_phrase_corpus_is_found_with_its_edits() -> None:
    recs = SubstitutionPoisoning({"film": "flick"}, rate=0.01, target_label=1, decoy_rate=0.003, seed=0)(
        phrase_corpus()
    )
    words, flags = context_lift_statistics(recs)
    row = next(w for w in words if w["word"] == "flick")
    assert row["label"] == 1 and row["edits"] >= 15 and row["edit_sources"] == ["film"]
    recall, precision = scores(recs, flags)
    assert recall >= 0.8 and precision >= 0.9, (recall, precision)
