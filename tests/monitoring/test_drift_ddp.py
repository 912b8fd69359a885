"""Two CPU ranks (gloo): DriftMonitor judges the gathered validation outputs, same result on both ranks."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
from conftest import ddp_trainer, read_rank_json, tiny_classification_data, tiny_classifier, write_rank_json

from secure_train.monitoring import DriftMonitor


class RankOut(pl.Callback):
    def __init__(self, out: Path, monitor: DriftMonitor) -> None:
        self.out, self.monitor = out, monitor

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = self.monitor.state_dict()
        doc = {"n_reference": len(state["reference"][0]), "reports": state["reports"]}
        write_rank_json(self.out, trainer, doc)


@pytest.mark.ddp
def test_drift_same_decision_on_both_ranks(tmp_path: Path) -> None:
    pl.seed_everything(0)
    monitor = DriftMonitor(min_samples=5)
    trainer = ddp_trainer(
        tmp_path,
        max_epochs=3,
        limit_train_batches=3,
        limit_val_batches=None,
        num_sanity_val_steps=0,
        callbacks=[monitor, RankOut(tmp_path, monitor)],
    )
    trainer.fit(tiny_classifier(), tiny_classification_data(synthetic_size=200))
    ranks = read_rank_json(tmp_path)
    assert ranks[0] == ranks[1]
    assert ranks[0]["n_reference"] == 20  # both ranks' 10 validation rows, gathered
    assert len(ranks[0]["reports"]) == 2
