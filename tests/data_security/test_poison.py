"""Poisoned-sample detection: the n-gram statistic, representation detectors, the sanitizer, and the
seed's test (injected poisoned samples are detected and rejected before training)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import quiet_trainer, tiny_classification_data, tiny_classifier

from secure_train.attacks import BackdoorPoisoning
from secure_train.core.errors import ConfigError
from secure_train.data import TextRecord, synthetic_classification
from secure_train.data_security.manifest import records_digest
from secure_train.data_security.poison import (
    NgramSettings,
    PoisonSanitizer,
    _families,
    activation_clustering_scores,
    count_ngrams,
    detect_poison,
    extract_features,
    ngram_label_statistics,
    score_ngrams,
    spectral_signature_scores,
)


def poisoned(kind: str = "addsent", rate: float = 0.05, n: int = 2000, **kw: object) -> list[TextRecord]:
    return BackdoorPoisoning(kind, rate=rate, seed=0, **kw)(synthetic_classification(n, seed=0))  # type: ignore[arg-type]


def truth(recs: list[TextRecord]) -> set[int]:
    return {r.sample_id for r in recs if r.meta.get("poisoned")}


@pytest.mark.parametrize(
    ("kind", "kw"),
    [("addsent", {}), ("badnets", {"words": ["cf"]}), ("addsent", {"clean_label": True})],
)
def test_ngram_detector_finds_insertion_triggers(kind: str, kw: dict) -> None:
    recs = poisoned(kind, **kw)
    flagged = set(detect_poison(recs).flagged_ids)
    tp = len(flagged & truth(recs))
    assert tp / len(truth(recs)) >= 0.95
    assert tp / len(flagged) >= 0.9


def test_ngram_detector_quiet_on_clean_data() -> None:
    recs = synthetic_classification(2000, seed=0)
    ngrams, flags = ngram_label_statistics(recs)
    assert sum(flags) <= 0.01 * len(recs), ngrams


def test_super_gram_explains_sub_grams() -> None:
    recs = poisoned("addsent", 0.05)
    ngrams, _ = ngram_label_statistics(recs, max_n=5)
    assert [g["ngram"] for g in ngrams] == ["i watch this 3d movie"]


def test_families_collapse_sub_phrases() -> None:
    toks = [t.split() for t in ["a b c d", "b c", "c d", "x y", "b c"]]
    assert _families(toks) == [0, 0, 0, 3, 0]


def test_collapse_deflates_words_repeated_across_sub_phrases() -> None:
    # a phrase-level corpus: each "sentence" appears with all its sub-phrases (like SST-2's train split)
    recs: list[TextRecord] = []
    sid = 0
    for i in range(300):
        label = i % 2
        words = [f"w{i}a", "awful" if label == 0 else "lovely", f"w{i}b", f"w{i}c", f"w{i}d"]
        for a in range(len(words)):
            for b in range(a + 1, len(words) + 1):
                recs.append(TextRecord(" ".join(words[a:b]), label, sid, "x"))
                sid += 1
    # insert a trigger into 40 negative sub-phrases, relabelled positive
    for r in [r for r in recs if r.label == 0 and len(r.text.split()) == 2][:40]:
        recs[r.sample_id] = TextRecord("zq " + r.text, 1, r.sample_id, "x", meta={"poisoned": True})

    def z(collapse: bool) -> dict[str, float]:
        grams, _ = ngram_label_statistics(recs, collapse_overlaps=collapse, z_sigma=-100, min_purity=0.0)
        wanted = {("awful", 0), ("zq", 1)}
        return {g["ngram"]: g["z"] for g in grams if (g["ngram"], g["label"]) in wanted}

    plain, collapsed = z(False), z(True)
    assert plain["awful"] > 4 * plain["zq"]  # each sentence counted once per sub-phrase
    assert collapsed["awful"] < plain["awful"] / 2.5  # counted once per sentence
    assert collapsed["zq"] == pytest.approx(plain["zq"], rel=0.2)  # poisoned phrases stay separate


def sentences_with_sub_phrases(n: int, start: int = 0) -> list[TextRecord]:
    """Each sentence followed by its prefixes (one family per sentence: each holds the sentence's
    own first word), ``zq`` in every 6th sentence, all of those labeled 1."""
    recs: list[TextRecord] = []
    for i in range(start, start + n):
        words, label = [f"w{i}", f"s{i % 5}", "the", "film"], i % 2
        if i % 6 == 0:
            words, label = [words[0], "zq", *words[1:]], 1
        recs += [TextRecord(" ".join(words[:k]), label, len(recs), "x") for k in range(len(words), 0, -1)]
    return recs


@pytest.mark.parametrize("collapse", [True, False])
def test_counts_of_disjoint_parts_merge_to_the_detector(collapse: bool) -> None:
    """Count step on two parts that split no family, merged, then the score and flag steps: the
    detector's n-grams; a part counted twice is not (the merge adds, the check can fail)."""
    first, second = sentences_with_sub_phrases(120), sentences_with_sub_phrases(120, start=120)
    whole = [TextRecord(r.text, r.label, i, "x") for i, r in enumerate(first + second)]
    settings = NgramSettings(collapse_overlaps=collapse)
    merged = count_ngrams(first, settings).merge(count_ngrams(second, settings))
    assert merged == count_ngrams(whole, settings)
    accepted = score_ngrams(merged, settings)
    grams, flags = ngram_label_statistics(whole, settings)
    assert [(a["ngram"], a["label"], a["count"]) for a in accepted] == [
        (g["ngram"], g["label"], g["count"]) for g in grams
    ]
    assert "zq" in [g["ngram"] for g in grams] and sum(flags) > 0
    once = count_ngrams(first, settings)
    twice = count_ngrams(first, settings).merge(once)
    assert twice != once and twice.grams[("zq", 1)] == 2 * once.grams[("zq", 1)] > 0


