"""Differential training: planted label flips are flagged; CLI on a recipe writes the report."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from conftest import MICRO_BERT, tiny_classification_data

from secure_train.cli import main as cli_main
from secure_train.core.errors import ConfigError
from secure_train.core.records import TextRecord
from secure_train.gate import DifferentialTraining
from secure_train.models import TextClassifier


class LabelFlip:
    """Flip the labels of a share of the training records (ground truth in ``meta["poisoned"]``)."""

    def __init__(self, rate: float = 0.05, seed: int = 0) -> None:
        self.rate, self.seed = rate, seed

    def __call__(self, records: list[TextRecord]) -> list[TextRecord]:
        chosen = set(random.Random(self.seed).sample(range(len(records)), round(self.rate * len(records))))
        return [
            replace(r, label=1 - int(r.label or 0), meta={**r.meta, "poisoned": True})
            if i in chosen
            else replace(r, meta={**r.meta, "poisoned": False})
            for i, r in enumerate(records)
        ]


@pytest.mark.slow
def test_diff_train_flags_planted_label_flips(tmp_path: Path) -> None:
    analysis = DifferentialTraining(runs=3, vary="subset", z_threshold=3.0)
    report = analysis.run(
        lambda: TextClassifier(vocab_size=512, lr=1e-3, warmup_steps=30),
        lambda: tiny_classification_data(synthetic_size=1500, transforms=[LabelFlip(0.05)], val_fraction=0.1),
        max_epochs=10,
    )
    m = report["metrics"]
    assert m["poisoned"] == 68
    assert m["recall"] >= 0.5 and m["precision"] >= 0.4, m  # measured 0.66 / 0.51 (models at ~83% val acc)
    flagged = report["flagged_samples"]
    assert all(s["loss_held_out"] > 2.3 and s["pred_held_out"] != s["label"] for s in flagged)
    # every sample was held out of exactly one run
    assert sum(r["held_out"] for r in report["runs"]) == report["n_samples"]
    paths = analysis.write_report(report, tmp_path)
    assert [p.name for p in paths] == ["diff_train.json", "diff_train.md", "diff_train.png"]
    assert "memorized-contradiction" in (tmp_path / "diff_train.md").read_text()


def test_robust_z_and_checks() -> None:
    z = DifferentialTraining.robust_z(torch.tensor([1.0, 1.1, 0.9, 1.0, 9.0]))
    assert z[-1] > 10 and z[:4].abs().max() < 2
    with pytest.raises(ConfigError, match="runs"):
        DifferentialTraining(runs=1)
    with pytest.raises(ConfigError, match="vary"):
        DifferentialTraining(vary="epochs")


def test_cli_diff_train_on_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,
                "trainer": {"max_epochs": 1},
                "model": {
                    "class_path": "secure_train.models.TextClassifier",
                    "init_args": {"config": MICRO_BERT, "vocab_size": 512, "lr": 0.002},
                },
                "data": {
                    "class_path": "secure_train.data.TextClassificationDataModule",
                    "init_args": {"synthetic_size": 120, "batch_size": 32, "vocab_size": 512, "max_length": 32},
                },
            }  # fmt: skip
        )
    )
    out = tmp_path / "out"
    rc = cli_main(["diff-train", "--config", str(recipe), "--runs", "2", "--vary", "seed", "--out-dir", str(out)])
    report = json.loads((out / "diff_train.json").read_text())
    assert rc == (1 if report["flagged_samples"] or report["flagged_runs"] else 0)
    assert report["vary"] == "seed" and len(report["runs"]) == 2 and report["n_samples"] == 108
    assert (out / "audit.jsonl").is_file()
