"""Two CPU ranks (gloo): an anomaly seen on one rank leads to the same decision on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
from conftest import ddp_trainer, read_rank_json, tiny_classification_data, write_rank_json
from test_monitors import Spiky

from secure_train.core.audit_log import read_events
from secure_train.monitors import GradNormMonitor, LossSpikeMonitor
from secure_train.monitors.sample_loss import SampleLossMonitor  # retired, not exported


class RankLog(pl.Callback):
    """Each rank writes the steps whose optimizer update was dropped and where it stopped."""

    def __init__(self, out: Path, samples: SampleLossMonitor) -> None:
        self.out = out
        self.samples = samples
        self.skipped: list[int] = []

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if all(p.grad is None for p in pl_module.parameters()):
            self.skipped.append(trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        doc = {
            "skipped": self.skipped,
            "global_step": trainer.global_step,
            "should_stop": trainer.should_stop,
            "trajectories": sorted(self.samples.trajectories),  # gathered over both ranks
        }
        write_rank_json(self.out, trainer, doc)


@pytest.mark.ddp
def test_both_ranks_skip_and_halt_together(tmp_path: Path) -> None:
    # The loss spikes on rank 0 only at step 6 (the loss is averaged over ranks before the test);
    # rank 1's gradients go NaN at step 9 after the all-reduce, so only rank 1 sees that one.
    pl.seed_everything(0)
    samples = SampleLossMonitor(score_after_epochs=10)
    model = Spiky({6: 1e4}, rank=0, nan_grad_step=9)
    trainer = ddp_trainer(
        tmp_path,
        max_epochs=3,
        callbacks=[
            LossSpikeMonitor(warmup=4, action="skip"),
            GradNormMonitor(warmup=12, action="halt"),
            samples,
            RankLog(tmp_path, samples),
        ],
    )
    trainer.fit(model, tiny_classification_data())
    ranks = read_rank_json(tmp_path)
    assert ranks[0] == ranks[1]
    n_train = len(tiny_classification_data().load_records()["train"])
    assert len(ranks[0]["trajectories"]) == n_train  # epoch 0 covered every sample across the two ranks
    assert ranks[0]["skipped"] == [6, 9] and ranks[0]["global_step"] == 10 and ranks[0]["should_stop"]
    assert (tmp_path / "monitor-halt" / "step=10.ckpt").is_file()
    events = [e["payload"] for e in read_events(tmp_path / "audit.jsonl") if e["type"].startswith("monitor.")]
    assert [(e.get("monitor"), e.get("metric"), e["step"], e.get("action")) for e in events] == [
        ("LossSpikeMonitor", "loss", 6, "skip"),
        ("GradNormMonitor", "reported by another rank", 9, "halt"),  # rank 0 writes, rank 1 saw it
        (None, None, 10, None),
    ]