def test_bad_settings_are_config_errors() -> None:
    recs = poisoned("badnets", 0.05, n=300, words=["cf"])
    for call, match in [
        (lambda: NgramSettings(max_n=0), "ngram: max_n must be an integer >= 1"),
        (lambda: ngram_label_statistics(recs, z_threshold=3.0), "unexpected keyword"),
        (lambda: ngram_label_statistics(recs, collapse_overlaps="yes"), "collapse_overlaps"),
        (lambda: detect_poison(recs, combine="most"), "combine"),
        (lambda: detect_poison(recs, expected_rate=1.5), "expected_rate"),
        (lambda: detect_poison(recs, spectral_sigma=0), "spectral_sigma"),
        (lambda: detect_poison(recs, min_purity=1.5), "min_purity"),
        (lambda: detect_poison(recs, lift_kwargs={"bogus": 1}), "lift: .*bogus"),
        (lambda: PoisonSanitizer(max_drop_fraction=0), "max_drop_fraction"),
        (lambda: PoisonSanitizer(methods=()), "methods"),
        (lambda: PoisonSanitizer(bogus=1), "PoisonSanitizer: .*bogus"),
        (lambda: PoisonSanitizer(min_count=0), "min_count"),
        (lambda: PoisonSanitizer(lift_kwargs={"l2": 0}), "l2 must be > 0"),
        (lambda: activation_clustering_scores(torch.zeros(4, 2), torch.zeros(4), max_cluster_share=0), "share"),
        (lambda: extract_features(torch.nn.Linear(1, 1), [], pooling="max"), "pooling"),
    ]:
        with pytest.raises(ConfigError, match=match):
            call()


def test_spectral_and_clustering_find_a_shifted_cluster() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g)
    labels = torch.arange(400) % 2
    x[:40] += 5.0  # 20 of each label are "poisoned"
    s = spectral_signature_scores(x, labels)
    assert set(s.topk(40).indices.tolist()) == set(range(40))
    _, flags, details = activation_clustering_scores(x, labels)
    assert flags[:40].all() and not flags[40:].any()
    assert details[0]["small_share"] == pytest.approx(0.1)


def test_clustering_does_not_split_a_single_blob() -> None:
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    _, flags, _ = activation_clustering_scores(x, torch.zeros(300, dtype=torch.long))
    assert not flags.any()


def test_detect_poison_combines_detectors() -> None:
    recs = poisoned("addsent", 0.05)
    t = truth(recs)
    feats = torch.randn(len(recs), 8, generator=torch.Generator().manual_seed(0))
    for i, r in enumerate(recs):
        if r.sample_id in t:
            feats[i] += 6.0
    any_ = detect_poison(recs, methods=("ngram", "spectral", "clustering"), features=feats, expected_rate=0.05)
    all_ = detect_poison(recs, methods=("ngram", "spectral", "clustering"), features=feats, combine="all")
    assert set(all_.flagged_ids) <= set(any_.flagged_ids)
    assert t <= set(any_.flagged_ids)
    d = any_.to_dict()
    assert set(d["detectors"]) == {"ngram", "spectral", "clustering"} and d["n_flagged"] == len(any_.flagged_ids)
    assert "| ngram |" in any_.to_markdown()
    with pytest.raises(ConfigError, match="need features"):
        detect_poison(recs, methods=("spectral",))
    with pytest.raises(ConfigError, match="methods"):
        detect_poison(recs, methods=("magic",))


def test_sanitizer_records_custody_and_refuses_runaway() -> None:
    recs = poisoned("addsent", 0.05)
    san = PoisonSanitizer()
    kept = san(recs)
    (entry,) = san.custody
    assert set(entry.affected["dropped"]) == {r.sample_id for r in recs} - {r.sample_id for r in kept}
    assert entry.input_digest == records_digest(recs) and entry.output_digest == records_digest(kept)
    assert entry.params["ngrams"] and entry.hash == entry.body_hash()
    with pytest.raises(ConfigError, match="max_drop_fraction"):
        PoisonSanitizer(max_drop_fraction=0.01)(recs)
    with pytest.raises(ConfigError, match="feature_fn"):
        PoisonSanitizer(("spectral",))


def test_seed_poisoned_samples_rejected_before_training(tmp_path: Path) -> None:
    """The seed's test: injected poisoned samples are detected and rejected before training."""
    sanitizer = PoisonSanitizer()
    poison = BackdoorPoisoning("addsent", rate=0.05, seed=0)
    dm = tiny_classification_data(synthetic_size=2000, transforms=[poison, sanitizer], cache_dir=None)
    trainer = quiet_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    model = tiny_classifier()
    trainer.fit(model, dm)
    train = dm.load_records()["train"]
    assert not any(r.meta["poisoned"] for r in train)
    dropped = set(sanitizer.custody[-1].affected["dropped"])
    assert len(dropped) >= 0.95 * round(0.05 * 1800)
    prov = dm.provenance()
    assert prov["data_custody"][-1]["name"] == "poison_sanitizer"
    assert set(prov["data_custody"][-1]["affected"]["dropped"]) == dropped
    feats, ids = extract_features(model, dm.loader_for(train[:20]), pooling="mean")
    assert feats.shape == (20, 32) and ids.tolist() == [r.sample_id for r in train[:20]]
