"""Poison detection at corpus scale (secure_train.data_security.poison_parallel): the in-memory
``ngram`` detector's count step on ``datasets`` workers and Ray Data, its score and flag steps
unchanged, gives the in-memory detector's flags (default settings: overlapping records collapsed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from secure_train.attacks import BackdoorPoisoning
from secure_train.cli import main as cli_main
from secure_train.core.errors import ConfigError
from secure_train.data import TextRecord, synthetic_classification
from secure_train.data_security.poison import detect_poison, ngram_label_statistics
from secure_train.data_security.poison_ngram import _families, _tokens
from secure_train.data_security.poison_parallel import ParallelPoisonDetector


def phrase_corpus(n: int = 400, rate: float = 0.05, seed: int = 0) -> list[TextRecord]:
    """SST-2-like: every sentence (BadNets "cf" in ``rate`` of them) with 4 of its sub-phrases as
    records of its label, shuffled so that a family's records land in different shards."""
    rng = random.Random(seed)
    recs = []
    for r in BackdoorPoisoning("badnets", rate=rate, seed=seed, words=["cf"])(synthetic_classification(n, seed=seed)):
        words = r.text.split()
        recs.append((r.text, r.label, bool(r.meta.get("poisoned"))))
        for _ in range(4):
            a = rng.randrange(len(words))
            recs.append((" ".join(words[a : rng.randrange(a + 1, len(words) + 1)]), r.label, False))
    rng.shuffle(recs)
    return [TextRecord(t, y, i, "x", meta={"poisoned": p}) for i, (t, y, p) in enumerate(recs)]


def write_shards(folder: Path, recs: list[TextRecord], fmt: str = "jsonl", n_shards: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(recs) // n_shards)
    for k in range(n_shards):
        rows = [{"sentence": r.text, "label": r.label} for r in recs[k * size : (k + 1) * size]]
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{k}.parquet")
        else:
            (folder / f"part-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def in_memory(recs: list[TextRecord], **settings: object) -> tuple[list[dict], list[int]]:
    ngrams, flags = ngram_label_statistics(recs, **settings)  # type: ignore[arg-type]
    return ngrams, [i for i, f in enumerate(flags) if f]


def parallel(folder: Path, **kw: object) -> tuple[list[dict], list[int]]:
    report = ParallelPoisonDetector(**kw).detect(folder)  # type: ignore[arg-type]
    return report.ngrams, report.flagged_ids


@pytest.fixture(scope="module")
def phrases() -> list[TextRecord]:
    return phrase_corpus()


@pytest.fixture(scope="module")
def reference(phrases):
    return in_memory(phrases)


def test_phrase_corpus_needs_the_collapse(phrases, reference):
    """The corpus tells the settings apart: many records are contained in another, and the n-gram
    statistics with and without the collapse differ, so equal results below are not by chance."""
    family = _families([_tokens(r.text) for r in phrases])
    assert sum(f != i for i, f in enumerate(family)) > len(phrases) / 2
    ngrams, flagged = reference
    assert [g["ngram"] for g in ngrams] == ["cf"] and len(flagged) >= 20
    assert ngrams != in_memory(phrases, collapse_overlaps=False)[0]  # counts in families, not records
    truth = {r.sample_id for r in phrases if r.meta["poisoned"]}
    assert truth <= set(flagged)
    assert detect_poison(phrases, methods=("ngram",)).flagged_ids == flagged


@pytest.mark.parametrize(("fmt", "workers"), [("jsonl", 1), ("jsonl", 2), ("parquet", 1), ("parquet", 2)])
def test_default_settings_equal_in_memory(phrases, reference, fmt, workers, tmp_path):
    folder = write_shards(tmp_path / fmt, phrases, fmt)
    report = ParallelPoisonDetector(workers=workers, cache_dir=str(tmp_path)).detect(folder)
    assert (report.ngrams, report.flagged_ids) == reference
    assert report.n_records == report.n_labeled == len(phrases)
    assert report.n_units == len({(f, r.label) for f, r in zip(_families([_tokens(r.text) for r in phrases]), phrases)})
    assert report.settings["collapse_overlaps"] is True


def test_without_collapse_equal_in_memory(phrases, tmp_path):
    folder = write_shards(tmp_path / "s", phrases, n_shards=4)
    assert parallel(folder, workers=2, collapse_overlaps=False) == in_memory(phrases, collapse_overlaps=False)


def test_planted_difference_is_caught(phrases, reference, tmp_path):
    """One poisoned record's label flipped back in one shard: the parallel result moves with it
    (it is not the reference) and still equals the in-memory detector on the changed corpus."""
    k = next(r.sample_id for r in phrases if r.meta["poisoned"])
    changed = list(phrases)
    changed[k] = TextRecord(phrases[k].text, 1 - int(phrases[k].label), k, "x")  # type: ignore[arg-type]
    got = parallel(write_shards(tmp_path / "changed", changed), workers=2)
    assert got != reference
    assert got == in_memory(changed)
    assert k not in got[1] and k in reference[1]


def test_addsent_and_clean_corpora(tmp_path):
    poisoned = BackdoorPoisoning("addsent", rate=0.05, seed=0)(synthetic_classification(1200, seed=0))
    got = parallel(write_shards(tmp_path / "p", poisoned), workers=2)
    assert got == in_memory(poisoned) and len(got[1]) >= 55
    clean = synthetic_classification(600, seed=5)
    got = parallel(write_shards(tmp_path / "c", clean, n_shards=1))
    assert got == in_memory(clean)


def test_bad_settings():
    with pytest.raises(ConfigError, match="max_n"):
        ParallelPoisonDetector(max_n=0)
    with pytest.raises(ConfigError, match="min_purity"):
        ParallelPoisonDetector(min_purity=1.5)
    with pytest.raises(ConfigError, match="label_column"):
        ParallelPoisonDetector(label_column="")
    with pytest.raises(ConfigError, match="partitions"):
        ParallelPoisonDetector(partitions=0)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        ParallelPoisonDetector(z_threshold=3.0)  # a lift setting, not an ngram one
    with pytest.raises(ConfigError, match="workers"):
        ParallelPoisonDetector(workers=0)


def test_cli_data_poison(phrases, reference, tmp_path, monkeypatch, capsys):
    folder = write_shards(tmp_path / "shards", phrases)
    monkeypatch.chdir(tmp_path)
    rc = cli_main(["data", "poison", str(folder), "--workers", "2", "--quiet"])
    assert rc == 1  # flagged records
    saved = json.loads((tmp_path / f"{folder.name}.poison.json").read_text())
    assert saved["flagged_ids"] == reference[1] and saved["settings"]["collapse_overlaps"] is True
    assert "flagged" in capsys.readouterr().out
    cli_main(["data", "poison", str(folder), "--no-collapse-overlaps", "--report", "plain", "--quiet"])
    saved = json.loads((tmp_path / "plain.json").read_text())
    assert saved["settings"]["collapse_overlaps"] is False
    assert (saved["ngrams"], saved["flagged_ids"]) == in_memory(phrases, collapse_overlaps=False)
    assert cli_main(["data", "poison", str(folder), "--min-purity", "2", "--quiet"]) == 2  # one error line
    assert "min_purity must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_local_ray_equals_in_memory(phrases, reference, tmp_path):
    ray = pytest.importorskip("ray")
    folder = write_shards(tmp_path / "ray", phrases, "parquet")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a local cluster of 2 CPUs
    try:
        assert parallel(folder, workers=2, engine="ray") == reference
    finally:
        if started:
            ray.shutdown()
