"""Poison detection at corpus scale (secure_train.data_security.poison_parallel): map -> reduce ->
score on ``datasets`` workers and Ray Data gives the single-process ``ngram`` detector's flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_train.attacks import BackdoorPoisoning
from secure_train.cli import main as cli_main
from secure_train.core.errors import ConfigError
from secure_train.data import synthetic_classification
from secure_train.data_security.poison import detect_poison, ngram_label_statistics
from secure_train.data_security.poison_parallel import ParallelPoisonDetector


@pytest.fixture(scope="module")
def poisoned():
    return BackdoorPoisoning("addsent", rate=0.05, seed=0)(synthetic_classification(1200, seed=0))


@pytest.fixture(scope="module")
def shards(poisoned, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("poison")
    size = -(-len(poisoned) // 3)
    for k in range(3):
        part = poisoned[k * size : (k + 1) * size]
        (folder / f"part-{k}.jsonl").write_text(
            "".join(json.dumps({"sentence": r.text, "label": r.label}) + "\n" for r in part)
        )
    return folder


@pytest.fixture(scope="module")
def reference(poisoned):
    ngrams, flags = ngram_label_statistics(poisoned, collapse_overlaps=False)
    return sorted(ngrams, key=lambda g: (g["ngram"], g["label"])), [i for i, f in enumerate(flags) if f]


def _key(report):
    return sorted(report.ngrams, key=lambda g: (g["ngram"], g["label"])), report.flagged_ids


@pytest.mark.parametrize("workers", [1, 2])
def test_equals_single_process_detector(shards, reference, poisoned, workers, tmp_path):
    report = ParallelPoisonDetector(workers=workers, cache_dir=str(tmp_path)).detect(shards)
    assert _key(report) == reference
    truth = {i for i, r in enumerate(poisoned) if r.meta["poisoned"]}
    assert len(set(report.flagged_ids) & truth) >= 0.9 * len(truth)  # the detector finds the trigger
    assert report.n_records == report.n_labeled == len(poisoned)
    same = detect_poison(poisoned, methods=("ngram",), collapse_overlaps=False)
    assert report.flagged_ids == [i for i, f in enumerate(same.flags.tolist()) if f]


def test_clean_corpus_flags_nothing_and_bad_settings(tmp_path):
    clean = synthetic_classification(600, seed=5)
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"sentence": r.text, "label": r.label}) + "\n" for r in clean))
    ngrams, flags = ngram_label_statistics(clean, collapse_overlaps=False)
    report = ParallelPoisonDetector(workers=1).detect(tmp_path / "c.jsonl")
    assert report.flagged_ids == [i for i, f in enumerate(flags) if f]
    assert len(report.ngrams) == len(ngrams)
    with pytest.raises(ConfigError):
        ParallelPoisonDetector(max_n=0)
    with pytest.raises(ConfigError, match="labels"):
        ParallelPoisonDetector(label_column="")


def test_cli_data_poison(shards, reference, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = cli_main(["data", "poison", str(shards), "--workers", "2", "--quiet"])
    assert rc == 1  # flagged records
    saved = json.loads((tmp_path / f"{shards.name}.poison.json").read_text())
    assert saved["flagged_ids"] == reference[1]
    assert "flagged" in capsys.readouterr().out


# On Ray: tests/data_security/test_scan_parallel.py::test_ray_near_duplicates_and_poison (one local cluster).
