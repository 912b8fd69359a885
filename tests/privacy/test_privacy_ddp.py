"""DP-SGD under 2-process CPU DDP: per-rank Poisson sampling, one noise draw per global step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from conftest import (
    ddp_trainer,
    quiet_trainer,
    read_rank_json,
    tiny_classification_data,
    tiny_classifier,
    write_rank_json,
)

from secure_train.privacy import DifferentialPrivacy


class Record(pl.Callback):
    """Writes what each rank saw: sample rate, steps, ε, expected batch, samples, a weight checksum."""

    def __init__(self, dp: DifferentialPrivacy, out: Path) -> None:
        self.dp, self.out = dp, out
        self.sample_ids: list[list[int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.sample_ids.append(batch["sample_id"].tolist())

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        opt = trainer.optimizers[0]
        checksum = float(sum(p.detach().double().sum() for p in pl_module.parameters()))
        doc = {
            "world_size": trainer.world_size,
            "sample_rate": self.dp.sample_rate,
            "steps": self.dp.steps_done,
            "epsilon": self.dp.epsilon(),
            "noise_multiplier": self.dp.noise_multiplier,
            "effective_batch": opt.expected_batch_size * trainer.world_size,
            "optimizer": type(opt).__name__,
            "sample_ids": self.sample_ids,
            "checksum": checksum,
        }
        write_rank_json(self.out, trainer, doc)


def run(tmp_path: Path, devices: int, batch_size: int) -> list[dict[str, Any]]:
    out = tmp_path / f"d{devices}"
    out.mkdir()
    dp = DifferentialPrivacy(target_epsilon=4.0, delta=1e-5, accountant="rdp")
    callbacks = [dp, Record(dp, out)]
    if devices > 1:
        trainer = ddp_trainer(out, callbacks=callbacks)
    else:
        trainer = quiet_trainer(out, limit_val_batches=0, callbacks=callbacks)
    pl.seed_everything(0, verbose=False)
    trainer.fit(tiny_classifier(), tiny_classification_data(synthetic_size=144, batch_size=batch_size, max_length=16))
    return read_rank_json(out, devices)


@pytest.mark.ddp
def test_ddp_matches_single_process_accounting(tmp_path):
    (single,) = run(tmp_path, devices=1, batch_size=16)
    ranks = run(tmp_path, devices=2, batch_size=8)  # same global batch: 2 x 8
    for r in ranks:
        assert r["world_size"] == 2 and r["optimizer"] == "DistributedDPOptimizer"
        for key in ("sample_rate", "steps", "noise_multiplier", "effective_batch"):
            assert r[key] == pytest.approx(single[key]), key
        assert r["epsilon"] == pytest.approx(single["epsilon"], rel=1e-9)
    assert single["effective_batch"] == pytest.approx(16, rel=0.1)
    # per-rank Poisson sampling: disjoint shards, together covering about one global batch per step
    seen = [{i for b in r["sample_ids"] for i in b} for r in ranks]
    assert seen[0].isdisjoint(seen[1])
    per_step = [len(a) + len(b) for a, b in zip(ranks[0]["sample_ids"], ranks[1]["sample_ids"], strict=True)]
    assert 8 <= sum(per_step) / len(per_step) <= 24
    # one noise draw per global step (rank 0) and all-reduced: every rank ends with the same weights
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-12)
    assert torch.isfinite(torch.tensor(ranks[0]["checksum"]))
